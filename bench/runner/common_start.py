"""The common start, harness side: build the common-start DP once per key, cache it, hand it to the method.

Why: every method with `uses_pretrained_dp` starts each seed from the same behaviour-cloned DP (DESIGN.md,
"Common start"), so their env-step-0 scores are equal. The DP is trained by methods/common/common_start.py
and cached under <store>/pretrained/<key>.pt, keyed by:
- the run's `common_start` section (steps, batch, schedules);
- its `dp` section without the keys that only change how the DP samples (DPConfig.SAMPLING_KEYS);
- the dataset's content hash and the resolved chunk length;
- the seed;
- CACHE_VERSION (bump it when the trainer changes what it computes);
- compile_train, only when on (a compiled trainer's DP differs from the eager one's by float rounding).
A lock file makes concurrent jobs of one key build it once. A cache file that cannot be read is an error
naming the file; `--restart` rebuilds it.
"""
from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from bench.config.run import RunConfig
from bench.runner.checkpoints import atomic_torch_save
from methods.common.common_start import train_common_start
from methods.common.dp_config import DPConfig
from results.checkpoint_files import CheckpointError, load_checkpoint
from results.locks import exclusive

CACHE_VERSION = 1


def cache_key(cfg: RunConfig, dataset_hash: str, chunk: int) -> str:
    dp = cfg.dp.model_dump(mode="json", exclude=set(DPConfig.SAMPLING_KEYS))
    keyed = {"version": CACHE_VERSION, "common_start": cfg.common_start.model_dump(mode="json"),
             "dataset": dataset_hash, "chunk": int(chunk), "seed": cfg.seed, "dp": dp}
    if cfg.compile_train:
        keyed["compile_train"] = True
    return hashlib.sha256(json.dumps(keyed, sort_keys=True).encode()).hexdigest()[:16]


def obtain(cfg: RunConfig, store_root: Path, dataset_hash: str, spaces, normalizer, buffer, device,
           on_step: Callable[[int], None] | None = None,
           rebuild_unreadable: bool = False) -> tuple[dict[str, Any], list[dict[str, Any]], bool]:
    """(dp_state, curve rows, built) of the run's common start: from the cache, or trained now and cached.

    The curve rows are the trainer's loss every `common_start.log_every` steps (phase "pretrain", env_step 0).
    `on_step(n)` reports progress while building. `rebuild_unreadable`: an unreadable cache file is rebuilt
    (--restart) instead of being an error."""
    cs, dp_cfg = cfg.common_start, cfg.dp
    chunk = dp_cfg.chunk or spaces.chunk
    path = Path(store_root) / "pretrained" / f"{cache_key(cfg, dataset_hash, chunk)}.pt"
    fix = "delete it, or rerun with --restart, which rebuilds it"
    with exclusive(path.with_suffix(".lock")):
        if path.exists():
            try:
                st = load_checkpoint(path, fix=fix)
                return st["dp_state"], json.loads(st["curve"]), False
            except (CheckpointError, KeyError) as e:
                if not rebuild_unreadable:
                    raise CheckpointError(str(e) if isinstance(e, CheckpointError)
                                          else f"cannot read {path}: not a common-start cache file; {fix}") from None
                path.unlink()
        walls: dict[int, float] = {}
        t0 = time.perf_counter()

        def step(n: int, _loss: float) -> None:
            walls[n] = time.perf_counter() - t0
            if on_step is not None:
                on_step(n)

        state, losses = train_common_start(cs, dp_cfg, spaces.obs_dim, spaces.act_dim, chunk, normalizer, buffer,
                                           cfg.seed, device, step, compile_train=cfg.compile_train)
        curve = [{"run_id": "", "phase": "pretrain", "env_step": 0, "grad_step": r["grad_step"],
                  "wall_s": walls.get(r["grad_step"], 0.0), "actor": "", "metric": "loss/denoise",
                  "value": r["loss/denoise"], "n_episodes": 0} for r in losses]
        atomic_torch_save({"dp_state": state, "curve": json.dumps(curve)}, path)
        return state, curve, True
