"""`mbench time --checkpoint` with a file that is not a plain-tensor torch file (issue 26, medium 10 and low):
one line naming the file, what is wrong with it (corrupt, or objects other than plain tensors: never loaded),
and no warning of torch's before it; the runner's loader says the same (random bytes are corrupt, not
poisoned)."""
from __future__ import annotations

import os
import pickle

import pytest
import torch

from bench.cli import main


class _Evil:
    def __reduce__(self):
        return (os.system, ("echo pwned",))


def _write(path, kind: str) -> None:
    if kind == "random bytes":
        path.write_bytes(os.urandom(3000))
    elif kind == "raw pickle":
        path.write_bytes(pickle.dumps({"version": 2, "x": _Evil()}))
    elif kind == "poisoned torch file":
        torch.save({"method": _Evil()}, path)
    elif kind == "truncated":
        torch.save({"x": torch.zeros(100)}, path)
        path.write_bytes(path.read_bytes()[:120])
    elif kind == "empty":
        path.write_bytes(b"")


KINDS = {"random bytes": "corrupt", "truncated": "corrupt", "empty": "corrupt",
         "raw pickle": "objects other than plain tensors", "poisoned torch file": "objects other than plain tensors"}


@pytest.mark.parametrize("kind", list(KINDS))
def test_mbench_time_with_a_bad_checkpoint_is_one_line(tmp_path, capfd, kind):
    path = tmp_path / "last.pt"
    _write(path, kind)
    rc = main(["--store", str(tmp_path / "store"), "time", "--method", "bc_gauss", "--checkpoint", str(path),
               "--reps", "2", "--quiet", "--no-store"])
    out, err = capfd.readouterr()
    lines = [ln for ln in err.splitlines() if ln.strip()]
    assert rc == 2 and len(lines) == 1, err
    assert str(path) in lines[0] and KINDS[kind] in lines[0], lines[0]
    assert "poisoned" not in lines[0] or KINDS[kind] != "corrupt"
    assert "pwned" not in out + err


@pytest.mark.parametrize("kind", list(KINDS))
def test_the_runner_s_loader_says_the_same(tmp_path, recwarn, kind):
    from results.checkpoint_files import CheckpointError, load_checkpoint

    path = tmp_path / "last.pt"
    _write(path, kind)
    with pytest.raises(CheckpointError) as err:
        load_checkpoint(path)
    msg = str(err.value)
    assert len(msg.splitlines()) == 1 and str(path) in msg and KINDS[kind] in msg, msg
    assert not [w for w in recwarn if "pickle protocol" in str(w.message)]
