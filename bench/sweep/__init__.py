"""Sweeps over the runner: grids of runs launched as submitit job arrays (Slurm, local, debug), and optuna tuning.

Why: a paper's numbers are hundreds of runs (methods x tasks x seeds x ablations) on a shared cluster, where jobs
get preempted, time out and die. This package turns one sweep file into one job array, skips what the store
already holds, makes every job requeue and resume from its checkpoint, and reports what is left, from the store
and from Slurm's own accounting. `mbench tune` runs optuna trials through the same runner, on seeds and eval
seeds that reported results never use.

Modules: `spec` (sweep specs, grid expansion; the file's schema and its one reader are results/sweep_file.py),
`job` (the preemptible job), `launch` (submit, status), `tune` (optuna), `cli` (`add_cli`, which bench/cli.py
calls). Each name is imported from the module that defines it; the package exports nothing of its own.
"""
