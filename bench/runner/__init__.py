"""The runner: one run, end to end (pretrain offline -> fine-tune online -> eval on a fixed grid -> store).

One concept per file:
- lifecycle.py: a run's order and bookkeeping (set up, start or resume, finish, fail);
- assemble.py: a run's parts from its config (task, spaces, dataset, normaliser, method, buffer), also for
  timing and benchmarks (a synthetic buffer where there is no dataset);
- progress.py: a run's counters (Progress), what a checkpoint keeps to continue exactly;
- loop.py: what an online loop is given (Loop: the run's typed parts and its actions);
- stops.py: stop requests (signals, stop-at counters) and Preempted;
- outcome.py: what a run that ends by an exception records (interrupted or failed);
- signals.py: SIGTERM and Ctrl-C of a run in the foreground (`mbench run`) as stop requests;
- bars.py: a progress bar that appears at its first step;
- off_policy.py: the off-policy loop (one env, chunk decisions, updates after every env step);
- on_policy.py: the on-policy loop (vector-env rollouts, one update per rollout);
- evaluation.py: every actor on the run's eval states (per run seed, bench/tasks/eval_states.py), acting on
  the unfinished episodes alone, isolated from training, every episode kept; and the eval grid;
- run_record.py: what a run records for the reports (its actors' product and selection rules, the task's
  ceiling, the data's mean normalised return, its eval states);
- checkpoints.py: atomic save and load of a run's state (read by results/checkpoint_files.py), RNG states;
- common_start.py: the common-start DP, built once per key, cached and locked;
- timing.py: a method's components timed (warm-up, synchronised reps, percentiles), at every run's end and
  by `mbench time` (bench/timing);
- compiled.py: the compiled act paths that timing.py also times, and their check against the eager paths;
- provenance.py: git state, package versions, timestamps.
The run config (resolved, validated and hashed into the run id) is bench/config.

Each name is imported from the module that defines it (`from bench.runner.lifecycle import run_one`); the
package exports nothing of its own, so importing a light part (provenance, stops) imports nothing heavy.
"""
