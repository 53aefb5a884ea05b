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


def _torch_full_disk(obj, f, *args, **kwargs):
    """torch.save on a full disk, as torch really fails: its zip writer turns the OSError into a RuntimeError."""
    try:
        _full_disk(obj, f)
    except OSError as e:
        raise RuntimeError("[enforce fail at inline_container.cc:672] . unexpected pos 23360 vs 23312") from e


@pytest.mark.parametrize("save", [_full_disk, _torch_full_disk], ids=["oserror", "torch's runtimeerror"])
def test_full_disk_during_a_checkpoint_write_is_one_line_and_leaves_no_temp_file(tmp_path, monkeypatch, save):
    """A plain ENOSPC, and torch's own full-disk error (its zip writer wraps the OSError in a RuntimeError)."""
    path = tmp_path / "ck" / "last.pt"
    monkeypatch.setattr(torch, "save", save)
    with pytest.raises(WriteError) as err:
        atomic_torch_save({"x": torch.zeros(3)}, path)
    _assert_one_line_full_disk(err.value, path)
    assert list(path.parent.iterdir()) == []


def test_a_run_on_a_full_disk_is_one_line_and_says_when_its_record_cannot_be_written(demo_dataset, tmp_path,
                                                                                      monkeypatch, capsys):
    """The disk fills during the run: the checkpoint write fails, then so does the failed row."""
    import pyarrow.parquet as pq

    from bench.cli import main

    store = tmp_path / "store"
    write_table = pq.write_table

    def fills(table, where, **kwargs):  # the store's writes succeed until the first checkpoint write failed
        if full:
            _full_disk(None, where)
        return write_table(table, where, **kwargs)

    def save(obj, f, *args, **kwargs):
        full.append(1)
        _torch_full_disk(obj, f)

    full: list[int] = []
    monkeypatch.setattr(pq, "write_table", fills)
    monkeypatch.setattr(torch, "save", save)
    sets = [a for kv in ("pretrain.steps=40", "pretrain.checkpoint_every=20", "eval.episodes=2", "eval.timing=false")
            for a in ("--set", kv)]
    rc = main(["--store", str(store), "run", "--method", "bc_gauss", "--task", "demo", "--quiet", *sets])
    err = [ln for ln in capsys.readouterr().err.splitlines() if ln.strip()]
    assert rc == 2 and full, err
    assert any("could not record run" in ln and "as failed" in ln for ln in err), err
    last = err[-1]
    assert last.startswith("mbench: error: cannot write ") and "last.pt" in last and "no space left" in last, err
    assert not [p for p in store.rglob(".tmp-*")]  # no temp file left anywhere
    monkeypatch.undo()
    assert Store(store).runs().status.tolist() == ["running"]  # what it could write; status calls it stale


def _mount_tmpfs(where: Path, size: str) -> bool:
    where.mkdir(parents=True, exist_ok=True)
    if os.geteuid() != 0:
        return False
    import subprocess

    done = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(where)], capture_output=True,
                          check=False)
    return done.returncode == 0


def test_a_run_on_a_real_full_tmpfs(demo_dataset, tmp_path, capsys):
    import subprocess

    from bench.cli import main

    mnt = tmp_path / "small"
    if not _mount_tmpfs(mnt, "300k"):
        pytest.skip("cannot mount a tmpfs here (needs root and mount rights)")
    try:
        sets = [a for kv in ("pretrain.steps=200", "pretrain.checkpoint_every=20", "eval.episodes=2",
                             "eval.timing=false") for a in ("--set", kv)]
        rc = main(["--store", str(mnt / "store"), "run", "--method", "bc_gauss", "--task", "demo", "--quiet", *sets])
        err = [ln for ln in capsys.readouterr().err.splitlines() if ln.strip()]
        assert rc == 2 and len(err) <= 2, err
        assert "no space left" in err[-1] and "last.pt" in err[-1], err
        assert not [p for p in mnt.rglob(".tmp-*")]
        runs = Store(mnt / "store").runs()
        assert runs.status.tolist() == ["failed"] or any("could not record run" in ln for ln in err), err
    finally:
        subprocess.run(["umount", str(mnt)], check=False)
