"""How an actor picks the action it executes at evaluation: the vocabulary that each method's config.py uses for
its `SELECTION`, next to its `ACTORS`, and that the runs record and the reports print (issue 25).

Why: a score means little without the rule that produced it: a DP's sample carries the DP's noise; a Gaussian
policy's mean and a noise-free plan carry none; an argmax over samples picks the best of several by a critic.
"""
from __future__ import annotations

DP_SAMPLE = "DP sample"  # one chain of the diffusion policy, sampled with the actor's generator
MEAN = "mean"  # a policy's mean action (no sampling noise)
ARGMAX = "argmax over samples"  # several samples (proposals) scored by a critic, the best one executed
PLAN = "noise-free plan"  # a planner's mean plan, executed without exploration noise
RULES = (DP_SAMPLE, MEAN, ARGMAX, PLAN)
