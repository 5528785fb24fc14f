"""How a paused or stopping run tells a person what to do, in the words of the front end.

The core's pause and stop messages say the dashboard's keys (p continues, s stops): the
dashboard is where a person can press them. A headless run (`mlxtui train`, `mlxtui sweep`)
has no keys: Ctrl-C (or SIGTERM/SIGHUP) stops it and saves the adapter, and a NaN or a peak
past memory_limit stops it by itself (`TrainPipeline.stop_on_nan`), because nobody is there
to continue it. The core builds its messages from the phrases below, and `headless_words`
says them as a headless run can act on them, the way `fileio.worded_replace` words the
"replace it" fix per front end. Pure strings: the CLI imports this without MLX.
"""

from __future__ import annotations

# Pauses a headless run ends with a stop (nobody is there to continue it): TrainPipeline's
# stop_on_nan, `mlxtui sweep` (which skips that run), and the printer's wording follow it.
HEADLESS_STOPS = ("nan", "memory_limit")

# the dashboard's phrases, as the core's messages say them
USER_PAUSE = "press p to continue or s to stop (the adapter is saved on stop)"
MEMORY_CONTINUE = "p continues now"
DISK_KEYS = "p retries now, s stops"
NAN_PAUSED = "training paused."
NAN_CHOICES = "Continue rolls back to it; stop ends the run."
LIMIT_CHOICES = "Paused: continue goes on past the limit; stop saves the adapter, and"
STOP_PRESSED = "stop was pressed"
RANKS_STOP = "s stops every rank after rank 0 has saved"

# ... and as a headless run says them
HEADLESS = {
    USER_PAUSE: "Ctrl-C stops it (the adapter is saved)",
    MEMORY_CONTINUE: "Ctrl-C stops it and saves the adapter",
    DISK_KEYS: "Ctrl-C stops it",
    NAN_PAUSED: "training stopped (a headless run has nobody to continue it).",
    NAN_CHOICES: "",
    LIMIT_CHOICES: "A headless run stops here (nobody can continue it past the limit) and "
    "saves the adapter, and",
    STOP_PRESSED: "the run was stopped",
    RANKS_STOP: "Ctrl-C stops every rank after rank 0 has saved",
}


def headless_words(text: str) -> str:
    """`text` with the dashboard's keys said as a headless run can act on them."""
    for keys, words in HEADLESS.items():
        if keys in text:
            text = text.replace(keys + " ", words + " " if words else "").replace(keys, words)
    return text
