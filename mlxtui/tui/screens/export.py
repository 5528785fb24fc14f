"""Export screen: fuse the adapter into its base, write GGUF, upload to the Hugging Face hub.

Fuse and GGUF run on the engine (`Fuse`/`ExportGGUF` jobs through `submit`); the upload is plain
network code and runs in a thread worker. Nothing existing is replaced unless the "replace
existing" switch is on: the screen refuses before submitting, and the engine checks again.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, VerticalScroll
from textual.screen import Screen
from textual.widgets import Button, Footer, Input, Label, Select, Static, Switch

from mlxtui.core.fileio import worded_replace
from mlxtui.tui import messages
from mlxtui.tui.widgets.word_switch import WordSwitch

# The app's `submit_job(job, reply_to)`: the job's messages come back to this screen.
Submit = Callable[[Any, Any], "int | None"]


def occupied(path: Path) -> bool:
    """True when writing to `path` would replace something: a file, or a folder with files in it."""
    if path.is_dir():
        return any(path.iterdir())
    return path.exists()


# The GGUF weight types `mlxtui export --gguf-type` offers: (what the list shows, the job's value).
GGUF_TYPES = [("float16", "f16"), ("Q8_0: 8-bit blocks, about half the size", "q8_0")]

# Enter in these fields runs the button of their row.
SUBMIT_ACTIONS = {
    "ex-save": "fuse",
    "ex-fuse-gguf": "fuse",
    "ex-gguf": "export_gguf",
    "ex-up-folder": "upload",
    "ex-repo": "upload",
    "ex-token": "upload",
}


class ExportScreen(Screen[None]):
    BINDINGS = [Binding("escape", "close", "Close", show=True)]

    DEFAULT_CSS = """
    ExportScreen > VerticalScroll { padding: 0 1; }
    ExportScreen .title { text-style: bold; background: $panel; width: 100%; padding: 0 1; }
    ExportScreen .section { text-style: bold; margin-top: 1; color: $primary; }
    ExportScreen .row { height: 3; }
    ExportScreen .row Label { width: 18; padding: 1 1 0 0; }
    ExportScreen .row Input { width: 1fr; }
    ExportScreen .row Switch { margin-right: 2; }
    ExportScreen .row Button { margin-left: 1; }
    ExportScreen .row Select { width: 48; }
    ExportScreen .note { color: $text-muted; }
    ExportScreen #export-progress { height: auto; margin-top: 1; }
    ExportScreen #export-result { height: auto; }
    ExportScreen .-error { color: $error; }
    """

    def __init__(self, submit: Submit, adapter: str | None = None) -> None:
        super().__init__()
        self.submit = submit
        self.adapter = adapter
        self.running: dict[int, str] = {}  # job id -> kind
        self.last_path: str | None = None
        self.upload_url: str | None = None

    def compose(self) -> ComposeResult:
        with VerticalScroll():
            yield Label("Export: fuse, GGUF, Hugging Face", classes="title")
            yield Static(
                "Adapter: empty = the current one (the last trained, or the one chosen in chat).",
                classes="note",
            )
            with Horizontal(classes="row"):
                yield Label("adapter folder")
                yield Input(self.adapter or "", placeholder="current adapter", id="ex-adapter")
            with Horizontal(classes="row"):
                yield Label("replace existing")
                yield WordSwitch(False, id="ex-force")
                yield Static(
                    "when off, an existing folder or file is never overwritten", classes="note"
                )

            yield Label("Fuse into the base (MLX model folder)", classes="section")
            with Horizontal(classes="row"):
                yield Label("save path")
                yield Input("fused_model", id="ex-save")
            with Horizontal(classes="row"):
                yield Label("dequantize")
                yield WordSwitch(False, id="ex-dequantize")
                yield Label("also GGUF")
                yield Input(placeholder="optional .gguf file", id="ex-fuse-gguf")
                yield Button("Fuse", id="ex-fuse", variant="primary")

            yield Label("GGUF file (llama.cpp)", classes="section")
            with Horizontal(classes="row"):
                yield Label("out file")
                yield Input("model.gguf", id="ex-gguf")
                yield Button("Export GGUF", id="ex-export")
            with Horizontal(classes="row"):
                yield Label("GGUF weights")
                yield Select(GGUF_TYPES, value="f16", allow_blank=False, id="ex-gguf-type")
                yield Static("also for the fused model's GGUF", classes="note")

            yield Label("Upload a fused folder to the Hugging Face hub", classes="section")
            with Horizontal(classes="row"):
                yield Label("folder")
                yield Input("fused_model", id="ex-up-folder")
            with Horizontal(classes="row"):
                yield Label("repo id")
                yield Input(placeholder="owner/name", id="ex-repo")
            with Horizontal(classes="row"):
                yield Label("token")
                yield Input(
                    placeholder="empty: HF_TOKEN or huggingface-cli login",
                    password=True,
                    id="ex-token",
                )
                yield Label("private")
                yield WordSwitch(True, id="ex-private")
                yield Button("Upload", id="ex-upload")

            yield Static("", id="export-progress")
            yield Static("", id="export-result")
        yield Footer()

    def on_mount(self) -> None:
        self.query_one("#ex-save", Input).focus()

    def action_close(self) -> None:
        """Esc in a field leaves it (so single keys act); Esc elsewhere closes the screen."""
        if isinstance(self.focused, Input):
            self.query_one("#ex-fuse", Button).focus()
        else:
            self.app.pop_screen()

    @on(Input.Submitted)
    def _submitted(self, event: Input.Submitted) -> None:
        """Enter in a field runs the action of its row (a form where Enter did nothing felt dead)."""
        event.stop()
        action = SUBMIT_ACTIONS.get(event.input.id or "")
        if action is not None:
            getattr(self, action)()

    # ------------------------------------------------------------ helpers

    def _value(self, widget_id: str) -> str:
        return self.query_one(f"#{widget_id}", Input).value.strip()

    def _switch(self, widget_id: str) -> bool:
        return self.query_one(f"#{widget_id}", Switch).value

    def _gguf_type(self) -> str:
        return str(self.query_one("#ex-gguf-type", Select).value)

    def _refuse(self, message: str) -> None:
        self.show_result(message, error=True)
        self.notify(message, title="Not started", severity="error")

    def show_result(self, message: str, error: bool = False) -> None:
        result = self.query_one("#export-result", Static)
        result.set_class(error, "-error")
        result.update(Text(message))

    def _progress(self, message: str) -> None:
        self.query_one("#export-progress", Static).update(Text(message))

    def _adapter(self) -> str | None:
        return self._value("ex-adapter") or None

    def _check_free(self, path: Path, field: str) -> bool:
        if occupied(path) and not self._switch("ex-force"):
            self._refuse(
                f"{field}: {path} already exists; choose another path, "
                "or turn on 'replace existing' to overwrite it"
            )
            return False
        return True

    # ------------------------------------------------------------ fuse and GGUF

    @on(Button.Pressed, "#ex-fuse")
    def fuse(self) -> None:
        from mlxtui.core.engine import Fuse

        save = self._value("ex-save")
        if not save:
            self._refuse("save path: empty; give a folder to write the fused model to")
            return
        gguf = self._value("ex-fuse-gguf") or None
        if not self._check_free(Path(save).expanduser(), "save path"):
            return
        if gguf and not self._check_free(Path(gguf).expanduser(), "also GGUF"):
            return
        job = Fuse(
            save_path=save,
            adapter_path=self._adapter(),
            dequantize=self._switch("ex-dequantize"),
            gguf_path=gguf,
            gguf_type=self._gguf_type(),
            force=self._switch("ex-force"),
        )
        self._start(job, f"fusing into {save}…")

    @on(Button.Pressed, "#ex-export")
    def export_gguf(self) -> None:
        from mlxtui.core.engine import ExportGGUF

        out = self._value("ex-gguf")
        if not out:
            self._refuse("out file: empty; give a .gguf file name")
            return
        if not self._check_free(Path(out).expanduser(), "out file"):
            return
        job = ExportGGUF(
            out_file=out,
            adapter_path=self._adapter(),
            gguf_type=self._gguf_type(),
            force=self._switch("ex-force"),
        )
        self._start(job, f"writing {out}…")

    def _start(self, job: Any, message: str) -> None:
        if self.running:
            self._refuse("an export is running; wait for it to finish")
            return
        job_id = self.submit(job, self)
        if job_id is None:
            return
        self.running[job_id] = job.kind
        self._progress(message)
        self.show_result("")

    @on(messages.JobProgress)
    def _job_progress(self, message: messages.JobProgress) -> None:
        event = message.event
        kind = self.running.get(event.job_id, "export")
        counts = f" ({event.done}/{event.total})" if event.total else ""
        self._progress(f"{kind}: {event.message}{counts}")

    @on(messages.PhaseStarted)
    def _phase_started(self, message: messages.PhaseStarted) -> None:
        event = message.event
        self._progress(f"{self.running.get(event.job_id, 'export')}: {event.label}")

    @on(messages.PhaseProgress)
    def _phase_progress(self, message: messages.PhaseProgress) -> None:
        event = message.event
        counts = f" {event.done}/{event.total}" if event.total else ""
        self._progress(f"{self.running.get(event.job_id, 'export')}: {event.label}{counts}")

    @on(messages.JobFinished)
    def _job_finished(self, message: messages.JobFinished) -> None:
        event = message.event
        kind = self.running.pop(event.job_id, "export")
        self.last_path = str(Path(str(event.result)).expanduser().resolve())
        self._progress(f"{kind}: done")
        self.show_result(f"written: {self.last_path}")
        if kind == "fuse":
            self.query_one("#ex-up-folder", Input).value = str(event.result)

    @on(messages.JobFailed)
    def _job_failed(self, message: messages.JobFailed) -> None:
        event = message.event
        kind = self.running.pop(event.job_id, "export")
        self._progress(f"{kind}: failed")
        hint = f"\nWhat to do: {event.hint}" if event.hint else ""
        said = worded_replace(event.message, "turn on 'replace existing' to replace it")
        self.show_result(f"{kind} failed: {said}{hint}", error=True)

    # ------------------------------------------------------------ upload

    @on(Button.Pressed, "#ex-upload")
    def upload(self) -> None:
        folder = self._value("ex-up-folder")
        repo = self._value("ex-repo")
        if not folder or not repo:
            self._refuse("folder and repo id are both needed (repo id looks like owner/name)")
            return
        self._progress(f"uploading {folder} to {repo}…")
        self.show_result("")
        self._upload(folder, repo, self._value("ex-token") or None, self._switch("ex-private"))

    @work(thread=True, exclusive=True, exit_on_error=False, group="upload")
    def _upload(self, folder: str, repo: str, token: str | None, private: bool) -> None:
        # Plain network code (no MLX), so a thread worker keeps the screen live.
        from mlxtui.core.export import upload_to_hub

        try:
            url = upload_to_hub(folder, repo, token=token, private=private)
        except Exception as e:  # noqa: BLE001 - every failure is shown, none is fatal
            self.app.call_from_thread(self._upload_done, None, str(e))
            return
        self.app.call_from_thread(self._upload_done, url, None)

    def _upload_done(self, url: str | None, error: str | None) -> None:
        if error is not None:
            self._progress("upload failed")
            self.show_result(f"upload failed: {error}", error=True)
            self.notify(error, title="Upload failed", severity="error", timeout=10)
            return
        self.upload_url = url
        self._progress("upload done")
        self.show_result(f"uploaded: {url}")
