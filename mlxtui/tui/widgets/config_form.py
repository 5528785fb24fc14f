"""The Config form, built generically from `FORM_FIELDS`; bad values are refused in place.

Above the fields sits the memory estimate: when a memory-relevant field changes (and every
field is valid) the form asks for a new `Estimate` half a second after the last keystroke.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from rich.text import Text
from textual import on
from textual.app import ComposeResult
from textual.containers import Horizontal, VerticalScroll
from textual.message import Message
from textual.widgets import Input, Label, Select, Static, Switch

from mlxtui.core.config import FieldSpec, TrainConfig, get_field, set_field, validate_field
from mlxtui.tui.messages import SubmitJob
from mlxtui.tui.widgets.memory_estimate import EstimateView

# Fields that change the estimated peak memory.
MEMORY_FIELDS = frozenset(
    {
        "batch_size",
        "num_layers",
        "lora_rank",
        "lora_keys",
        "fine_tune_type",
        "optimizer",
        "max_seq_length",
        "grad_checkpoint",
        "dequantize",
        "data",
        "model",
    }
)
ESTIMATE_DEBOUNCE_S = 0.5


def widget_id(name: str) -> str:
    return "field-" + name.replace(".", "--")


def display_text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, list | tuple):
        return ", ".join(str(v) for v in value)
    return str(value)


def _placeholder(spec: FieldSpec) -> str:
    if spec.name == "model":
        return "empty = demo"
    if spec.name == "data":
        return "empty = demo"
    if spec.name == "max_grad_norm":
        return "empty = no clipping"
    return "empty = default" if spec.kind.startswith("optional") else ""


@dataclass(frozen=True)
class FieldState:
    value: Any
    error: str | None


class ConfigForm(VerticalScroll):
    """One row per field: label, editor, and a line that shows the error or the suggestion."""

    DEFAULT_CSS = """
    ConfigForm { height: 1fr; }
    ConfigForm > EstimateView { dock: top; background: $panel; }
    ConfigForm .field-line { height: auto; }
    ConfigForm .field-label { width: 21; color: $text-muted; padding: 0 1 0 0; }
    ConfigForm .field-note { height: auto; color: $text-muted; text-style: italic; padding-left: 2; }
    ConfigForm .field-note.-error { color: $error; text-style: bold; }
    ConfigForm Input { width: 1fr; }
    ConfigForm Select { width: 1fr; }
    ConfigForm Switch { border: none; height: 1; padding: 0; width: 6; }
    ConfigForm Switch:focus { border: none; background-tint: $foreground 10%; }
    ConfigForm .switch-state { width: 4; padding: 0 0 0 1; color: $text-muted; }
    """

    class Changed(Message):
        """A field now holds a new valid value."""

        def __init__(self, name: str, value: Any) -> None:
            super().__init__()
            self.name = name
            self.value = value

    class Committed(Message):
        """A text field's valid value was confirmed: Enter, or the focus left the field.

        For work too costly to redo on each keystroke (loading another model).
        """

        def __init__(self, name: str, value: Any) -> None:
            super().__init__()
            self.name = name
            self.value = value

    def __init__(
        self,
        fields: tuple[FieldSpec, ...],
        config: TrainConfig,
        *,
        id: str | None = None,
        classes: str | None = None,
    ) -> None:
        super().__init__(id=id, classes=classes)
        self.fields = fields
        self.config = config
        """The config with every valid value typed so far (refused values leave it unchanged)."""
        self.states: dict[str, FieldState] = {
            f.name: FieldState(get_field(config, f.name), None) for f in fields
        }
        self.suggestions: dict[str, str] = {}
        self._by_id = {widget_id(f.name): f for f in fields}
        self._rows: dict[str, Horizontal] = {}
        # A field's note (its error or suggestion) is mounted when it first has text: most never
        # do, and each widget of this form costs every layout of the Config pane and its mount.
        self._notes: dict[str, Static] = {}
        self.model_ready = False
        self._estimate_timer: Any = None

    def on_mount(self) -> None:
        self._show_ranks()

    def _show_ranks(self) -> None:
        """Across ranks (nproc, hosts: set in YAML or on the command line) the estimate is each
        rank's, and a step takes batch x ranks x accumulation examples."""
        from mlxtui.core.distributed import world_size_of

        cfg = self.config
        self.query_one(EstimateView).show_ranks(
            world_size_of(cfg.nproc, cfg.hosts), cfg.batch_size, cfg.grad_accumulation_steps, cfg.hosts
        )

    def compose(self) -> ComposeResult:
        yield EstimateView(id="estimate")
        for spec in self.fields:
            wid = widget_id(spec.name)
            with Horizontal(classes="field-line") as row:
                self._rows[spec.name] = row
                label = Label(spec.label or spec.name, classes="field-label")
                label.tooltip = spec.help or None
                yield label
                yield self._editor(spec, self.states[spec.name].value, wid)
                if spec.kind == "bool":
                    # the switch is drawn in colour only; say on/off in words too
                    yield Label(
                        _on_off(self.states[spec.name].value),
                        classes="switch-state",
                        id=f"{wid}-state",
                    )

    @staticmethod
    def _editor(spec: FieldSpec, value: Any, wid: str) -> Input | Select[str] | Switch:
        editor: Input | Select[str] | Switch
        if spec.kind == "bool":
            editor = Switch(value=bool(value), id=wid)
        elif spec.kind == "choice" and spec.choices:
            options = [(str(c), str(c)) for c in spec.choices]
            start = str(value) if value is not None and str(value) in spec.choices else None
            editor = Select(
                options,
                value=start if start is not None else options[0][1],
                allow_blank=False,
                id=wid,
                compact=True,
            )
        else:
            editor = Input(
                display_text(value), id=wid, placeholder=_placeholder(spec), compact=True
            )
        editor.tooltip = spec.help or None
        return editor

    # ------------------------------------------------------------ public

    @property
    def errors(self) -> dict[str, str]:
        return {name: st.error for name, st in self.states.items() if st.error}

    def label_of(self, name: str) -> str:
        """The field's label as the form shows it (users do not know the config key names)."""
        spec = next((f for f in self.fields if f.name == name), None)
        return (spec.label or spec.name) if spec is not None else name

    def focus_field(self, name: str) -> None:
        editor = self.query_one(f"#{widget_id(name)}")
        editor.focus()
        self.scroll_to_widget(editor)

    def show_suggestions(self, suggestions: dict[str, str]) -> None:
        self.suggestions = dict(suggestions)
        for spec in self.fields:
            self._refresh_note(spec.name)

    def model_loaded(self) -> None:
        """Estimates need the loaded model's shapes: from now on the form asks for them."""
        self.model_ready = True
        self.request_estimate(delay=0)

    def request_estimate(self, delay: float = ESTIMATE_DEBOUNCE_S) -> None:
        """Ask for an estimate of the current values `delay` seconds from now (restarts the wait)."""
        if not self.model_ready or self.errors:
            return
        if self._estimate_timer is not None:
            self._estimate_timer.stop()
        self.query_one(EstimateView).set_pending()
        self._estimate_timer = self.set_timer(max(delay, 0.001), self._submit_estimate)

    def _submit_estimate(self) -> None:
        from mlxtui.core.engine import Estimate

        self._estimate_timer = None
        if self.model_ready and not self.errors:
            self.post_message(SubmitJob(Estimate(self.config)))

    def set_value(self, name: str, raw: str) -> None:
        """Type `raw` into a text field (used by tests and by commands)."""
        self.query_one(f"#{widget_id(name)}", Input).value = raw

    def values_text(self) -> dict[str, str]:
        """Every field's accepted value as the text that types it back (what a session keeps)."""
        from mlxtui.core.session_memory import form_text

        return {spec.name: form_text(self.states[spec.name].value) for spec in self.fields}

    def load_config(self, config: TrainConfig) -> None:
        """Show `config` in every field (a past run's settings, or the quick-start defaults).

        Settings outside the form come from `config` too; each editor then goes through the
        same checks as typing, so Changed messages follow for the fields that moved."""
        from mlxtui.core.session_memory import form_text

        self.config = config
        for spec in self.fields:
            value = get_field(config, spec.name)
            editor = self.query_one(f"#{widget_id(spec.name)}")
            if isinstance(editor, Switch):
                editor.value = bool(value)
            elif isinstance(editor, Select):
                if value is not None and spec.choices and str(value) in spec.choices:
                    editor.value = str(value)
            elif isinstance(editor, Input):
                editor.value = form_text(value)

    # ------------------------------------------------------------ events

    @on(Input.Changed)
    def _input_changed(self, event: Input.Changed) -> None:
        spec = self._by_id.get(event.input.id or "")
        if spec is None:
            return
        event.stop()
        self._accept(spec.name, event.value, event.input)

    @on(Input.Submitted)
    @on(Input.Blurred)
    def _input_committed(self, event: Input.Submitted | Input.Blurred) -> None:
        spec = self._by_id.get(event.input.id or "")
        if spec is None:
            return
        event.stop()
        state = self.states[spec.name]
        if state.error is None:
            self.post_message(self.Committed(spec.name, state.value))

    @on(Select.Changed)
    def _select_changed(self, event: Select.Changed) -> None:
        spec = self._by_id.get(event.select.id or "")
        if spec is None or event.value is Select.NULL:
            return
        event.stop()
        self._accept(spec.name, str(event.value), None)

    @on(Switch.Changed)
    def _switch_changed(self, event: Switch.Changed) -> None:
        spec = self._by_id.get(event.switch.id or "")
        if spec is None:
            return
        event.stop()
        self.query_one(f"#{widget_id(spec.name)}-state", Label).update(_on_off(event.value))
        self._accept(spec.name, "true" if event.value else "false", None)

    def _accept(self, name: str, raw: str, editor: Input | None) -> None:
        try:
            value, error = validate_field(name, raw)
            if error is None:
                new_config = set_field(self.config, name, value)
        except Exception as exc:  # a validator bug must not take the dashboard down
            value, error = None, f"cannot use this value: {exc}"
        previous = self.states[name]
        self.states[name] = FieldState(previous.value if error else value, error)
        if error is None:
            self.config = new_config
            if name in ("batch_size", "grad_accumulation_steps"):
                self._show_ranks()
        if editor is not None:
            # A refused value gets the full red border (the compact input has none).
            editor.compact = error is None
            editor.set_class(error is not None, "-invalid")
        self._refresh_note(name)
        if error is None and value != previous.value:
            self.post_message(self.Changed(name, value))
            # Another model is estimated once it has loaded (the app loads it on commit).
            if name in MEMORY_FIELDS and name != "model":
                self.request_estimate()

    def note_text(self, name: str) -> str:
        """What the line under the field says (its error, else its suggestion; "" when none)."""
        note = self._notes.get(name)
        return str(note.render()) if note is not None and note.display else ""

    def _refresh_note(self, name: str) -> None:
        error = self.states[name].error
        text = error or self.suggestions.get(name, "")
        note = self._notes.get(name)
        if note is None:
            if not text:
                return
            note = Static(Text(text), classes="field-note", id=f"{widget_id(name)}-note")
            note.set_class(error is not None, "-error")
            self._notes[name] = note
            self.mount(note, after=self._rows[name])
            return
        note.set_class(error is not None, "-error")
        note.update(Text(text))
        note.display = bool(text)


def _on_off(value: Any) -> str:
    return "on" if value else "off"
