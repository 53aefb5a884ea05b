"""`mbench time`: a method's act paths and updates timed outside a run, on a bare GPU machine if need be.

- synthetic.py: a timing subject, the method built from its config and the task's spaces alone (no env, no
  dataset), a checkpoint loaded into it if given, and the timing run's id;
- measure.py: `measure` (build a subject and time it), the store's rows, and the table;
- cli.py: `add_cli`, the command (light: it imports measure.py, and so torch, when it runs).
The timer itself (`time_components`: warm-up, synchronised reps, percentiles) is bench/runner/timing.py,
with its compiled paths in bench/runner/compiled.py, which every run also uses at its end; this package imports
the runner, never the reverse.
"""
