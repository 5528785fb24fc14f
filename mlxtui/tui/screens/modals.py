"""Modal screens: help (the key list), an error with a hint, and a yes/no confirmation."""

from __future__ import annotations

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Button, Label, Static


class HelpScreen(ModalScreen[None]):
    """Lists the keys; any of Esc, q, ? closes it."""

    BINDINGS = [
        Binding("escape,q,question_mark", "app.pop_screen", "Close", show=True),
    ]

    def __init__(self, keys: list[tuple[str, str]]) -> None:
        super().__init__()
        self.keys = keys

    def compose(self) -> ComposeResult:
        with Vertical(id="help-box", classes="modal-box"):
            yield Label("mlxtui keys", classes="modal-title")
            width = max((len(k) for k, _ in self.keys), default=4) + 2
            text = Text()
            for key, description in self.keys:
                text.append(key.ljust(width), style="bold")
                text.append(description + "\n")
            with VerticalScroll():
                yield Static(text, id="help-keys")
            yield Label("Esc closes", classes="modal-hint")


class ErrorModal(ModalScreen[None]):
    """A failed job: what went wrong and what to do (harlequin's pattern)."""

    BINDINGS = [Binding("escape,enter,q", "app.pop_screen", "Close", show=True)]

    def __init__(self, title: str, message: str, hint: str = "") -> None:
        super().__init__()
        self.title_text = title
        self.message = message
        self.hint = hint

    def compose(self) -> ComposeResult:
        with Vertical(id="error-box", classes="modal-box") as box:
            # A file:line list (the dataset errors that stop a training) reads best one a line.
            if any(len(line) > 66 for line in self.message.splitlines()[1:]):
                box.styles.width = 120
            yield Label(Text(self.title_text), classes="modal-title")
            with VerticalScroll():
                yield Static(Text(self.message), id="error-message")
                if self.hint:
                    yield Static(Text("What to do: " + self.hint), id="error-hint")
            yield Label("Enter or Esc closes", classes="modal-hint")


class ConfirmScreen(ModalScreen[bool]):
    """A yes/no question; y/Enter answer yes, n/Esc answer no."""

    BINDINGS = [
        Binding("y,enter", "answer(True)", "Yes", show=True),
        Binding("n,escape", "answer(False)", "No", show=True),
    ]

    def __init__(self, question: str) -> None:
        super().__init__()
        self.question = question

    def compose(self) -> ComposeResult:
        with Vertical(id="confirm-box", classes="modal-box"):
            yield Label(Text(self.question), classes="modal-title")
            with Horizontal(id="confirm-buttons"):
                yield Button("Yes (y)", id="yes", variant="error")
                yield Button("No (n)", id="no", variant="primary")

    def on_button_pressed(self, event: Button.Pressed) -> None:
        self.dismiss(event.button.id == "yes")

    def action_answer(self, answer: bool) -> None:
        self.dismiss(answer)
