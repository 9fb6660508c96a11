"""PPO's pure functions against hand-computed values."""

from __future__ import annotations

import math

import pytest
import torch

from rsl_rl.algorithms.losses import (
    adaptive_learning_rate,
    clipped_surrogate_loss,
    generalized_advantage_estimation,
    normalize,
    value_loss,
)


def test_gae_by_hand_with_terminal_step() -> None:
    # One env, three steps; the episode terminates at t = 1, so t = 0 and 1 do not see V(s_2).
    gamma, lam = 0.9, 0.8
    rewards = torch.tensor([[1.0], [2.0], [3.0]])
    values = torch.tensor([[0.5], [1.0], [1.5]])
    dones = torch.tensor([[False], [True], [False]])
    last = torch.tensor([2.0])
    adv, ret = generalized_advantage_estimation(rewards, values, dones, last, gamma, lam)
    d2 = 3.0 + gamma * 2.0 - 1.5  # 3.3
    d1 = 2.0 - 1.0  # terminal: no bootstrap
    d0 = 1.0 + gamma * 1.0 - 0.5  # 1.4
    a2 = d2
    a1 = d1  # the terminal cut stops the recursion
    a0 = d0 + gamma * lam * a1
    assert adv[:, 0].tolist() == pytest.approx([a0, a1, a2])
    assert ret[:, 0].tolist() == pytest.approx([a0 + 0.5, a1 + 1.0, a2 + 1.5])


def test_gae_truncated_step_uses_bootstrapped_reward() -> None:
    # A time-out at t = 0 with final value V(s_final) = 10: PPO folds γ·V(s_final) into r_0 and cuts the episode.
    gamma, lam = 0.99, 0.95
    v_final = 10.0
    rewards = torch.tensor([[1.0 + gamma * v_final], [0.5]])
    values = torch.tensor([[4.0], [3.0]])
    dones = torch.tensor([[True], [False]])
    adv, _ = generalized_advantage_estimation(rewards, values, dones, torch.tensor([7.0]), gamma, lam)
    assert adv[0, 0].item() == pytest.approx(1.0 + gamma * v_final - 4.0)
    assert adv[1, 0].item() == pytest.approx(0.5 + gamma * 7.0 - 3.0)


def test_gae_matches_discounted_returns_when_lambda_is_one() -> None:
    torch.manual_seed(0)
    rewards, values = torch.randn(6, 3), torch.randn(6, 3)
    dones = torch.zeros(6, 3, dtype=torch.bool)
    last = torch.randn(3)
    _, ret = generalized_advantage_estimation(rewards, values, dones, last, 0.9, 1.0)
    expected = last.clone()
    for t in range(5, -1, -1):
        expected = rewards[t] + 0.9 * expected
        assert torch.allclose(ret[t], expected, atol=1e-5)


def test_clipped_surrogate_both_sides() -> None:
    clip = 0.2
    old = torch.zeros(4)
    log_prob = torch.tensor([math.log(1.5), math.log(1.5), math.log(0.5), math.log(0.5)])
    adv = torch.tensor([1.0, -1.0, 1.0, -1.0])
    loss = clipped_surrogate_loss(log_prob, old, adv, clip)
    # ratio 1.5, A > 0: clipped at 1.2 → −1.2. ratio 1.5, A < 0: unclipped 1.5 is the max → 1.5.
    # ratio 0.5, A > 0: unclipped −0.5 is the max → −0.5. ratio 0.5, A < 0: clipped at 0.8 → 0.8.
    assert loss.tolist() == pytest.approx([-1.2, 1.5, -0.5, 0.8])


def test_value_loss_clipping() -> None:
    old = torch.tensor([0.0, 0.0])
    returns = torch.tensor([1.0, 1.0])
    values = torch.tensor([0.5, 2.0])
    clipped = value_loss(values, old, returns, clip=0.2, clipped=True)
    # v = 0.5: (0.5−1)² = 0.25 vs clipped (0.2−1)² = 0.64 → 0.64. v = 2: (2−1)² = 1 vs (0.2−1)² = 0.64 → 1.
    assert clipped.tolist() == pytest.approx([0.64, 1.0])
    assert value_loss(values, old, returns, 0.2, clipped=False).tolist() == pytest.approx([0.25, 1.0])


@pytest.mark.parametrize(
    ("kl", "expected"),
    [
        (0.05, 1e-3 / 1.5),  # KL > 2·KL*: decrease
        (0.001, 1e-3 * 1.5),  # 0 < KL < KL*/2: increase
        (0.01, 1e-3),  # in between: keep
        (0.0, 1e-3),  # exactly zero KL: keep (rsl_rl's rule)
    ],
)
def test_adaptive_learning_rate_cases(kl: float, expected: float) -> None:
    lr = adaptive_learning_rate(torch.tensor(1e-3), torch.tensor(kl), 0.01, 1e-5, 1e-2)
    assert lr.item() == pytest.approx(expected)


def test_adaptive_learning_rate_bounds() -> None:
    assert adaptive_learning_rate(torch.tensor(1.2e-5), torch.tensor(1.0), 0.01, 1e-5, 1e-2).item() == pytest.approx(
        1e-5
    )
    assert adaptive_learning_rate(torch.tensor(9e-3), torch.tensor(1e-4), 0.01, 1e-5, 1e-2).item() == pytest.approx(
        1e-2
    )


def test_normalize() -> None:
    x = torch.tensor([1.0, 2.0, 3.0, 4.0])
    y = normalize(x)
    assert y.mean().item() == pytest.approx(0.0, abs=1e-6)
    assert y.std().item() == pytest.approx(1.0, abs=1e-6)
