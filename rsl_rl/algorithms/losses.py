"""Pure loss functions: PPO (advantage estimation, the two clipped losses, the KL-adaptive learning rate), SAC (n-step
returns, the soft TD target, the categorical projection, actor and temperature losses) and teacher → student
distillation (MSE, Huber, forward/reverse/adaptive Gaussian KL).

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


# --- distillation (teacher → student); shapes: B samples, A action dims ----------------------------------------------


def mse_loss(student_mean: torch.Tensor, teacher_mean: torch.Tensor) -> torch.Tensor:
    """Squared error of the means, averaged over actions (rsl_rl's MSE): ``[B, A], [B, A]`` → ``[B]``."""
    return (student_mean - teacher_mean).square().mean(-1)


def huber_loss(student_mean: torch.Tensor, teacher_mean: torch.Tensor, delta: float = 1.0) -> torch.Tensor:
    """Huber loss of the means, averaged over actions: ½e² for |e| ≤ δ, else δ(|e| − ½δ). ``[B, A]`` → ``[B]``."""
    error = (student_mean - teacher_mean).abs()
    quadratic = error.clamp(max=delta)
    return (0.5 * quadratic.square() + delta * (error - quadratic)).mean(-1)


def gaussian_kl_divergence(
    mean_p: torch.Tensor, std_p: torch.Tensor, mean_q: torch.Tensor, std_q: torch.Tensor
) -> torch.Tensor:
    """KL(p ‖ q) of diagonal Gaussians, summed over actions: ``[B, A]`` (stds may broadcast, e.g. ``[A]``) → ``[B]``.

    Per dimension: log(σ_q/σ_p) + (σ_p² + (μ_p − μ_q)²) / (2σ_q²) − ½.
    """
    var_q = std_q.square()
    per_dim = torch.log(std_q / std_p) + (std_p.square() + (mean_p - mean_q).square()) / (2.0 * var_q) - 0.5
    return per_dim.sum(-1)


def forward_kl_loss(
    student_mean: torch.Tensor, student_std: torch.Tensor, teacher_mean: torch.Tensor, teacher_std: torch.Tensor
) -> torch.Tensor:
    """Forward KL(T ‖ S), mass-covering: the student's std grows to cover the teacher. ``[B, A]`` → ``[B]``."""
    return gaussian_kl_divergence(teacher_mean, teacher_std, student_mean, student_std)


def reverse_kl_loss(
    student_mean: torch.Tensor, student_std: torch.Tensor, teacher_mean: torch.Tensor, teacher_std: torch.Tensor
) -> torch.Tensor:
    """Reverse KL(S ‖ T), mode-seeking. ``[B, A]`` → ``[B]``."""
    return gaussian_kl_divergence(student_mean, student_std, teacher_mean, teacher_std)


def adaptive_kl_weights(
    student_mean: torch.Tensor, student_std: torch.Tensor, teacher_mean: torch.Tensor, teacher_std: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """Detached weights ``(w_f, w_r)``, each ``[B]``, of :func:`adaptive_kl_loss`.

    g_mean = Σ_a |μ_T − μ_S|, g_std = Σ_a |σ_T − σ_S|; w_f = g_mean / (g_mean + g_std), w_r = g_std / (g_mean + g_std)
    (both 0 where the two Gaussians are equal, where both KLs are 0 too).
    """
    with torch.no_grad():
        g_mean = (teacher_mean - student_mean).abs().sum(-1)
        g_std = (teacher_std - student_std).abs().expand_as(teacher_mean - student_mean).sum(-1)
        total = (g_mean + g_std).clamp_min(1e-12)
        return g_mean / total, g_std / total


def adaptive_kl_loss(
    student_mean: torch.Tensor, student_std: torch.Tensor, teacher_mean: torch.Tensor, teacher_std: torch.Tensor
) -> torch.Tensor:
    """w_f·KL(T ‖ S) + w_r·KL(S ‖ T) with the detached weights of :func:`adaptive_kl_weights`. ``[B, A]`` → ``[B]``.

    The team's Gaussian analogue of AKL (Wu et al., COLING 2025, arXiv 2404.02657), which weights forward KL by the
    teacher/student gap on the head of the distribution and reverse KL by the gap on its tail. A Gaussian has no
    head/tail split, so the mean gap plays the head (forward KL pulls the mean, covering the teacher's mode) and the
    std gap plays the tail (reverse KL corrects the spread). This extension is ours, not the paper's.
    """
    w_f, w_r = adaptive_kl_weights(student_mean, student_std, teacher_mean, teacher_std)
    forward = forward_kl_loss(student_mean, student_std, teacher_mean, teacher_std)
    reverse = reverse_kl_loss(student_mean, student_std, teacher_mean, teacher_std)
    return w_f * forward + w_r * reverse


# --- SAC --------------------------------------------------------------------------------------------------------------


def n_step_returns(
    rewards: torch.Tensor, terminated: torch.Tensor, truncated: torch.Tensor, gamma: float
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """n-step returns of windows that start at step 0, cut where an episode ends.

    ``rewards, terminated, truncated: [n, B]`` are the window's steps of one env each. With ``k*`` the first step that
    ends the episode (``n − 1`` if none does):

        R = Σ_{k ≤ k*} γ^k r_k,      discount = 0 if step k* terminated, else γ^(k*+1)

    so the target is ``R + discount · V(s')`` with ``s'`` the final observation of step ``k*`` when it was truncated
    (the exact time-out bootstrap, never γ·V(s_t)) or the observation after step ``n − 1`` when no step ended.
    Returns ``(R [B], discount [B], k* [B] long, ended [B] bool)``.
    """
    n = rewards.shape[0]
    done = terminated | truncated
    alive = torch.ones_like(rewards[0])  # 1 until (and including) the first step that ends the episode
    returns = torch.zeros_like(rewards[0])
    end = torch.full_like(rewards[0], n - 1, dtype=torch.long)
    ended = torch.zeros_like(done[0])
    discount = torch.zeros_like(rewards[0])
    scale = 1.0
    for k in range(n):
        returns = returns + alive * scale * rewards[k]
        first_end = done[k] & ~ended
        end = torch.where(first_end, k, end)
        # torch.where: a terminated step bootstraps nothing, a truncated one γ^(k+1).
        discount = torch.where(first_end, torch.where(terminated[k], 0.0, scale * gamma), discount)
        ended = ended | done[k]
        alive = alive * (~done[k]).to(alive.dtype)
        scale *= gamma
    discount = torch.where(ended, discount, scale)
    return returns, discount, end, ended


def soft_q_target(
    returns: torch.Tensor,
    discounts: torch.Tensor,
    next_q: torch.Tensor,
    next_log_prob: torch.Tensor,
    alpha: torch.Tensor,
) -> torch.Tensor:
    """Soft TD target ``y = R + discount · (min_m Q'_m(s', u') − α log π(u'|s'))`` ``[B]``.

    ``next_q: [M, B]`` the target critics of the subset (REDQ; M = N = 2 is clipped double Q), ``alpha`` a scalar (0
    switches the entropy term off). A zero discount contributes exactly 0 even where ``next_q`` is not finite.
    """
    soft_value = next_q.min(0).values - alpha * next_log_prob
    return returns + torch.where(discounts > 0, discounts * soft_value, 0.0)


def categorical_projection(probs: torch.Tensor, atoms: torch.Tensor, support: torch.Tensor) -> torch.Tensor:
    """Project probabilities ``probs[B, K]`` sitting on ``atoms[B, K]`` onto the fixed ``support[K]`` (C51).

    Each atom is clipped to ``[v_min, v_max]`` and its mass split between the two neighbouring support points in
    proportion to its distance to them; mass is conserved.
    """
    v_min, v_max, k = support[0], support[-1], support.shape[0]
    delta = (v_max - v_min) / (k - 1)
    b = ((atoms.clamp(v_min, v_max) - v_min) / delta).clamp(0, k - 1)
    lower, upper = b.floor().long(), b.ceil().long()
    # An atom exactly on a support point (lower == upper) puts all of its mass there.
    w_upper = b - lower.to(b.dtype)
    w_lower = 1.0 - w_upper
    out = torch.zeros_like(probs)
    out.scatter_add_(-1, lower, probs * w_lower)
    out.scatter_add_(-1, upper, probs * w_upper)
    return out


def sac_actor_loss(log_prob: torch.Tensor, q: torch.Tensor, alpha: torch.Tensor, reduction: str) -> torch.Tensor:
    """``mean_b [α log π(u|s) − Q(s, u)]`` with ``u ~ π`` reparameterised; ``q: [N, B]`` reduced over the critics by
    ``"min"`` (SAC, TD3) or ``"mean"`` (REDQ, FastSAC)."""
    q_agg = q.min(0).values if reduction == "min" else q.mean(0)
    return (alpha * log_prob - q_agg).mean()


def temperature_loss(log_alpha: torch.Tensor, log_prob: torch.Tensor, target_entropy: float) -> torch.Tensor:
    """``−log α · mean_b(log π + H̄)``: α grows while the policy's entropy ``−log π`` is below the target ``H̄``."""
    return -(log_alpha * (log_prob.detach() + target_entropy)).mean()
