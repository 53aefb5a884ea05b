"""Suite `d4rl`: hopper, walker2d, halfcheetah x {medium, medium-replay, expert, medium-expert}.

D4RL's protocol (task names, REF_MIN/REF_MAX normalisation, 1000-step episodes) on gymnasium v5 envs, with the
Minari ids of the D4RL datasets (`mujoco/<env>/<quality>-v0`).
"""
from bench.tasks import D4RL_ENVS, D4RL_QUALITIES, D4RL_REFS, TaskSpec, register_task

for _env, _env_id in D4RL_ENVS.items():
    for _q in D4RL_QUALITIES:
        lo, hi = D4RL_REFS[_env]
        register_task(
            TaskSpec(
                name=f"{_env}-{_q}",
                suite="d4rl",
                env_id=_env_id,
                dataset_id=f"mujoco/{_env}/{_q}-v0",
                ref_min=lo,
                ref_max=hi,
                ref_source="d4rl REF_MIN/REF_MAX (mujoco-py v2 envs; a convention on gymnasium v5)",
                max_episode_steps=1000,
                eval_episodes=10,
                chunk=4,
                description=f"D4RL {_env} {_q} on {_env_id}",
            )
        )
