"""Decision transitions: where a chunk of `length` actions from a stored state runs, and where it is cut short.

Why: a chunk critic (IDQL's and PA-RL's Q over the executed actions of a decision, DSRL's Q^A and Q(s, w)) learns
from transitions that span a decision's `length` steps (DPPO's MultiStep wrapper). The buffer stores single steps,
so a decision that starts within `length - 1` steps of its episode's end, or of the end of the stored data, holds
fewer steps. How such a decision is cut decides what it may teach:
- cut by a terminal: nothing follows, so its value is the sum of its rewards whatever the unexecuted actions were;
  it stays (the padded actions it shows the critic carry no wrong value, and these are the only transitions that
  start within a decision of a terminal);
- cut by a timeout, or by the end of the stored data (an open episode, or data stored without its end flag): the
  env would have gone on executing the chunk's remaining actions, but the stored continuation is r_{0:k} +
  γ^k V(s_k), the value of switching to the policy after k steps. Paired with the padded chunk (the last executed
  action repeated), that target is the value of another chunk: such decisions are dropped (`cut_short`), not
  masked, because a mask would change every chunk critic's input (and so its architecture), and the states they
  start from are still seen as the next states of the decisions before them.
The buffer (methods/common/replay.py, `sample_decisions`) uses these on its own arrays.
"""
from __future__ import annotations

from collections.abc import Callable

import numpy as np


def decision_span(episode: np.ndarray, terminal: np.ndarray, timeout: np.ndarray, size: int, idx: np.ndarray,
                  length: int) -> tuple[np.ndarray, np.ndarray]:
    """The buffer rows a decision of `length` from each index runs over, (n, length) clipped to the stored data,
    and which of them it takes (`inside`, (n, length), a prefix: the decision ends at its episode's end, at a
    terminal or timeout step, or at the end of the stored data)."""
    idx = np.asarray(idx)
    steps = np.minimum(idx[:, None] + np.arange(length)[None, :], size - 1)
    inside = episode[steps] == episode[idx][:, None]
    ended = (terminal[steps] | timeout[steps]) & inside  # a chunk also ends at its episode's end flag
    after_end = np.concatenate([np.zeros((len(idx), 1), bool), np.cumsum(ended, axis=1)[:, :-1] > 0], axis=1)
    inside &= ~after_end
    inside &= np.concatenate([np.ones((len(idx), 1), bool), steps[:, 1:] > steps[:, :-1]], axis=1)
    return steps, np.logical_and.accumulate(inside, axis=1)


def cut_short(steps: np.ndarray, inside: np.ndarray, terminal: np.ndarray) -> np.ndarray:
    """(n,) bool: the decisions that took fewer than `length` steps for another reason than a terminal (a timeout
    or the end of the stored data), the ones a chunk critic must not learn from (module doc)."""
    taken = inside.sum(1)
    last = steps[np.arange(len(steps)), np.maximum(taken - 1, 0)]
    return (taken < steps.shape[1]) & ~terminal[last]


def whole_decisions(span: Callable[[np.ndarray], tuple[np.ndarray, np.ndarray]], terminal: np.ndarray,
                    idx: np.ndarray, redraw: Callable[[np.ndarray], np.ndarray],
                    fallback: Callable[[np.ndarray], np.ndarray] | None = None, tries: int = 10) -> np.ndarray:
    """`idx` with every start whose decision is cut short (`cut_short`; `span(idx)` gives its rows) replaced by
    `redraw(those starts)`, up to `tries` times, then by `fallback(those starts)` as often (a part of the buffer
    may hold no whole decision yet: the first online steps are all within a decision of the data's end). Draws
    nothing when none is cut short; one that is still cut short after that stays (nothing else to learn from)."""
    idx = np.asarray(idx)
    for draw in (redraw, fallback):
        for _ in range(tries if draw is not None else 0):
            bad = cut_short(*span(idx), terminal)
            if not bad.any():
                return idx
            idx = idx.copy()
            idx[bad] = draw(idx[bad])
    return idx
