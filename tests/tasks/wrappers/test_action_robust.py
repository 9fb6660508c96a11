"""NR-MDP blend and PR-MDP replacement: the action that acts is exactly the documented mix."""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import pytest
import torch

from tasks.wrappers import NoisyActionBlend, ProbabilisticActionReplacement, unwrap


def test_blend_acts_with_exactly_the_weighted_sum(hopper: Callable[..., Any]) -> None:
    alpha = 0.1
    env = NoisyActionBlend(hopper(), alpha=alpha)
    assert env.num_actions == 6 and env.adversary_dims == 3
    g = torch.Generator().manual_seed(0)
    for _ in range(5):
        agent, adversary = torch.rand(8, 3, generator=g) * 1.8 - 0.9, torch.rand(8, 3, generator=g) * 1.8 - 0.9
        _, reward, _, _, extras = env.step(torch.cat((agent, adversary), -1))
        want = ((1 - alpha) * agent + alpha * adversary).to(torch.float64)  # hopper acts in float64, clips to ±1
        assert torch.equal(unwrap(env).action, want)
        assert torch.equal(extras["adversary_reward"], -reward)
        assert extras["log"]["action_robust/adversary_share"] == alpha
    low, high = env.action_bounds() or (None, None)
    assert low is not None and high is not None and low.tolist() == [-1.0] * 6 and high.tolist() == [1.0] * 6


def test_replacement_share_is_alpha_and_each_action_is_one_players(pendulum: Callable[..., Any]) -> None:
    alpha, n, steps = 0.3, 64, 100
    env = ProbabilisticActionReplacement(pendulum(num_envs=n), alpha=alpha, seed=1)
    agent, adversary = torch.full((n, 1), 0.5), torch.full((n, 1), -1.5)
    replaced_total = 0.0
    for _ in range(steps):
        _, reward, _, _, extras = env.step(torch.cat((agent, adversary), -1))
        applied = unwrap(env).action.squeeze(-1)
        replaced = extras["adversary_replaced"]
        assert torch.equal(applied, torch.where(replaced, -1.5, 0.5).to(applied.dtype))
        assert extras["log"]["action_robust/adversary_share"] == pytest.approx(float(replaced.float().mean()))
        assert torch.equal(extras["adversary_reward"], -reward)
        replaced_total += float(replaced.sum())
    trials = n * steps
    sigma = math.sqrt(alpha * (1 - alpha) / trials)
    assert abs(replaced_total / trials - alpha) < 5 * sigma


def test_alpha_is_checked(pendulum: Callable[..., Any]) -> None:
    with pytest.raises(ValueError, match=r"alpha must be in \[0, 1\]"):
        NoisyActionBlend(pendulum(), alpha=1.5)
    with pytest.raises(ValueError, match="alpha"):
        ProbabilisticActionReplacement(pendulum(), alpha=-0.1)
