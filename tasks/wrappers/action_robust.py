"""Action-robust MDPs (Tessler, Efroni & Mannor 2019, issue 13): an adversary acts in the agent's own action space.

The wrapper's action is ``[agent (A), adversary (A)]`` with ``A`` the inner env's ``num_actions`` (the adversary's
columns last, as every adversarial wrapper here: ``tasks/wrappers/adversary.py``); ``adversary_dims = A``;
``extras["adversary_reward"] = −reward``; ``action_bounds()`` is the inner bounds twice.

* :class:`NoisyActionBlend` -- the noisy-robust MDP (NR-MDP): ``a = (1 − α)·a_agent + α·a_adv`` every step. RRLS
  calls this ``ProbabilisticActionRobust``; the name here says what it does.
* :class:`ProbabilisticActionReplacement` -- the probabilistic-robust MDP (PR-MDP): per env and step, with probability
  α the adversary's action replaces the agent's, ``a = a_adv if u < α else a_agent``, ``u ~ U(0, 1)`` from the
  wrapper's own generator (saved by :meth:`state_dict`).

Both log the adversary's share of the action under ``extras["log"]["action_robust/adversary_share"]`` (α for the
blend; the fraction of envs replaced this step for the replacement, whose mask is ``extras["adversary_replaced"]``).
"""

from __future__ import annotations

from typing import Any

import torch

from rsl_rl.env import Env, StepResult
from tasks.wrappers.base import Wrapper


def _check_alpha(alpha: float) -> float:
    if not 0.0 <= alpha <= 1.0:
        raise ValueError(f"alpha must be in [0, 1] (the adversary's share of the action), got {alpha}")
    return float(alpha)


class _ActionRobust(Wrapper):
    """What both share: the doubled action, the adversary's reward, the doubled bounds."""

    def __init__(self, env: Env, alpha: float) -> None:
        super().__init__(env)
        self.alpha = _check_alpha(alpha)
        self.adversary_dims = env.num_actions
        self.num_actions = 2 * env.num_actions

    def mix(self, agent: torch.Tensor, adversary: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | float]:
        """The action that acts ``[N, A]`` and the adversary's share of it."""
        raise NotImplementedError

    def step(self, actions: torch.Tensor) -> StepResult:
        a = self.adversary_dims
        applied, share = self.mix(actions[:, :a], actions[:, a:])
        obs, reward, terminated, truncated, extras = self.env.step(applied)
        extras = dict(extras)
        extras["adversary_reward"] = -reward
        extras["log"] = {**(extras.get("log") or {}), "action_robust/adversary_share": share}
        return obs, reward, terminated, truncated, extras

    def action_bounds(self) -> tuple[torch.Tensor, torch.Tensor] | None:
        inner = self.env.action_bounds()
        if inner is None:
            return None
        low, high = inner
        return torch.cat((low, low)), torch.cat((high, high))

    def state_dict(self) -> dict[str, Any]:
        return {"env": self.env.state_dict(), "wrapper": {}}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.env.load_state_dict(state["env"])


class NoisyActionBlend(_ActionRobust):
    """NR-MDP: ``a = (1 − α)·a_agent + α·a_adv`` (RRLS's ``ProbabilisticActionRobust``; its envs use α = 0.1)."""

    def __init__(self, env: Env, alpha: float = 0.1) -> None:
        """``alpha``: the adversary's weight in the blend, in [0, 1]."""
        super().__init__(env, alpha)

    def mix(self, agent: torch.Tensor, adversary: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | float]:
        return (1.0 - self.alpha) * agent + self.alpha * adversary, self.alpha


class ProbabilisticActionReplacement(_ActionRobust):
    """PR-MDP: with probability α per env and step the adversary's action replaces the agent's."""

    def __init__(self, env: Env, alpha: float = 0.1, seed: int = 0) -> None:
        """``alpha``: probability of a replacement, in [0, 1]; ``seed``: of the wrapper's generator."""
        super().__init__(env, alpha)
        self.generator = torch.Generator(device=self.device)
        self.generator.manual_seed(seed)
        self.replaced = torch.zeros(self.num_envs, dtype=torch.bool, device=self.device)
        """``bool[N]``: the adversary acted in the last step."""

    def mix(self, agent: torch.Tensor, adversary: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | float]:
        u = torch.rand(self.num_envs, generator=self.generator, device=self.device)
        self.replaced = u < self.alpha
        return torch.where(self.replaced.unsqueeze(-1), adversary, agent), self.replaced.float().mean()

    def step(self, actions: torch.Tensor) -> StepResult:
        obs, reward, terminated, truncated, extras = super().step(actions)
        extras["adversary_replaced"] = self.replaced
        return obs, reward, terminated, truncated, extras

    def state_dict(self) -> dict[str, Any]:
        return {"env": self.env.state_dict(), "wrapper": {"generator": self.generator.get_state()}}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.env.load_state_dict(state["env"])
        self.generator.set_state(state["wrapper"]["generator"].cpu())
