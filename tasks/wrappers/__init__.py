"""Wrappers that keep the batched env contract (:class:`rsl_rl.env.Env`) and change what an env reports or how it
behaves: physical parameters (``params``), domain randomisation, adversaries (``adversary``, ``action_robust``),
perturbations (observation noise, action delay, pushes) and a learned reward (``reward_classifier``).

Adversarial wrappers append their columns to the action: each takes the last ``adversary_dims`` columns of its own
action and passes the rest inward (``tasks/wrappers/adversary.py``)."""

from tasks.wrappers.action_robust import NoisyActionBlend, ProbabilisticActionReplacement
from tasks.wrappers.adversary import DynamicAdversary, ForceAdversary, protagonist_actions
from tasks.wrappers.base import Wrapper, unwrap
from tasks.wrappers.params import AttributeParam, ModelParam, ModifiedParams, Parameter, resolve_param
from tasks.wrappers.perturbations import ActionDelay, ObservationNoise, PushImpulse
from tasks.wrappers.randomization import DomainRandomization
from tasks.wrappers.reward_classifier import RewardClassifierWrapper

__all__ = [
    "ActionDelay",
    "AttributeParam",
    "DomainRandomization",
    "DynamicAdversary",
    "ForceAdversary",
    "ModelParam",
    "ModifiedParams",
    "NoisyActionBlend",
    "ObservationNoise",
    "Parameter",
    "ProbabilisticActionReplacement",
    "PushImpulse",
    "RewardClassifierWrapper",
    "Wrapper",
    "unwrap",
    "resolve_param",
    "protagonist_actions",
]
