"""``joint`` for generation: one target per prompt, the best candidate of the pooled n-best lists
of every weak generator, rescored by every member (Cui et al. 2024). The candidate maximising the
members' mean length-normalised log-prob wins; its word log-probs are the members' mean. The loss
is ``soft``'s; what differs is the target, which the pipeline builds (``joint_target``)."""

from __future__ import annotations

from weaklift.methods.generation.soft import Soft


class GenJoint(Soft):
    name = "joint"
    paper = "Cui et al. 2024, Bayesian WeakS-to-Strong from Text Classification to Generation"
    joint_target = True
