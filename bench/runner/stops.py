"""Stop requests for the active run: `request_stop` (SIGTERM from submitit) and `request_stop_at` (tests, resume
checks). A run that sees one checkpoints at its next safe point and raises `Preempted`."""
from __future__ import annotations


class Preempted(RuntimeError):
    """Raised after a stop request: the run saved a checkpoint and recorded status=preempted."""


class _Stop:
    requested = False
    at: dict[str, int | None] = {"grad_step": None, "env_step": None}


def request_stop() -> None:
    """Ask the active run to checkpoint at its next safe point and raise Preempted (for submitit/SIGTERM)."""
    _Stop.requested = True


def request_stop_at(grad_step: int | None = None, env_step: int | None = None) -> None:
    """Stop at the first safe point at or after these counters (tests of resume, and `--stop-at`)."""
    _Stop.at.update(grad_step=grad_step, env_step=env_step)


def clear_stop() -> None:
    _Stop.requested = False


def stop_requested() -> bool:
    """A stop was asked for (SIGTERM), whatever the counters."""
    return _Stop.requested


def stop_due(grad_step: int, env_step: int) -> bool:
    """Whether the run must stop now; a counter-based request is consumed when it fires."""
    at_g, at_e = _Stop.at["grad_step"], _Stop.at["env_step"]
    due = (at_g is not None and grad_step >= at_g) or (at_e is not None and env_step >= at_e)
    if _Stop.requested or due:
        _Stop.at.update(grad_step=None, env_step=None)
        return True
    return False
