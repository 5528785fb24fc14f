"""Chat pane: settings, a multi-turn conversation, a choice of weights, and base-vs-adapter A/B.

The pane only collects what to ask and shows the streamed answers; the app turns `ChatPane.Send`
into an engine job (`Send.job()`), and the engine's tokens come back through `add_token`/`finish`.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from rich.text import Text
from textual import on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, VerticalScroll
from textual.message import Message
from textual.validation import Function, Integer, Number
from textual.widget import Widget
from textual.widgets import Input, Label, Select, Static

ADAPTER = "adapter"
BASE = "base"
COMPARE = "compare"
FIXED_WEIGHTS = (
    ("adapter (current)", ADAPTER),
    ("base", BASE),
    ("A/B: base | adapter", COMPARE),
)
# Kept for callers that imported the old name.
WEIGHTS = FIXED_WEIGHTS


class Bubble(Static):
    """One turn; an assistant bubble grows token by token."""

    DEFAULT_CSS = """
    Bubble { height: auto; padding: 0 1; margin: 0 0 1 0; }
    Bubble.-user { background: $primary 15%; margin-left: 4; }
    Bubble.-assistant { background: $surface; margin-right: 4; }
    Bubble.-system { color: $text-muted; text-style: italic; }
    Bubble.-streaming { border-left: thick $accent; }
    Bubble.-stopped { color: $text-muted; }
    """

    def __init__(self, role: str, text: str = "", title: str = "") -> None:
        super().__init__(classes=f"-{role}")
        self.role = role
        self.title = title
        self.text = text
        self.note = ""
        self.update(self._render_text())

    def _render_text(self) -> Text:
        head = Text(f"{self.title}\n", style="bold") if self.title else Text()
        tail = Text(f"\n({self.note})", style="italic") if self.note else Text()
        return head + Text(self.text) + tail

    def append(self, chunk: str) -> None:
        self.text += chunk
        self.update(self._render_text())

    def finish(self, text: str | None = None, note: str = "") -> None:
        if text is not None and len(text) >= len(self.text):
            self.text = text
        self.note = note
        self.remove_class("-streaming")
        self.update(self._render_text())


class ABRow(Horizontal):
    """Base (A) and adapter (B) answers to one prompt, side by side."""

    DEFAULT_CSS = """
    ABRow { height: auto; }
    ABRow Bubble.-assistant { width: 1fr; margin: 0 1 1 0; }
    """


_RUN_NAME = re.compile(r"^\d{4}(\d{2})(\d{2})-(\d{2})(\d{2})\d{2}-(.*)$")


def short_label(label: str, tail: int = 8) -> str:
    """'20250101-120000-SmolLM2-135M best' -> '01-01 12:00 SmolLM2-13… best' (fits the picker)."""
    name, _, which = label.partition(" ")
    m = _RUN_NAME.match(name)
    if not m:
        return label
    month, day, hour, minute, rest = m.groups()
    rest = rest if len(rest) <= tail else rest[: tail - 1] + "…"
    return f"{month}-{day} {hour}:{minute} {rest} {which}".strip()


def _top_p_ok(value: str) -> bool:
    try:
        return 0.0 < float(value) <= 1.0
    except ValueError:
        return False


# (input id, label, default, validator, what a valid value is)
SETTINGS = (
    ("chat-temp", "temp", "0.7", Number(minimum=0.0, maximum=2.0), "a number from 0 to 2"),
    ("chat-top-p", "top-p", "0.95", Function(_top_p_ok), "a number above 0, at most 1"),
    ("chat-max", "max", "256", Integer(minimum=1, maximum=32768), "a whole number from 1 to 32768"),
    # mlx-lm's repetition penalty over the last 20 tokens (1: off): calms a young adapter's loops
    ("chat-rep", "rep", "1.0", Number(minimum=1.0, maximum=2.0), "a number from 1 (off) to 2"),
)
# the settings' input ids and the Send fields they fill
SETTING_FIELDS = {
    "chat-temp": "temperature",
    "chat-top-p": "top_p",
    "chat-max": "max_tokens",
    "chat-rep": "repetition_penalty",
}
# what session memory keeps of the chat (key -> input id)
REMEMBERED = (
    ("system", "#chat-system"),
    ("temp", "#chat-temp"),
    ("top_p", "#chat-top-p"),
    ("max", "#chat-max"),
    ("rep", "#chat-rep"),
)


class ChatPane(Widget):
    DEFAULT_CSS = """
    ChatPane { height: 1fr; }
    ChatPane #chat-settings { height: 1; }
    ChatPane #chat-settings Label { padding: 0 1 0 0; color: $text-muted; }
    ChatPane #chat-settings Input { border: none; height: 1; padding: 0 1; margin-right: 1; }
    ChatPane #chat-settings Input.-invalid { background: $error 40%; }
    ChatPane #chat-system { width: 1fr; }
    ChatPane #chat-temp, ChatPane #chat-top-p, ChatPane #chat-max, ChatPane #chat-rep { width: 7; }
    ChatPane #chat-log { height: 1fr; }
    ChatPane #chat-bar { height: 3; }
    ChatPane #chat-input { width: 1fr; }
    ChatPane #chat-weights { width: 36; }
    """

    BINDINGS = [
        Binding("escape", "stop_generation", "Stop reply", show=True),
        Binding("ctrl+l", "clear", "New chat", show=True),
        Binding("ctrl+y", "copy_reply", "Copy reply", show=True),
    ]

    class Send(Message):
        """The user asked something; the app submits `job()` to the engine."""

        def __init__(
            self,
            messages: list[dict[str, str]],
            weights: str,
            temperature: float = 0.7,
            top_p: float = 0.95,
            max_tokens: int = 256,
            repetition_penalty: float = 1.0,
        ) -> None:
            super().__init__()
            self.messages = messages
            self.weights = weights
            self.temperature = temperature
            self.top_p = top_p
            self.max_tokens = max_tokens
            self.repetition_penalty = repetition_penalty

        def job(self) -> Any:
            from mlxtui.core.engine import Compare, Generate

            if self.weights == COMPARE:
                return Compare(
                    self.messages,
                    temperature=self.temperature,
                    top_p=self.top_p,
                    max_tokens=self.max_tokens,
                    repetition_penalty=self.repetition_penalty,
                )
            return Generate(
                self.messages,
                temperature=self.temperature,
                top_p=self.top_p,
                max_tokens=self.max_tokens,
                weights=self.weights,
                repetition_penalty=self.repetition_penalty,
            )

    class StopRequested(Message):
        pass

    def __init__(self, *, id: str | None = None, classes: str | None = None) -> None:
        super().__init__(id=id, classes=classes)
        self.history: list[dict[str, str]] = []
        self.streaming: dict[str, Bubble] = {}  # slot -> bubble being written
        self.adapter_options: list[tuple[str, str]] = []  # (label, path) of run checkpoints

    def compose(self) -> ComposeResult:
        with Horizontal(id="chat-settings"):
            yield Label("system")
            yield Input(placeholder="system prompt (optional)", id="chat-system")
            for input_id, label, default, validator, _what in SETTINGS:
                yield Label(label)
                yield Input(
                    default,
                    id=input_id,
                    validators=[validator],
                    validate_on=["changed", "blur"],
                )
        yield VerticalScroll(id="chat-log")
        with Horizontal(id="chat-bar"):
            yield Input(
                placeholder="Ask… (Enter sends, Esc stops)",
                id="chat-input",
            )
            yield Select(FIXED_WEIGHTS, value=ADAPTER, allow_blank=False, id="chat-weights")

    # ------------------------------------------------------------ state

    @property
    def generating(self) -> bool:
        return bool(self.streaming)

    @property
    def weights(self) -> str:
        value = self.query_one("#chat-weights", Select).value
        return value if isinstance(value, str) else ADAPTER

    @property
    def system_prompt(self) -> str:
        return self.query_one("#chat-system", Input).value.strip()

    def settings(self) -> tuple[dict[str, float | int], list[str]]:
        """The sampling settings, and a message per field that holds a bad value."""
        values: dict[str, float | int] = {}
        errors: list[str] = []
        for input_id, label, _default, _validator, what in SETTINGS:
            field = self.query_one(f"#{input_id}", Input)
            result = field.validate(field.value)
            if result is not None and not result.is_valid:
                errors.append(f"{label}: {field.value!r} is not {what}")
                continue
            raw = field.value.strip()
            values[SETTING_FIELDS[input_id]] = int(raw) if input_id == "chat-max" else float(raw)
        return values, errors

    def messages_to_send(self) -> list[dict[str, str]]:
        system = self.system_prompt
        head = [{"role": "system", "content": system}] if system else []
        return head + list(self.history)

    def transcript(self) -> str:
        return "\n".join(b.text for b in self.query(Bubble))

    def last_reply(self) -> str | None:
        for message in reversed(self.history):
            if message["role"] == "assistant":
                return message["content"]
        return None

    def weights_label(self, value: str | None = None) -> str:
        value = self.weights if value is None else value
        for label, v in [*FIXED_WEIGHTS, *self.adapter_options]:
            if v == value:
                return label
        return Path(value).name

    # ------------------------------------------------------------ weights

    def set_adapters(self, choices: list[tuple[str, Path]]) -> None:
        """Offer every checkpoint of every run (label, file); keeps the current choice if it is still there."""
        self.adapter_options = [(short_label(label), str(path)) for label, path in choices]
        self._set_weight_options()

    def select_weights(self, value: str, label: str | None = None) -> None:
        """Answer with `value` from now on ("adapter", "base", "compare" or an adapter file)."""
        known = {v for _l, v in [*FIXED_WEIGHTS, *self.adapter_options]}
        if value not in known:
            self.adapter_options.append((short_label(label or Path(value).name), value))
            self._set_weight_options()
        self.query_one("#chat-weights", Select).value = value

    def _set_weight_options(self) -> None:
        select = self.query_one("#chat-weights", Select)
        current = self.weights
        options = [*FIXED_WEIGHTS, *self.adapter_options]
        select.set_options(options)
        select.value = current if current in {v for _l, v in options} else ADAPTER

    # ------------------------------------------------------------ sending

    @on(Input.Submitted, "#chat-input")
    def _submitted(self, event: Input.Submitted) -> None:
        event.stop()
        text = event.value.strip()
        if not text:
            return
        if self.generating:
            self.notify("Wait for the reply, or press Esc to stop it.", severity="warning")
            return
        values, errors = self.settings()
        if errors:
            self.notify(
                "\n".join(errors) + "\nFix the field in the row above the conversation.",
                title="Not sent",
                severity="error",
            )
            return
        event.input.value = ""
        self.history.append({"role": "user", "content": text})
        log = self.query_one("#chat-log", VerticalScroll)
        log.mount(Bubble("user", text))
        weights = self.weights
        if weights == COMPARE:
            a = Bubble("assistant", title="A · base")
            b = Bubble("assistant", title="B · adapter")
            for slot, bubble in (("A", a), ("B", b)):
                bubble.add_class("-streaming")
                self.streaming[slot] = bubble
            log.mount(ABRow(a, b))
        else:
            bubble = Bubble("assistant", title=self.weights_label(weights))
            bubble.add_class("-streaming")
            self.streaming[""] = bubble
            log.mount(bubble)
        log.scroll_end(animate=False)
        messages = self.messages_to_send()
        self.post_message(self.Send(messages, weights, **values))  # type: ignore[arg-type]

    @on(Input.Submitted, "#chat-settings Input")
    def _setting_submitted(self, event: Input.Submitted) -> None:
        # Enter in a settings field goes back to the prompt.
        event.stop()
        self.query_one("#chat-input", Input).focus()

    # ------------------------------------------------------------ engine output

    def add_token(self, text: str, slot: str = "") -> None:
        bubble = self.streaming.get(slot)
        if bubble is None:
            return
        bubble.append(text)
        self.query_one("#chat-log", VerticalScroll).scroll_end(animate=False)

    def finish(self, text: str, slot: str = "", stopped: bool = False, note: str = "") -> None:
        bubble = self.streaming.pop(slot, None)
        if bubble is None:
            return
        bubble.finish(text, note=("stopped" if stopped else note))
        if stopped:
            bubble.add_class("-stopped")
        # Only the adapter's (or the single) answer continues the conversation.
        if slot in ("", "B"):
            self.history.append({"role": "assistant", "content": bubble.text})

    def fail(self, message: str) -> None:
        for slot in list(self.streaming):
            self.finish("", slot, note=f"failed: {message}")

    # ------------------------------------------------------------ keys

    def action_stop_generation(self) -> None:
        # When nothing streams, Esc leaves the input (the app moves focus to the pane).
        self.post_message(self.StopRequested())

    def action_clear(self) -> None:
        if self.generating:
            self.notify("Stop the reply first (Esc), then start a new chat.", severity="warning")
            return
        self.history.clear()
        self.query_one("#chat-log", VerticalScroll).remove_children()
        self.notify("New conversation (the system prompt and settings are kept).")

    def action_copy_reply(self) -> None:
        reply = self.last_reply()
        if not reply:
            self.notify("There is no reply to copy yet.", severity="warning")
            return
        # OSC 52: works over SSH in most terminals (not macOS Terminal.app).
        self.app.copy_to_clipboard(reply)
        self.notify(f"copied the last reply ({len(reply)} characters)")
