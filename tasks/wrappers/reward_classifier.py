"""Reward from a learned success classifier (SERL §4, issue 12): ``r = reward_on_success · 1[success]``, and a success
ends the episode.

SERL: ``r = 1[σ(logit) ≥ 0.5]``, ``done = done or success``. HIL-SERL combines the classifier with a hand-written state
check (the RAM task: σ > 0.85 *and* a z-height check); ``state_check`` is that check. Every env is judged at once, on
the device, with no host sync.

What is judged: the observation each env *reached* with this step -- the inner env's ``extras["final_obs"]`` for envs
that the inner env ended (and reset) in this step, the returned observation for the others. ``state_check`` receives
that same observation TensorDict (all groups), not the env: for envs reset inside the step the env's own buffers already
hold the next episode's initial state.

How a success ends an episode. The :class:`~rsl_rl.env.Env` contract has no "end these envs" call, so the wrapper
uses the reset-by-mask machinery of :class:`tasks.task.BatchedTask` (every pure-torch and MuJoCo task here): for the
envs that succeeded but were not already ended by the inner env it calls ``env.reset_envs(mask)`` (draws and places
initial states only where ``mask``), sets their ``episode_length_buf`` and ``episode_sums`` (if the env has them) to
0 as ``BatchedTask.step`` does for finished envs, and returns ``env.get_observations()`` for those envs. The step's
report for them is a termination (``terminated=True``, ``truncated=False``: a success is terminal, so it is never
bootstrapped even if the time limit fell on the same step) with ``final_obs`` the observation that succeeded. The
inner env's ``extras["episode"]`` sums were computed before this reset, so the logger reads the true reward sums of
episodes that ended by success too. The call happens every step with a mask (possibly all false): the host never
learns whether anything succeeded. It costs one more ``reset_envs`` and ``get_observations`` per step (a second
render on pixel tasks), and the task's random stream advances differently from the unwrapped task's. An env without
``reset_envs`` (e.g. an rsl_rl-style env behind :class:`~rsl_rl.env.RslRlEnvAdapter`) is refused unless
``terminate_on_success=False``.

Monitoring: ``extras["true_reward"]`` (the inner env's reward ``[N]``), ``extras["success_probability"]`` ``[N]``,
``extras["log"]`` means ``classifier/success_rate``, ``classifier/probability``, ``classifier/true_reward``, and
``extras["episode"]["classifier/success"]`` (read for finished episodes: the fraction that ended by success).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from tensordict import TensorDict

from rsl_rl.env import Env, StepResult
from rsl_rl.modules.reward_classifier import RewardClassifier
from tasks.wrappers.base import Wrapper


def _rows(mask: torch.Tensor, a: TensorDict, b: TensorDict) -> TensorDict:
    """Per env: ``a``'s row where ``mask``, else ``b``'s (same groups and shapes)."""
    return a.apply(lambda x, y: torch.where(mask.view(-1, *([1] * (x.dim() - 1))), x, y), b)


class RewardClassifierWrapper(Wrapper):
    """An :class:`~rsl_rl.env.Env` whose reward is a classifier's success (AND an optional state check)."""

    def __init__(
        self,
        env: Env,
        classifier: RewardClassifier,
        *,
        state_check: Callable[[TensorDict], torch.Tensor] | None = None,
        terminate_on_success: bool = True,
        reward_on_success: float = 1.0,
    ) -> None:
        """``state_check(next_obs) -> bool [N]``: an extra condition on the observation reached (see the module
        docstring); ``terminate_on_success``: a success ends the episode (SERL); ``reward_on_success``: the reward of
        a success (other steps earn 0)."""
        self._reset_envs: Callable[[torch.Tensor], None] | None = getattr(env, "reset_envs", None)
        if terminate_on_success and not callable(self._reset_envs):
            raise TypeError(
                f"{type(env).__name__} has no reset_envs(mask): RewardClassifierWrapper cannot end episodes on success "
                "(use a BatchedTask env, or terminate_on_success=False)"
            )
        super().__init__(env)
        self.classifier = classifier.to(env.device).eval()
        self.group = classifier.cfg.group
        self.state_check = state_check
        self.terminate_on_success = terminate_on_success
        self.reward_on_success = float(reward_on_success)

    def step(self, actions: torch.Tensor) -> StepResult:
        obs, true_reward, terminated, truncated, extras = self.env.step(actions)
        if "final_obs" not in extras:
            raise KeyError(f"{type(self.env).__name__}.step gives no extras['final_obs']: the wrapper judges it")
        if self.group not in obs:
            raise KeyError(f"the classifier reads group {self.group!r}; the env's groups are {list(obs.keys())}")
        done = terminated | truncated
        reached = _rows(done, extras["final_obs"], obs)  # the observation each env reached with this step
        success, probability = self.classifier.judge(reached[self.group])
        if self.state_check is not None:
            success = success & self.state_check(reached).to(torch.bool).reshape(success.shape)
        reward = success.to(true_reward.dtype) * self.reward_on_success
        if self.terminate_on_success:
            ended = success & ~done  # the inner env already reset the others
            self._end_episodes(ended)
            obs = _rows(ended, self.env.get_observations(), obs)
            terminated = terminated | success
            truncated = truncated & ~success
        extras = dict(extras)
        extras["final_obs"] = reached
        extras["true_reward"] = true_reward
        extras["success_probability"] = probability
        extras["log"] = {
            **(extras.get("log") or {}),
            "classifier/success_rate": success.float().mean(),
            "classifier/probability": probability.mean(),
            "classifier/true_reward": true_reward.float().mean(),
        }
        extras["episode"] = {**(extras.get("episode") or {}), "classifier/success": success.float()}
        return obs, reward, terminated, truncated, extras

    def _end_episodes(self, mask: torch.Tensor) -> None:
        """Reset the envs where ``mask`` as ``BatchedTask.step`` resets finished ones (module docstring)."""
        assert self._reset_envs is not None  # checked in __init__
        self._reset_envs(mask)
        env: Any = self.env  # a BatchedTask's bookkeeping, beyond the Env contract
        env.episode_length_buf = torch.where(mask, 0, env.episode_length_buf)
        sums = getattr(env, "episode_sums", None)
        if isinstance(sums, torch.Tensor):
            env.episode_sums = torch.where(mask.view(-1, *([1] * (sums.dim() - 1))), 0.0, sums)
