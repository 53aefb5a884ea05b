"""The runner: one run, end to end (pretrain offline -> fine-tune online -> eval on a fixed grid -> store).

One concept per file:
- lifecycle.py: a run's order and bookkeeping (resolve, set up, start or resume, finish, fail), stop requests;
- off_policy.py: the off-policy loop (one env, chunk decisions, updates after every env step);
- on_policy.py: the on-policy loop (vector-env rollouts, one update per rollout);
- evaluation.py: every actor on the fixed eval seeds, isolated from training, and the eval grid;
- checkpoints.py: atomic save and load of a run's state, RNG states;
- common_start.py: the common-start DP, built once per key, cached and locked;
- provenance.py: git state, package versions, timestamps;
- config.py: the run config, resolved, validated and hashed into the run_id.
"""
from bench.runner.config import ConfigError, resolve_config, run_id_of
from bench.runner.evaluation import evaluate_actor
from bench.runner.lifecycle import Preempted, Run, RunContext, request_stop, request_stop_at, run, run_one

__all__ = ["ConfigError", "Preempted", "Run", "RunContext", "evaluate_actor", "request_stop", "request_stop_at",
           "resolve_config", "run", "run_id_of", "run_one"]
