"""Suite `demo`: a small embedded task that learns within minutes on 2 CPU cores.

InvertedDoublePendulum-v5 cut to 200-step episodes, with medium-quality data made here (`mbench data make`).
Its refs (random and expert returns) are measured when its data is made and read from the dataset metadata.
"""
from bench.tasks import TaskSpec, register_task

DEMO_DATASET = "mbench/inverted-double-pendulum/medium-v0"

register_task(
    TaskSpec(
        name="demo",
        suite="demo",
        env_id="InvertedDoublePendulum-v5",
        dataset_id=DEMO_DATASET,
        ref_min=None,
        ref_max=None,
        ref_source="measured when the dataset was made (dataset metadata)",
        max_episode_steps=200,
        eval_episodes=10,
        chunk=4,
        description="InvertedDoublePendulum-v5, 200-step episodes, medium data made offline",
    )
)
