"""Stop requests for the active run: `request_stop` (a signal: SIGTERM, Ctrl-C, a sweep job's SIGUSR2) and
`request_stop_at` (tests, resume checks). A run that sees one checkpoints at its next safe point, records the
request's status (`preempted`, or `interrupted` for Ctrl-C; never `failed`) and raises `Preempted`.

The safe points a signal's request is honoured at (Slurm kills ~30 s after SIGTERM; benchmarks/stop_latency.py
measures it): after each step of the common start (nothing saved: a rerun builds it again) and of the offline
phase; online, between two decisions (bench/runner/off_policy.py, on_policy.py); in an on-policy update, before
each of its gradient steps, where the update is abandoned and the run saved as before it with its rollout pending
(on_policy.py's `update_or_stop`); in an eval, before each of its decisions, where the eval is abandoned and the
run saved as before it (bench/runner/evaluation.py, lifecycle.py's `Run.evaluate`); in the final timing, before
each timed call, where the timing is abandoned likewise (bench/runner/timing.py, `Run.final`). A counter request (`request_stop_at`) fires at the checkpoint boundaries of the
offline phase and at the online safe points."""
from __future__ import annotations

STOP_STATUSES = ("preempted", "interrupted")


class Preempted(RuntimeError):
    """Raised after a stop request: the run saved a checkpoint and recorded `status` (preempted or interrupted)."""

    def __init__(self, message: str, status: str = "preempted"):
        super().__init__(message)
        self.status = status


class _Stop:
    requested = False
    status = "preempted"
    at: dict[str, int | None] = {"grad_step": None, "env_step": None}


def request_stop(status: str = "preempted") -> None:
    """Ask the active run to checkpoint at its next safe point, record `status` and raise Preempted (for
    signals; a handler may call it between any two bytecodes, so it only sets flags)."""
    if status not in STOP_STATUSES:
        raise ValueError(f"unknown stop status {status!r}; expected one of {STOP_STATUSES}")
    _Stop.status = status
    _Stop.requested = True


def request_stop_at(grad_step: int | None = None, env_step: int | None = None) -> None:
    """Stop at the first safe point at or after these counters (tests of resume, and `--stop-at`)."""
    _Stop.at.update(grad_step=grad_step, env_step=env_step)


def clear_stop() -> None:
    _Stop.requested = False
    _Stop.status = "preempted"


def stop_requested() -> bool:
    """A stop was asked for (a signal), whatever the counters."""
    return _Stop.requested


def stop_status() -> str:
    """The status a run stopped now records: `interrupted` after Ctrl-C, else `preempted`."""
    return _Stop.status if _Stop.requested else "preempted"


def stop_due(grad_step: int, env_step: int) -> bool:
    """Whether the run must stop now; a counter-based request is consumed when it fires."""
    at_g, at_e = _Stop.at["grad_step"], _Stop.at["env_step"]
    due = (at_g is not None and grad_step >= at_g) or (at_e is not None and env_step >= at_e)
    if _Stop.requested or due:
        _Stop.at.update(grad_step=None, env_step=None)
        return True
    return False
