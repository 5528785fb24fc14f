"""The dashboard's run status: a frozen value and a pure function that folds engine events into it."""

from __future__ import annotations

from dataclasses import dataclass, replace

from mlxtui.core import events as ev

USER_PAUSE_MESSAGE = "p continues · s stops (the adapter is saved)"


@dataclass(frozen=True)
class Status:
    state: str = "idle"  # idle | loading | training | paused | stopping | done | error
    model: str = ""
    iteration: int = 0
    total_iters: int = 0
    loss: float | None = None
    val_loss: float | None = None
    tokens_per_second: float | None = None
    eta_seconds: float | None = None
    message: str = ""

    @property
    def busy_training(self) -> bool:
        return self.state in ("training", "paused", "stopping")


def apply_event(status: Status, event: ev.Event) -> Status:
    """Return the status after `event`; events that do not change it return it unchanged."""
    if isinstance(event, ev.JobStarted) and event.kind in ("load", "load_model", "LoadModel"):
        return replace(status, state="loading", message=event.description)
    if isinstance(event, ev.ModelLoaded):
        state = "idle" if status.state == "loading" else status.state
        return replace(status, state=state, model=event.name, message="")
    if isinstance(event, ev.TrainStarted):
        return replace(
            status,
            state="training",
            iteration=event.start_iter,
            total_iters=event.total_iters,
            loss=None,
            val_loss=None,
            eta_seconds=None,
            message="",
        )
    if isinstance(event, ev.TrainStep):
        return replace(
            status,
            iteration=event.iteration,
            total_iters=event.total_iters,
            loss=event.loss,
            tokens_per_second=event.tokens_per_second,
            eta_seconds=event.eta_seconds,
        )
    if isinstance(event, ev.TrainReport):
        return replace(
            status,
            iteration=event.iteration,
            total_iters=event.total_iters,
            loss=event.train_loss,
            tokens_per_second=event.tokens_per_second,
        )
    if isinstance(event, ev.ValReport):
        return replace(status, val_loss=event.val_loss)
    if isinstance(event, ev.TrainPaused):
        # The engine's user-pause sentence is too long for one line; the keys are what matter.
        message = USER_PAUSE_MESSAGE if event.reason == "user" else event.message
        return replace(status, state="paused", message=message or f"paused ({event.reason})")
    if isinstance(event, ev.TrainResumed):
        return replace(status, state="training", message="")
    if isinstance(event, ev.TrainFinished):
        return replace(
            status,
            state="done",
            iteration=event.final_iteration,
            eta_seconds=None,
            message=event.message or event.status,
        )
    if isinstance(event, ev.JobProgress):
        counts = f" ({event.done}/{event.total})" if event.total else ""
        return replace(status, message=f"{event.message}{counts}")
    if isinstance(event, ev.JobFinished) and status.state == "loading":
        return replace(status, state="idle", message="")
    if isinstance(event, ev.JobFailed) and event.kind == "estimate":
        return status  # the Config pane shows it, under the field that caused it
    if isinstance(event, ev.JobFailed):
        # A failed chat reply must not make a running training look failed.
        fatal = any(word in event.kind.lower() for word in ("train", "load"))
        return replace(status, state="error" if fatal else status.state, message=event.message)
    return status


def format_duration(seconds: float | None) -> str:
    if seconds is None or seconds != seconds or seconds < 0:
        return "--"
    seconds = int(round(seconds))
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes}:{secs:02d}"


def status_text(status: Status) -> str:
    """One line: state, iteration/total, loss, tokens/s, ETA, then the model.

    What to do next (paused: which key continues; error: what failed) comes right after the state,
    so a narrow terminal cuts the figures, not the instructions.
    """
    parts = [status.state.upper()]
    urgent = status.state in ("paused", "error")
    if urgent and status.message:
        parts.append(status.message)
    if status.total_iters:
        parts.append(f"it {status.iteration}/{status.total_iters}")
    if status.loss is not None:
        parts.append(f"loss {status.loss:.3f}")
    if status.val_loss is not None:
        parts.append(f"val {status.val_loss:.3f}")
    if status.tokens_per_second and status.state != "paused":
        parts.append(f"{status.tokens_per_second:.0f} tok/s")
    if status.state == "training":  # no time runs out while paused
        parts.append(f"ETA {format_duration(status.eta_seconds)}")
    if status.message and not urgent:
        parts.append(status.message)
    if status.model:  # it does not change: last, where an 80-column line cuts
        parts.append(status.model)
    return "  │  ".join(parts)
