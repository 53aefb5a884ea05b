"""The signals of a run in the foreground (`mbench run`): SIGTERM and Ctrl-C stop it at its next safe point, saved.

Why: Slurm (or `kill`) sends SIGTERM and kills about 30 s later; a user presses Ctrl-C. Either way the run must
keep its work, as a sweep job does (bench/sweep/job.py): the handler only sets a flag (`request_stop`), and the
run checkpoints at its next safe point, records `preempted` (SIGTERM) or `interrupted` (SIGINT), never `failed`,
and raises `Preempted`; the command turns that into one line and exit status 128 + the signal. A second Ctrl-C
exits at once (KeyboardInterrupt): the run is recorded `interrupted`, and a rerun resumes from its last
checkpoint. Outside the block, the handlers that were there before are put back.
"""
from __future__ import annotations

import contextlib
import signal
import sys
from collections.abc import Iterator

from bench.runner.stops import clear_stop, request_stop


@contextlib.contextmanager
def stop_on_signals(notice: bool | None = None) -> Iterator[dict[str, int]]:
    """Turn SIGTERM and SIGINT into stop requests for the block; yields {"signum": the first signal} once one
    came. `notice`: say on stderr, at the first Ctrl-C, that the run is stopping (default: when stderr is a
    terminal, so that a script's stderr holds only the final line)."""
    got: dict[str, int] = {}
    tell = sys.stderr.isatty() if notice is None else notice

    def on_term(signum, frame):  # runs between two bytecodes of the run: only set flags
        got.setdefault("signum", signum)
        request_stop("preempted")

    def on_int(signum, frame):
        if got.get("interrupts"):
            raise KeyboardInterrupt  # the second Ctrl-C: at once
        got["interrupts"] = 1
        got.setdefault("signum", signum)
        request_stop("interrupted")
        if tell:
            with contextlib.suppress(Exception):  # stderr may be mid-write in the interrupted code
                print("\nstopping at the next safe point to save the run (Ctrl-C again: exit at once, "
                      "unsaved)", file=sys.stderr, flush=True)

    clear_stop()
    old = {s: signal.getsignal(s) for s in (signal.SIGTERM, signal.SIGINT)}
    signal.signal(signal.SIGTERM, on_term)
    signal.signal(signal.SIGINT, on_int)
    try:
        yield got
    finally:
        for s, handler in old.items():
            signal.signal(s, handler if handler is not None else signal.SIG_DFL)
        clear_stop()
