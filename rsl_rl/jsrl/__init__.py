"""Jump-Start RL (Uchendu et al. 2023): a guide policy acts for the first h steps of every episode and hands over to
the learner; h shrinks along a curriculum or is drawn per episode. Batched: per-env switch state on the device.

* :mod:`~rsl_rl.jsrl.guides`: guides from a callable, a checkpoint or an ONNX file;
* :mod:`~rsl_rl.jsrl.schedule`: the config, the curriculum gate, the per-env switch, the combined policy π_h;
* :mod:`~rsl_rl.jsrl.ppo`: PPO with guide steps masked out of the policy loss;
* :mod:`~rsl_rl.jsrl.runner`: the PPO and SAC runners and :func:`make_jsrl_runner`.
"""

from rsl_rl.jsrl.guides import Guide, guide_from_checkpoint, guide_from_onnx
from rsl_rl.jsrl.ppo import JSRLPPO, masked_normalize
from rsl_rl.jsrl.runner import JSRLOffPolicyRunner, JSRLOnPolicyRunner, JSRLRunner, make_jsrl_runner
from rsl_rl.jsrl.schedule import CombinedPolicy, Curriculum, EpisodeSwitch, JSRLConfig, stage_switch_step

__all__ = [
    "JSRLPPO",
    "CombinedPolicy",
    "Curriculum",
    "EpisodeSwitch",
    "Guide",
    "JSRLConfig",
    "JSRLOffPolicyRunner",
    "JSRLOnPolicyRunner",
    "JSRLRunner",
    "guide_from_checkpoint",
    "guide_from_onnx",
    "make_jsrl_runner",
    "masked_normalize",
    "stage_switch_step",
]
