"""Chat pane: a prompt, streamed replies in bubbles, a choice of weights, a key to stop."""

from __future__ import annotations

from rich.text import Text
from textual import on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, VerticalScroll
from textual.message import Message
from textual.widget import Widget
from textual.widgets import Input, Select, Static

WEIGHTS = (("adapter", "adapter"), ("base", "base"), ("A/B both", "compare"))


class Bubble(Static):
    """One turn; an assistant bubble grows token by token."""

    DEFAULT_CSS = """
    Bubble { height: auto; padding: 0 1; margin: 0 0 1 0; }
    Bubble.-user { background: $primary 15%; margin-left: 4; }
    Bubble.-assistant { background: $surface; margin-right: 4; }
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


class ChatPane(Widget):
    DEFAULT_CSS = """
    ChatPane { height: 1fr; }
    ChatPane #chat-log { height: 1fr; }
    ChatPane #chat-bar { height: 3; }
    ChatPane #chat-input { width: 1fr; }
    ChatPane #chat-weights { width: 16; }
    """

    BINDINGS = [Binding("escape", "stop_generation", "Stop reply", show=True)]

    class Send(Message):
        """The user asked something; the app submits a generation job."""

        def __init__(self, messages: list[dict[str, str]], weights: str) -> None:
            super().__init__()
            self.messages = messages
            self.weights = weights

    class StopRequested(Message):
        pass

    def __init__(self, *, id: str | None = None, classes: str | None = None) -> None:
        super().__init__(id=id, classes=classes)
        self.history: list[dict[str, str]] = []
        self.streaming: dict[str, Bubble] = {}  # slot -> bubble being written

    def compose(self) -> ComposeResult:
        yield VerticalScroll(id="chat-log")
        with Horizontal(id="chat-bar"):
            yield Input(placeholder="Ask the model… (Enter sends, Esc stops)", id="chat-input")
            yield Select(WEIGHTS, value="adapter", allow_blank=False, id="chat-weights")

    @property
    def generating(self) -> bool:
        return bool(self.streaming)

    @property
    def weights(self) -> str:
        value = self.query_one("#chat-weights", Select).value
        return value if isinstance(value, str) else "adapter"

    def transcript(self) -> str:
        return "\n".join(b.text for b in self.query(Bubble))

    @on(Input.Submitted, "#chat-input")
    def _submitted(self, event: Input.Submitted) -> None:
        event.stop()
        text = event.value.strip()
        if not text:
            return
        if self.generating:
            self.notify("Wait for the reply, or press Esc to stop it.", severity="warning")
            return
        event.input.value = ""
        self.history.append({"role": "user", "content": text})
        log = self.query_one("#chat-log", VerticalScroll)
        log.mount(Bubble("user", text))
        slots = ("A", "B") if self.weights == "compare" else ("",)
        titles = {"A": "A · base", "B": "B · adapter", "": ""}
        for slot in slots:
            bubble = Bubble("assistant", title=titles[slot])
            bubble.add_class("-streaming")
            self.streaming[slot] = bubble
            log.mount(bubble)
        log.scroll_end(animate=False)
        self.post_message(self.Send(list(self.history), self.weights))

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

    def action_stop_generation(self) -> None:
        # When nothing streams, Esc leaves the input (the app moves focus to the pane).
        self.post_message(self.StopRequested())
