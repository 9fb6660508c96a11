"""A categorical (C51, Bellemare et al. 2017) Q ensemble: each critic predicts a distribution over a fixed support.

FastTD3, FastSAC and FlashSAC all use one for many-env off-policy learning: the cross-entropy loss is bounded however
large the returns, which keeps the large-batch, high-update-ratio regime stable. The support ``[v_min, v_max]`` must
cover the task's discounted returns (set it per task). SAC uses it through the same three calls as the scalar
ensemble -- ``forward`` (expected Q), ``target`` and ``td_loss`` -- so ``sac.py`` has no branch for it.
"""

from __future__ import annotations

import torch
from torch.nn import functional as F

from rsl_rl.modules.sac_models import BackupTerms, QEnsemble, SACCriticConfig


class CategoricalQEnsemble(QEnsemble):
    """N critics with ``num_atoms`` logits each; ``Q_i(s, u) = Σ_k softmax(logits_i)_k z_k``."""

    support: torch.Tensor

    def __init__(self, obs_dim: int, num_actions: int, cfg: SACCriticConfig) -> None:
        super().__init__(obs_dim, num_actions, cfg)
        self.register_buffer("support", torch.linspace(cfg.v_min, cfg.v_max, cfg.num_atoms))

    def head_dim(self, cfg: SACCriticConfig) -> int:
        return cfg.num_atoms

    def forward(self, obs: torch.Tensor, u: torch.Tensor) -> torch.Tensor:
        """Expected ``Q_i(s, u)`` ``[N, B]``."""
        return torch.softmax(self.raw(obs, u), dim=-1) @ self.support

    def td_loss(self, obs: torch.Tensor, u: torch.Tensor, target: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``Σ_i mean_b H(target_b, p_i(s_b, u_b))`` for target probabilities ``[B, K]``; also expected Q ``[N, B]``."""
        logits = self.raw(obs, u)
        loss = -(target * F.log_softmax(logits, dim=-1)).sum(-1).mean(-1).sum()
        with torch.no_grad():
            q = torch.softmax(logits, dim=-1) @ self.support
        return loss, q

    def target(
        self, next_obs: torch.Tensor, next_u: torch.Tensor, members: torch.Tensor | None, backup: BackupTerms
    ) -> torch.Tensor:
        """Target probabilities ``[B, K]``: the distribution of the member with the lowest expected Q (clipped double
        Q, over ``members``), its atoms moved to ``R + γ^k (z − α log π')`` and projected back onto the support."""
        from rsl_rl.algorithms.losses import categorical_projection

        probs = torch.softmax(self.raw(next_obs, next_u), dim=-1)
        if members is not None:
            probs = probs.index_select(0, members)
        lowest = (probs @ self.support).argmin(0)  # [B]
        chosen = probs.gather(0, lowest.view(1, -1, 1).expand(1, -1, probs.shape[-1])).squeeze(0)
        # torch.where, not products: behind a zero discount (a termination) the next state's outputs may be anything,
        # NaN included, and every atom must land on R with its mass intact.
        bootstrap = (backup.discounts > 0).unsqueeze(-1)
        chosen = torch.where(bootstrap, chosen, 1.0 / chosen.shape[-1])
        entropy = torch.where(bootstrap.squeeze(-1), backup.discounts * backup.alpha * backup.next_log_prob, 0.0)
        atoms = (backup.returns - entropy).unsqueeze(-1) + torch.where(
            bootstrap, backup.discounts.unsqueeze(-1) * self.support, 0.0
        )
        return categorical_projection(chosen, atoms, self.support)
