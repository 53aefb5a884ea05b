"""Raw dataset files that are wrong (issue 26, low): each error is one line naming the file and the key (or that
it is not an hdf5 file), never numpy's bare reshape or conversion error, nor a `minari download` of a path."""
from __future__ import annotations

import h5py
import numpy as np
import pytest

from bench.data import DatasetError
from bench.data.loaders import load_dataset
from bench.tasks import get_task

N = 400


def _write(path, **over) -> None:
    rng = np.random.default_rng(0)
    data = {"observations": rng.normal(size=(N, 9)).astype(np.float32),
            "actions": rng.uniform(-1, 1, size=(N, 1)).astype(np.float32), "rewards": np.ones(N, np.float32),
            "terminals": np.zeros(N, bool), "timeouts": np.arange(N) % 200 == 199}
    meta = over.pop("metadata", None)
    data.update(over)
    with h5py.File(path, "w") as f:
        for k, v in data.items():
            f.create_dataset(k, data=v)
        if meta is not None:
            f.create_dataset("metadata", data=meta)


CASES = {
    "2-D rewards": ({"rewards": np.ones((N, 2), np.float32)}, ["'rewards'", "(400, 2)"]),
    "string observations": ({"observations": np.array([b"abc"] * N)}, ["'observations'", "numbers"]),
    "metadata as a dataset": ({"metadata": 3}, ["'metadata'", "group"]),
}


@pytest.mark.parametrize("case", list(CASES))
def test_a_wrong_key_is_one_line_naming_file_and_key(tmp_path, case):
    over, needles = CASES[case]
    path = tmp_path / "raw.hdf5"
    _write(path, **over)
    with pytest.raises(DatasetError) as err:
        load_dataset(get_task("demo"), path=str(path))
    msg = str(err.value)
    assert len(msg.splitlines()) == 1 and str(path) in msg and all(n in msg for n in needles), msg


@pytest.mark.parametrize("name", ["data.txt", "data"])
def test_an_existing_file_that_is_not_hdf5_is_said_so(tmp_path, name):
    path = tmp_path / name
    path.write_text("hello")
    with pytest.raises(DatasetError) as err:
        load_dataset(get_task("demo"), path=str(path))
    msg = str(err.value)
    assert len(msg.splitlines()) == 1 and str(path) in msg and "not an hdf5 file" in msg, msg
    assert "minari download" not in msg
