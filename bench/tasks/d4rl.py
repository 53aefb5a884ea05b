"""Suite `d4rl`: hopper, walker2d, halfcheetah x {medium, medium-replay, expert, medium-expert}.

D4RL's protocol (task names, REF_MIN/REF_MAX normalisation, 1000-step episodes) on gymnasium v5 envs, with the
Minari ids of the D4RL datasets (`mujoco/<env>/<quality>-v0`).

This module does not import `bench.tasks` (which imports it to register its tasks): `TASKS` lists them.
"""
from __future__ import annotations

from typing import Any

# D4RL's REF_MIN/REF_MAX (d4rl/infos.py). They were measured on mujoco-py v2 envs; on gymnasium v5 envs they
# are a convention, recorded as such in every run (ref_source).
D4RL_REFS = {
    "hopper": (-20.272305, 3234.3),
    "walker2d": (1.629008, 4592.3),
    "halfcheetah": (-280.178953, 12135.0),
}
D4RL_ENVS = {"hopper": "Hopper-v5", "walker2d": "Walker2d-v5", "halfcheetah": "HalfCheetah-v5"}
D4RL_QUALITIES = ("medium", "medium-replay", "expert", "medium-expert")

# The suite's tasks, as TaskSpec fields; bench.tasks registers them.
TASKS: tuple[dict[str, Any], ...] = tuple(
    {
        "name": f"{_env}-{_q}",
        "suite": "d4rl",
        "env_id": _env_id,
        "dataset_id": f"mujoco/{_env}/{_q}-v0",
        "ref_min": D4RL_REFS[_env][0],
        "ref_max": D4RL_REFS[_env][1],
        "ref_source": "d4rl REF_MIN/REF_MAX (mujoco-py v2 envs; a convention on gymnasium v5)",
        "max_episode_steps": 1000,
        "eval_episodes": 10,  # per eval point; the final eval of every actor has 50 (issue 25)
        "eval_final_episodes": 50,
        "chunk": 4,
        "description": f"D4RL {_env} {_q} on {_env_id}",
    }
    for _env, _env_id in D4RL_ENVS.items()
    for _q in D4RL_QUALITIES
)
