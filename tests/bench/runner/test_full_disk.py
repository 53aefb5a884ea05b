"""A full disk (issue 26, medium 4): every atomic writer says so in one line naming the path, and leaves no
temporary file behind (a leftover one keeps the disk full). ENOSPC is injected into the writer, so this runs
everywhere."""
from __future__ import annotations

import errno
import os
from pathlib import Path

import pytest
import torch

from bench.runner.checkpoints import atomic_torch_save
from results.atomic import WriteError, atomic_write
from results.store import Store


def _full_disk(obj, f, *args, **kwargs):
    """A torch.save that writes part of the file, then finds the disk full."""
    if isinstance(f, (str, os.PathLike)):
        with open(f, "wb") as handle:
            handle.write(b"x" * 4096)
    else:
        f.write(b"x" * 4096)
    raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))


def _assert_one_line_full_disk(err: BaseException, path: Path) -> None:
    msg = str(err)
    assert "\n" not in msg and str(path) in msg and "no space left" in msg.lower(), msg


def test_full_disk_during_a_checkpoint_write_is_one_line_and_leaves_no_temp_file(tmp_path, monkeypatch):
    path = tmp_path / "ck" / "last.pt"
    monkeypatch.setattr(torch, "save", _full_disk)
    with pytest.raises(OSError) as err:
        atomic_torch_save({"x": torch.zeros(3)}, path)
    _assert_one_line_full_disk(err.value, path)
    assert list(path.parent.iterdir()) == []


def test_full_disk_during_a_store_write_is_one_line_and_leaves_no_temp_file(tmp_path, monkeypatch):
    import pyarrow.parquet as pq

    store = Store(tmp_path)
    store.write_run({"run_id": "r0", "sweep_id": "s", "status": "running", "attempt": 1})

    def full(table, where, **kwargs):
        _full_disk(None, where)

    monkeypatch.setattr(pq, "write_table", full)
    with pytest.raises(WriteError) as err:
        store.write_run({"run_id": "r0", "sweep_id": "s", "status": "finished", "attempt": 1})
    folder = tmp_path / "table=runs" / "sweep=s"
    _assert_one_line_full_disk(err.value, folder / "r0+a1.parquet")
    assert [p.name for p in folder.iterdir()] == ["r0+a1.parquet"]  # the earlier write stands; no temp file
    monkeypatch.undo()
    assert store.runs().status.tolist() == ["running"]


def test_the_helper_removes_its_temp_file_on_any_error_and_keeps_the_old_file(tmp_path):
    path = tmp_path / "f.bin"
    atomic_write(path, lambda h: h.write(b"old"))

    def boom(handle):
        handle.write(b"half")
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        atomic_write(path, boom)
    assert [p.name for p in tmp_path.iterdir()] == ["f.bin"] and path.read_bytes() == b"old"
