"""PPO on a rollout that the guide and the learner collected together (JSRL with an on-policy learner).

Guide steps are off-policy for the learner π^e: the guide chose a_t, not π^e. The rollout stores, per step, the
applied action, the learner's log-probability of it (π_old) and a learner mask m_t (1: the learner acted).

``ppo_guide_steps="masked"`` (default): the guide's steps stay in the value targets and GAE (their rewards and
values are real; the critic learns V of the combined policy), but not in the policy-gradient terms. Each sample's
weight in the surrogate, the entropy bonus and the KL / clip-fraction statistics is

    w_t = m_t · T·N / max(Σ_rollout m, 1)

so the surrogate of a mini-batch of B rows, (1/B) Σ_b w_b·L^clip_b, is in expectation the mean of L^clip over its
learner rows, and exactly that mean when the mini-batch is the whole rollout (the normaliser is the rollout's
learner count, known before the update, rather than each mini-batch's: no reduction ahead of the gradient chunks).
A rollout with no learner step has w = 0 everywhere: the actor gets no gradient, the critic still learns. The
advantages are normalised with the mean and standard deviation of the learner steps' advantages (with
``normalize_advantage_per_mini_batch`` the mini-batch statistics include the guide rows: PPO computes them).

``"unmasked"``: w_t = 1, PPO's loss as is over every step, π_old of a guide step being the learner's density of the
guide's action: the biased ratio the paper's masking avoids (expected symptom: a KL spike).
"""

from __future__ import annotations

from typing import Any

import torch
from tensordict import TensorDict

from rsl_rl.algorithms.losses import (
    clipped_surrogate_loss,
    generalized_advantage_estimation,
    value_loss,
)
from rsl_rl.algorithms.ppo import PPO
from rsl_rl.modules.distribution import gaussian_entropy, gaussian_kl, gaussian_log_prob
from rsl_rl.storage.rollout_storage import RolloutStorage


def masked_normalize(x: torch.Tensor, mask: torch.Tensor, eps: float = 1e-8) -> torch.Tensor:
    """(x − μ_m) / (σ_m + eps) with the mean and (unbiased) std over the elements where ``mask`` (``[T, N]`` each):
    μ_m = Σ m x / max(Σ m, 1), σ_m² = Σ m (x − μ_m)² / max(Σ m − 1, 1). No host sync (an empty mask gives μ = σ = 0)."""
    m = mask.to(x.dtype)
    count = m.sum()
    mean = (m * x).sum() / count.clamp_min(1.0)
    var = (m * (x - mean).square()).sum() / (count - 1.0).clamp_min(1.0)
    return (x - mean) / (var.sqrt() + eps)


class JSRLRolloutStorage(RolloutStorage):
    """The rollout plus ``learner [T, N]`` (bool: the learner acted) and ``policy_weight [T, N]`` (w_t, set by
    :meth:`JSRLPPO.compute_returns`)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        shape = (self.num_steps, self.num_envs)
        self.learner = torch.ones(shape, dtype=torch.bool, device=self.device)
        self.policy_weight = torch.ones(shape, device=self.device)


class JSRLPPO(PPO):
    """PPO whose rollout holds guide steps; :meth:`apply_guide` after :meth:`act` records what was applied."""

    storage_class = JSRLRolloutStorage
    storage: JSRLRolloutStorage
    extra_update_fields = ("policy_weight",)
    guide_steps: str = "masked"
    """``JSRLConfig.ppo_guide_steps``: ``"masked"`` or ``"unmasked"``."""

    def apply_guide(self, guide_actions: torch.Tensor, guide: torch.Tensor) -> torch.Tensor:
        """After :meth:`act` (same step): a_t = a^g_t where ``guide [N]`` else the learner's sample; store a_t,
        log π_old(a_t | s_t) under the learner's distribution and the learner mask. Returns a_t ``[N, A]``."""
        s, t = self.storage, self.storage.step
        applied = torch.where(guide.unsqueeze(-1), guide_actions, s.actions[t])
        s.actions[t].copy_(applied)
        s.log_prob[t].copy_(gaussian_log_prob(applied, s.action_mean[t], s.action_std[t]))
        s.learner[t].copy_(~guide)
        return applied

    def compute_returns(self, obs: TensorDict) -> None:
        """GAE over every step (guide steps included); then the policy weights w_t and, masked, the advantages
        normalised over the learner steps."""
        if self.guide_steps == "unmasked":
            super().compute_returns(obs)
            self.storage.policy_weight.fill_(1.0)
            return
        s, cfg = self.storage, self.cfg
        advantages, returns = generalized_advantage_estimation(
            s.rewards, s.values, s.dones, self._last_values(obs), cfg.gamma, cfg.lam
        )
        s.returns.copy_(returns)
        m = s.learner.float()
        s.policy_weight.copy_(m * (m.numel() / m.sum().clamp_min(1.0)))
        s.advantages.copy_(advantages if cfg.normalize_advantage_per_mini_batch else masked_normalize(advantages, m))

    def _backward(
        self,
        rows: torch.Tensor,
        col: dict[str, slice],
        actions: torch.Tensor,
        mean: torch.Tensor,
        values: torch.Tensor,
        advantages: torch.Tensor,
        size: int,
    ) -> torch.Tensor:
        """PPO's chunk loss (:meth:`PPO._backward`) with the policy terms weighted by w: (1/size)·[Σ w·L^clip
        + c_v·Σ L^V − c_e·H·Σ w]; KL and clip counts are w-weighted sums. Returns the same ``[5]`` sums."""
        cfg, n = self.cfg, rows.shape[0]
        k = mean.shape[0] // n
        old_log_prob, old_values, returns, weight = (
            rows[:, col[name]].squeeze(-1) for name in ("log_prob", "values", "returns", "policy_weight")
        )
        std = self.actor.std()
        log_prob = gaussian_log_prob(actions, mean, std)
        # A zero-weight row's ratio is pinned to 1: the log-ratio of a far-off guide action may overflow exp, and the
        # 0·inf of its weighted gradient would be NaN.
        old_log_prob = torch.where(weight.repeat(k) > 0, old_log_prob.repeat(k), log_prob.detach())
        surrogate = clipped_surrogate_loss(log_prob, old_log_prob, advantages.repeat(k), cfg.clip_param)
        v_loss = value_loss(values, old_values.repeat(k), returns.repeat(k), cfg.clip_param, cfg.use_clipped_value_loss)
        surrogate, v_loss = (weight.repeat(k) * surrogate).sum() / k, v_loss.sum() / k
        entropy = gaussian_entropy(std) * weight.sum()  # state-independent σ: the same entropy for every row
        loss = (surrogate + cfg.value_loss_coef * v_loss - cfg.entropy_coef * entropy) / size
        loss = self.extensions.add_chunk_loss(loss, self.actor, rows, col, mean, size)  # RND's, the mirror loss
        loss.backward()
        with torch.no_grad():
            kl = (weight * gaussian_kl(rows[:, col["action_mean"]], rows[:, col["action_std"]], mean[:n], std)).sum()
            clipped = (weight * (log_prob[:n] - old_log_prob[:n]).exp().sub(1.0).abs().gt(cfg.clip_param)).sum()
            return torch.stack([surrogate, v_loss, entropy, kl, clipped])
