"""What an online loop is given: the run's typed parts and its actions, and nothing else of the run.

Why: the loops (off_policy.py, on_policy.py) advance one run's progress through one method; handing them the
whole `Run` let them reach anything. A `Loop` names what they use: the config, the task, the method, the
buffer, the training actor's state, the progress, and four actions (log, evaluate, checkpoint, maybe_stop).
"""
from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

from bench.config.run import RunConfig
from bench.runner.progress import Progress
from methods.base import ActorState, Method
from methods.common.replay import ReplayBuffer


@dataclasses.dataclass
class Loop:
    run_id: str
    cfg: RunConfig
    task: Any  # bench.tasks.TaskSpec
    method: Method
    buffer: ReplayBuffer
    train_state: ActorState
    progress: Progress
    log: Callable[..., None]  # log(phase, metrics, actor="", n_episodes=0): curve rows at the current progress
    evaluate: Callable[[str], Any]  # evaluate(phase): every actor of the method, now
    checkpoint: Callable[[], None]  # save the run and record its progress (status running)
    maybe_stop: Callable[[], None]  # if a stop was asked for: checkpoint, record, raise Preempted
    resumed: dict[str, Any] = dataclasses.field(default_factory=dict)  # what the loop saved at the checkpoint
    # Set by a loop whose state lives outside the run (the on-policy loop's vector envs): every checkpoint calls
    # it and saves what it returns, which comes back as `resumed` on the next attempt.
    capture: Callable[[], dict[str, Any]] | None = None
    # Whether the loop can be saved between two decisions now (stop requests are honoured there, and an eval in
    # progress is abandoned at one); False for an off-policy env whose state cannot be captured, which stops at
    # its episode's end and completes its evals.
    mid_stops: bool = True
