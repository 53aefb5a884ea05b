"""Suite `demo`: a small embedded task that learns within minutes on 2 CPU cores.

InvertedDoublePendulum-v5 cut to 200-step episodes, with medium-quality data made here (`mbench data make`).
The task has no refs of its own: they come from its dataset (random and expert returns, measured when
`mbench data make` made it; the loaded dataset's `ref_source` says so). A raw D4RL file has none.

This module does not import `bench.tasks` (which imports it to register its tasks): `TASKS` lists them.
"""
from __future__ import annotations

from typing import Any

DEMO_DATASET = "mbench/inverted-double-pendulum/medium-v0"
# The most a step can earn on InvertedDoublePendulum-v5: the alive bonus 10 less the least distance penalty,
# (2 - 1.2)^2 = 0.64 with the pendulum upright (tip at 1.2, cart at 0, at rest); a full balance of T steps
# returns at most 9.36 T.
BALANCE_STEP_MAX = 10.0 - (2.0 - 1.2) ** 2

# The suite's tasks, as TaskSpec fields; bench.tasks registers them.
TASKS: tuple[dict[str, Any], ...] = (
    {
        "name": "demo",
        "suite": "demo",
        "env_id": "InvertedDoublePendulum-v5",
        "dataset_id": DEMO_DATASET,
        "ref_min": None,
        "ref_max": None,
        "ref_source": "none on the task: its dataset's refs, if it has any (a made dataset measures them)",
        "max_episode_steps": 200,
        # 30 episodes per eval point: with 10, one state is worth ~10 points of score (issue 25)
        "eval_episodes": 30,
        "max_return": 200 * BALANCE_STEP_MAX,
        "chunk": 4,
        "description": "InvertedDoublePendulum-v5, 200-step episodes, medium data made offline",
    },
    {
        # The harder variant of MODIP's terminal-v/q check (issue 15): the demo's env and data, with 1000-step
        # episodes. A planner that balances for 200 steps saturates the demo; over 1000 steps small errors of
        # the plan compound, and the terminal value must carry more of the return (γ^H V over a longer tail),
        # so v and q can differ in score. Its normalised score uses the same refs (made on 200-step episodes),
        # so it reads as a multiple of the demo's: 500 is a full 1000-step balance.
        "name": "demo-long",
        "suite": "demo",
        "env_id": "InvertedDoublePendulum-v5",
        "dataset_id": DEMO_DATASET,
        "ref_min": None,
        "ref_max": None,
        "ref_source": "the demo dataset's refs, measured on 200-step episodes",
        "max_episode_steps": 1000,
        "eval_episodes": 30,
        "max_return": 1000 * BALANCE_STEP_MAX,
        "chunk": 4,
        "description": "InvertedDoublePendulum-v5, 1000-step episodes, the demo's medium data",
    },
)
