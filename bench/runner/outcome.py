"""What a run that ends by an exception records: `interrupted` (a second Ctrl-C) or `failed`, never a success.

Why: the record must say how the run ended even when the store itself is the failure (a full disk): the row and
the curve so far are written if they can be, and if they cannot, a line on stderr says so (the record may then
still say running, which `mbench sweep status` shows as stale). A stop asked for by a signal is not an ending
by exception: the run recorded it itself (lifecycle.py, `Run.stop_here`).
"""
from __future__ import annotations

import sys
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any

from results.store import Store


def record_end(err: BaseException, store_root: Path, sweep_id: str, run_id: str, attempt: int,
               run_row: Callable[[str, str], dict[str, Any]], curve: list[dict[str, Any]]) -> None:
    """Write the run's row for an ending by `err` (call it from the `except` block: it keeps the traceback)."""
    if isinstance(err, KeyboardInterrupt):  # a second Ctrl-C (bench/runner/signals.py): not a failure
        status, text = "interrupted", ("KeyboardInterrupt: exited at once, unsaved; a rerun resumes from the last "
                                       "checkpoint")
    else:
        first = f"{type(err).__name__}: {err}".splitlines()[0] if str(err) else type(err).__name__
        status, text = "failed", first + "\n" + traceback.format_exc()
    try:
        Store(store_root).write_run(run_row(status, text))
        if curve:
            Store(store_root).write_curves(sweep_id, run_id, curve, attempt=attempt)
    except Exception as write_err:  # noqa: BLE001 - the store itself may be the failure: say so
        said = (str(write_err).strip().splitlines() or [type(write_err).__name__])[0]
        print(f"mbench: could not record run {run_id} as {status} in the store {store_root}: {said}; its record "
              "may still say running (`mbench sweep status` shows it as stale)", file=sys.stderr)
