"""What a run records besides its config and counters: its provenance, and what the reports need of it.

Why: analysis/ reads the store alone and knows no method name (tests/structure), so whatever a report says about
a run's method, task, data or evaluation must be in the run's record (the runs row's provenance_json):
- `actors`: the method's product actor (its first, the headline) and each actor's action-selection rule at
  evaluation (its config.py's SELECTION, methods/common/selection.py), whether that product is the common start
  itself (`common_start`: the reports' reference for gains), and `actor_sampling`, the actors exempt from
  `eval.sampler`;
- `ceiling`: what the task knows of its maximum (TaskSpec.ceiling: a max return, or success), from which a
  report flags a cell whose episodes sit at it;
- `data_score`: the offline data's mean normalised episode return, the level that fine-tuning starts from;
- `seeds`: the run seed, and the reset seeds of its eval states (bench/tasks/eval_states.py) with the protocol.
"""
from __future__ import annotations

from typing import Any

import numpy as np
import torch

from methods.catalog import method_card


def data_score(task, dataset) -> float | None:
    """The mean normalised return of the dataset's episodes (None where the task has no refs or no data)."""
    if dataset is None:
        return None
    returns = dataset.episode_returns()
    scores = [task.normalized_score(float(r)) for r in returns]
    value = float(np.mean(scores)) if scores else float("nan")
    return value if np.isfinite(value) else None


def actors_record(method_name: str) -> dict[str, Any]:
    """The method's product actor and each actor's action-selection rule, as its config.py declares them."""
    card = method_card(method_name)
    return {"product": card.actors[0], "selection": dict(card.selection)}


def provenance(cfg, task, method=None, dataset=None, dataset_hash: str = "", eval_seeds=None,
               score_of_data: float | None = None) -> dict[str, Any]:
    """The runs row's provenance_json. `method`, `dataset` and `eval_seeds` are None before setup has made them."""
    return {
        "dataset_hash": dataset_hash,
        "dataset_provenance": dataset.provenance if dataset is not None else {},
        "env_id": task.env_id, "ref_min": task.ref_min, "ref_max": task.ref_max,
        "ref_source": task.ref_source, "torch_threads": torch.get_num_threads(),
        "parameter_counts": method.parameter_counts() if method is not None else {},
        "actor_sampling": method.actor_sampling() if method is not None else {},
        "actors": {**actors_record(cfg.method),
                   "common_start": bool(method.common_start_is_product) if method is not None else None},
        "ceiling": task.ceiling(),
        "data_score": score_of_data,
        "seeds": {"run": cfg.seed, "eval": list(eval_seeds or []), "eval_states": cfg.eval.states,
                  "eval_seed_set": cfg.eval.seed_set},
    }
