"""A run's progress: the counters a checkpoint keeps so that a resumed run continues exactly.

Why a dataclass: the loops, evaluation and checkpoints read and advance the same counters; typed fields say
which exist (a string-keyed dict let each loop add its own). A checkpoint stores them as JSON; one written
before a field existed reads with that field's default.
"""
from __future__ import annotations

import dataclasses
import json


@dataclasses.dataclass
class Progress:
    phase: str = "pretrain"  # "pretrain" until the offline phase is done, then "finetune"
    grad_step: int = 0  # gradient steps so far (the method's own count of updates)
    env_step: int = 0  # env steps of the training env(s) so far
    episode: int = 0  # finished training episodes (the off-policy loop seeds each episode from it)
    next_eval: int = 0  # the next env step of the eval grid
    last_ckpt_env_step: int = 0  # env step of the last checkpoint
    wall_s: float = 0.0  # seconds worked over all attempts, as of the last checkpoint
    attempt: int | None = None  # this try's attempt number in the store
    pretrain_done: bool = False
    dp_loaded: bool = False  # the common-start DP was handed to the method
    rollout: int = 0  # on-policy rollouts done
    # The commits its attempts ran from, in order (bench.runner.provenance.commit_label: "<sha>", "+dirty" where
    # tracked files differed): a run resumed under other code says so. Empty in checkpoints older than the field.
    commits: list[str] = dataclasses.field(default_factory=list)

    def to_json(self) -> str:
        return json.dumps(dataclasses.asdict(self))

    @classmethod
    def from_json(cls, text: str) -> Progress:
        known = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in json.loads(text).items() if k in known})
