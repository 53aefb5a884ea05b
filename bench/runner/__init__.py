"""The runner: one run, end to end (pretrain offline -> fine-tune online -> eval on a fixed grid -> store).

One concept per file:
- lifecycle.py: a run's order and bookkeeping (set up, start or resume, finish, fail);
- assemble.py: a run's parts from its config (task, spaces, dataset, normaliser, method, buffer), also for
  timing and benchmarks (a synthetic buffer where there is no dataset);
- progress.py: a run's counters (Progress), what a checkpoint keeps to continue exactly;
- loop.py: what an online loop is given (Loop: the run's typed parts and its actions);
- stops.py: stop requests (SIGTERM, stop-at counters) and Preempted;
- off_policy.py: the off-policy loop (one env, chunk decisions, updates after every env step);
- on_policy.py: the on-policy loop (vector-env rollouts, one update per rollout);
- evaluation.py: every actor on the fixed eval seeds, isolated from training, and the eval grid;
- checkpoints.py: atomic save and load of a run's state, RNG states;
- common_start.py: the common-start DP, built once per key, cached and locked;
- provenance.py: git state, package versions, timestamps.
The run config (resolved, validated and hashed into the run id) is bench/config.

Callers import from the defining module (bench.runner.lifecycle: Run, run_one; bench.runner.stops: Preempted,
request_stop, request_stop_at; bench.runner.evaluation: evaluate_actor). This package imports nothing, so that
importing one light part (provenance) does not import the env stack (a bare GPU machine may run `mbench time`
without gymnasium).
"""
