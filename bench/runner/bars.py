"""A progress bar that appears only once there is progress to show.

Why: the common start is read from its cache on most runs; a bar drawn at 0 and closed at once would only
clutter the output, so the bar is made at its first step (a cache hit shows none).
"""
from __future__ import annotations

from tqdm import tqdm


class LazyBar:
    """A tqdm bar that appears at its first step (a cache hit shows none)."""

    def __init__(self, **kw):
        self.kw, self.bar = kw, None

    def step(self, n: int) -> None:
        if self.bar is None:
            self.bar = tqdm(leave=False, **self.kw)
        self.bar.update(1)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        if self.bar is not None:
            self.bar.close()
