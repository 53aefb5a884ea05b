"""Junk in a store (issue 26, low): a dangling symbolic link and a file that is not parquet are named in one
line, at once, with what is wrong and the fix; the message never stops mid-path."""
from __future__ import annotations

import time

import pytest

from results.schema import StoreError
from results.store import Store


def _store_with_a_run(root):
    store = Store(root)
    store.write_run({"run_id": "r0", "sweep_id": "s", "status": "finished", "attempt": 1})
    return store, root / "table=runs" / "sweep=s"


def test_a_dangling_symlink_is_named_with_its_target_at_once(tmp_path):
    store, folder = _store_with_a_run(tmp_path / "store")
    link = folder / "r1+a1.parquet"
    link.symlink_to(tmp_path / "gone.parquet")
    t0 = time.perf_counter()
    with pytest.raises(StoreError) as err:
        store.runs()
    msg = str(err.value)
    assert time.perf_counter() - t0 < 1.0
    assert len(msg.splitlines()) == 1 and str(link) in msg and "gone.parquet" in msg and "delete it" in msg, msg


def test_a_junk_file_s_message_names_it_whole_and_says_why(tmp_path):
    store, folder = _store_with_a_run(tmp_path / "store" / ("deep" * 30))
    junk = folder / "junk+a1.parquet"
    junk.write_text("not parquet at all")
    with pytest.raises(StoreError) as err:
        store.runs()
    msg = str(err.value)
    assert len(msg.splitlines()) == 1 and msg.startswith(f"cannot read {junk}:"), msg
    why = msg[len(f"cannot read {junk}:"):]
    assert str(folder) not in why.split("; it is not")[0] and "magic bytes" in why, msg  # the reason, not the path
    assert msg.endswith(str(tmp_path / "store" / ("deep" * 30))), msg
