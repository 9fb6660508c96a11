"""Closed forms of the action distributions: log-density, entropy and KL divergence of the diagonal Gaussian and of
the Beta distribution, each summed or elementwise as its docstring says. Cheaper than building ``torch.distributions``
objects, and unit-tested against them (``tests/rsl_rl/test_modules.py``, ``tests/rsl_rl/test_models_api.py``)."""

from __future__ import annotations

import math

import torch

_LOG_SQRT_2PI = 0.5 * math.log(2.0 * math.pi)


def gaussian_log_prob(actions: torch.Tensor, mean: torch.Tensor, std: torch.Tensor) -> torch.Tensor:
    """log N(a; μ, σ) summed over actions. ``actions, mean: [B, A]``, ``std: [A] or [B, A]`` → ``[B]``."""
    z = (actions - mean) / std
    return -(0.5 * z.square() + std.log() + _LOG_SQRT_2PI).sum(-1)


def gaussian_entropy(std: torch.Tensor) -> torch.Tensor:
    """H = Σ (½ log(2πe) + log σ). ``std: [..., A]`` → ``[...]``."""
    return (0.5 + _LOG_SQRT_2PI + std.log()).sum(-1)


def gaussian_kl(mean0: torch.Tensor, std0: torch.Tensor, mean1: torch.Tensor, std1: torch.Tensor) -> torch.Tensor:
    """KL(N0 ‖ N1) = Σ log(σ1/σ0) + (σ0² + (μ0 − μ1)²) / (2σ1²) − ½. Shapes ``[B, A]`` (std may broadcast) → ``[B]``."""
    return (torch.log(std1 / std0) + (std0.square() + (mean0 - mean1).square()) / (2.0 * std1.square()) - 0.5).sum(-1)


def _log_beta_function(alpha: torch.Tensor, beta: torch.Tensor) -> torch.Tensor:
    """log B(α, β) = log Γ(α) + log Γ(β) − log Γ(α + β)."""
    return torch.lgamma(alpha) + torch.lgamma(beta) - torch.lgamma(alpha + beta)


def beta_log_prob(x: torch.Tensor, alpha: torch.Tensor, beta: torch.Tensor) -> torch.Tensor:
    """log Beta(x; α, β) = (α−1) log x + (β−1) log(1−x) − log B(α, β), elementwise, x in (0, 1)."""
    return (alpha - 1.0) * torch.log(x) + (beta - 1.0) * torch.log1p(-x) - _log_beta_function(alpha, beta)


def beta_entropy(alpha: torch.Tensor, beta: torch.Tensor) -> torch.Tensor:
    """H = log B(α, β) − (α−1) ψ(α) − (β−1) ψ(β) + (α+β−2) ψ(α+β), elementwise."""
    return (
        _log_beta_function(alpha, beta)
        - (alpha - 1.0) * torch.digamma(alpha)
        - (beta - 1.0) * torch.digamma(beta)
        + (alpha + beta - 2.0) * torch.digamma(alpha + beta)
    )


def beta_kl(alpha0: torch.Tensor, beta0: torch.Tensor, alpha1: torch.Tensor, beta1: torch.Tensor) -> torch.Tensor:
    """KL(Beta(α0, β0) ‖ Beta(α1, β1)) = log B(α1, β1) − log B(α0, β0) + (α0−α1) ψ(α0) + (β0−β1) ψ(β0)
    + (α1−α0+β1−β0) ψ(α0+β0), elementwise."""
    return (
        _log_beta_function(alpha1, beta1)
        - _log_beta_function(alpha0, beta0)
        + (alpha0 - alpha1) * torch.digamma(alpha0)
        + (beta0 - beta1) * torch.digamma(beta0)
        + (alpha1 - alpha0 + beta1 - beta0) * torch.digamma(alpha0 + beta0)
    )
