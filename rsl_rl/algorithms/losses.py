"""Pure functions of PPO: advantage estimation, the two clipped losses and the KL-adaptive learning rate.

Shapes: ``T`` steps per env, ``N`` envs, ``B`` samples of a mini-batch.
"""

from __future__ import annotations

import torch


def generalized_advantage_estimation(
    rewards: torch.Tensor,
    values: torch.Tensor,
    dones: torch.Tensor,
    last_values: torch.Tensor,
    gamma: float,
    lam: float,
) -> tuple[torch.Tensor, torch.Tensor]:
    """GAE(γ, λ) (Schulman et al. 2016).

    ``rewards, values: [T, N]`` (rewards already carry the time-out bootstrap), ``dones: [T, N]`` bool (the episode
    ended at step t: terminated or truncated), ``last_values: [N]`` = V(s_T).
    Returns ``(advantages, returns)``, both ``[T, N]``, with

        δ_t = r_t + γ (1 − d_t) V(s_{t+1}) − V(s_t)
        A_t = δ_t + γ λ (1 − d_t) A_{t+1},      R_t = A_t + V(s_t).
    """
    not_done = (~dones).to(values.dtype)
    advantages = torch.empty_like(values)
    next_adv = torch.zeros_like(last_values)
    next_values = last_values
    for t in range(values.shape[0] - 1, -1, -1):
        delta = rewards[t] + gamma * not_done[t] * next_values - values[t]
        next_adv = delta + gamma * lam * not_done[t] * next_adv
        advantages[t] = next_adv
        next_values = values[t]
    return advantages, advantages + values


def normalize(x: torch.Tensor, eps: float = 1e-8) -> torch.Tensor:
    """(x − mean) / (std + eps) over all elements."""
    std, mean = torch.std_mean(x)
    return (x - mean) / (std + eps)


def clipped_surrogate_loss(
    log_prob: torch.Tensor, old_log_prob: torch.Tensor, advantages: torch.Tensor, clip: float
) -> torch.Tensor:
    """PPO-clip policy loss per sample, ``[B]`` → ``[B]``: max(−A·ρ, −A·clip(ρ, 1−ε, 1+ε)), ρ = π/π_old."""
    ratio = torch.exp(log_prob - old_log_prob)
    return torch.maximum(-advantages * ratio, -advantages * ratio.clamp(1.0 - clip, 1.0 + clip))


def value_loss(
    values: torch.Tensor, old_values: torch.Tensor, returns: torch.Tensor, clip: float, clipped: bool = True
) -> torch.Tensor:
    """Value loss per sample, ``[B]`` → ``[B]``.

    Clipped: max((V − R)², (V_old + clip(V − V_old, −ε, ε) − R)²); otherwise (V − R)².
    """
    loss = (values - returns).square()
    if not clipped:
        return loss
    v_clipped = old_values + (values - old_values).clamp(-clip, clip)
    return torch.maximum(loss, (v_clipped - returns).square())


def adaptive_learning_rate(
    lr: torch.Tensor, kl: torch.Tensor, desired_kl: float, lr_min: float, lr_max: float, factor: float = 1.5
) -> torch.Tensor:
    """rsl_rl's KL rule, on device (no host sync): KL > 2·KL* → lr / 1.5; 0 < KL < KL*/2 → lr · 1.5; else keep.

    The result is bounded to ``[lr_min, lr_max]`` (rsl_rl: [1e-5, 1e-2]).
    """
    lower = (lr / factor).clamp_min(lr_min)
    higher = (lr * factor).clamp_max(lr_max)
    lr = torch.where(kl > 2.0 * desired_kl, lower, lr)
    return torch.where((kl < 0.5 * desired_kl) & (kl > 0.0), higher, lr)
