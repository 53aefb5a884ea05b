"""The one way this project reads a torch file (a run's checkpoint, a cached common-start DP, a timing subject's
`--checkpoint`, a behaviour agent's state): plain tensors only, and one line for a file that is not one.

Why: `torch.load(weights_only=True)` refuses to run a poisoned file's code, but says so (and says that a file is
corrupt) in a page of advice that suggests `weights_only=False`, and prints a warning of its own first for a
raw pickle. Here the file is read with torch's warnings silenced, and any failure is CheckpointError: one line
naming the file, what is wrong with it, and the fix. What is wrong is told from the file's first bytes: a torch
file is a zip archive (`PK`); one that holds objects other than plain tensors (a global torch refuses) was
never loaded; a pickle that is not in a torch file is refused likewise; anything else is corrupt.
"""
from __future__ import annotations

import os
import warnings
from pathlib import Path
from typing import Any

_ZIP = b"PK\x03\x04"
_PICKLE = b"\x80"  # a pickle's PROTO opcode (protocol 2 and later)
_OBJECTS = "it holds objects other than plain tensors (not loaded: loading it could run code)"


class CheckpointError(ValueError):
    """A checkpoint or cache file cannot be read (corrupt, truncated, or not a plain-tensor file)."""


def _what_is_wrong(path: Path, err: BaseException) -> str:
    try:
        with open(path, "rb") as handle:
            head = handle.read(4)
    except OSError as e:
        return f"it cannot be opened ({e.strerror or type(e).__name__})"
    if head.startswith(_ZIP):
        return _OBJECTS if "GLOBAL" in str(err) else "it is corrupt or truncated"
    if head.startswith(_PICKLE):
        return _OBJECTS.replace("it holds", "it is a raw pickle of")
    return "it is corrupt (empty)" if not head else "it is corrupt (not a torch file)"


def load_checkpoint(path: str | os.PathLike, fix: str = "delete it, or rerun with --restart") -> dict[str, Any]:
    """torch.load(weights_only=True) of a dict, with one line naming the file and the fix if it cannot be read."""
    import torch  # lazy: torch

    path = Path(path)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # torch warns about a raw pickle's protocol before it refuses it
            st = torch.load(path, map_location="cpu", weights_only=True)
    except FileNotFoundError:
        raise CheckpointError(f"cannot read {path}: no such file") from None
    except Exception as e:  # noqa: BLE001 - torch raises many kinds (UnpicklingError, RuntimeError, EOFError, ...)
        raise CheckpointError(f"cannot read {path}: {_what_is_wrong(path, e)} ({type(e).__name__}); {fix}") from None
    if not isinstance(st, dict):
        raise CheckpointError(f"cannot read {path}: not a modip-bench checkpoint; {fix}")
    return st
