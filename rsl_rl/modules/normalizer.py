"""Running mean/std normalisation of observations."""

from __future__ import annotations

import torch
from torch import nn


class EmpiricalNormalization(nn.Module):
    """Normalise ``x`` to zero mean and unit variance with statistics pooled over every sample seen so far.

    ``y = (x - mean) / (std + eps)``. The statistics are updated from whole batches with the parallel (Chan et al.)
    combination of means and variances, so the result does not depend on how samples are split into batches. Buffer
    names match rsl_rl's ``EmpiricalNormalization`` so rsl_rl checkpoints load into it.
    """

    _mean: torch.Tensor
    _var: torch.Tensor
    _std: torch.Tensor
    count: torch.Tensor

    def __init__(self, shape: int, eps: float = 1e-2) -> None:
        super().__init__()
        self.eps = eps
        self.register_buffer("_mean", torch.zeros(1, shape))
        self.register_buffer("_var", torch.ones(1, shape))
        self.register_buffer("_std", torch.ones(1, shape))
        self.register_buffer("count", torch.tensor(0, dtype=torch.long))

    @property
    def mean(self) -> torch.Tensor:
        return self._mean.squeeze(0)

    @property
    def std(self) -> torch.Tensor:
        return self._std.squeeze(0)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Normalise ``x[..., D]``."""
        return (x - self._mean) / (self._std + self.eps)

    @torch.no_grad()
    def update(self, x: torch.Tensor) -> None:
        """Fold a batch ``x[B, D]`` into the running statistics (no host sync)."""
        x = x.reshape(-1, x.shape[-1])
        n = x.shape[0]
        batch_var, batch_mean = torch.var_mean(x, dim=0, unbiased=False, keepdim=True)
        total = self.count + n
        rate = n / total
        delta = batch_mean - self._mean
        # Chan et al.: M2_ab = M2_a + M2_b + δ² n_a n_b / n; divided by n it gives the update below.
        self._mean += rate * delta
        self._var += rate * (batch_var - self._var + delta * (batch_mean - self._mean))
        self._std.copy_(self._var.clamp_min(0.0).sqrt())
        self.count += n
