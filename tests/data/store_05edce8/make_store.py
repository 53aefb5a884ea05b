"""Writes the store in this folder with the project at commit 05edce8 (before the restructuring).

Run it from a checkout of 05edce8 (the current folder is put first on the path, so its `bench` is imported):

    cd <checkout of 05edce8> && OMP_NUM_THREADS=1 python <this file> <this folder>

It makes the tiny demo dataset (the test session's: agent_steps=2000, dataset_size=1500) in a temporary
folder, then, in sweep `compat` on the demo task at a tiny budget (seed 0, one thread):
- bc_gauss (a 32x32 MLP, to keep the files small) runs to the end, with its timing rows;
- dppo (preset `test`) is asked to stop at env step 120, mid-online; it stops at the end of that
  rollout, env step 144 (status preempted, its checkpoint kept).
The parquet tables, the checkpoint and the dataset (its Minari folder, as minari.tar.gz) are copied into the
folder; the common-start cache is not (a resumed run does not need it). The test loads this dataset rather
than making it again: the same code and pins made it with another content hash on another machine (the SAC
agent that makes it, and the env, round by the CPU), and the checkpoint refuses another dataset.
"""
from __future__ import annotations

import os
import shutil
import sys
import tarfile
import tempfile
from pathlib import Path

import torch

# The budget and sweep that tests/results/test_store_compat.py resolves with today's code (same run ids).
OVERRIDES = {
    "pretrain.steps": 40, "pretrain.log_every": 10, "pretrain.checkpoint_every": 20,
    "online.steps": 240, "online.checkpoint_every": 60, "online.log_every": 60,
    "eval.every": 120, "eval.episodes": 2, "eval.timing": True, "eval.timing_reps": 1, "eval.timing_batch": 2,
    "threads": 1,
}
SWEEP, TASK, SEED = "compat", "demo", 0
FINISHED = ("bc_gauss", {"bc_gauss.hidden": [32, 32]})
STOPPED = ("dppo", {"preset": "test", "common_start.steps": 40, "common_start.log_every": 10})
STOP_AT = {"env_step": 120}  # mid-online


def main(out: Path) -> None:
    torch.set_num_threads(1)
    sys.path.insert(0, str(Path.cwd()))
    import bench

    print(f"bench from {Path(bench.__file__).parent}")
    from bench.data.make import make_dataset
    from bench.runner import Preempted, request_stop_at, resolve_config, run_one
    from bench.tasks.demo import DEMO_DATASET

    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        os.environ["MINARI_DATASETS_PATH"] = str(tmp / "minari")
        make_dataset(DEMO_DATASET, root=tmp / "minari", agent_steps=2000, dataset_size=1500, progress=False)
        store = tmp / "store"
        finished = run_one(resolve_config(FINISHED[0], TASK, SEED, {**OVERRIDES, **FINISHED[1]}),
                           store_root=store, sweep_id=SWEEP, progress=False)
        request_stop_at(**STOP_AT)
        try:
            run_one(resolve_config(STOPPED[0], TASK, SEED, {**OVERRIDES, **STOPPED[1]}), store_root=store,
                    sweep_id=SWEEP, progress=False)
        except Preempted:
            pass
        else:
            raise SystemExit("the second run was not stopped")
        for path in sorted(store.rglob("*")):
            if path.is_file() and (path.suffix == ".parquet" or path.parts[-4] == "checkpoints"):
                dest = out / path.relative_to(store)
                dest.parent.mkdir(parents=True, exist_ok=True)
                shutil.copyfile(path, dest)
                print(f"{dest.relative_to(out)}  {path.stat().st_size} bytes")
        with tarfile.open(out / "minari.tar.gz", "w:gz") as tar:
            tar.add(tmp / "minari" / "mbench", arcname="mbench")  # the dataset, not the agents' cache beside it
        print(f"finished run {finished}")


if __name__ == "__main__":
    main(Path(sys.argv[1]).resolve())
