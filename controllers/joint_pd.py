"""Joint-space PD control: policy actions become joint position targets, targets become torques."""

from __future__ import annotations

import torch
from torch import Tensor


class JointPD:
    """Batched joint PD law with per-env gains (for PD-gain randomisation).

    Attributes:
        default_pos: Nominal joint positions q0 that a zero action holds, [J].
        action_scale: Radians of target offset per unit of action, [J].
        kp_nominal: Nominal stiffness in N·m/rad, [J]; `set_gains` scales from it, so scalings never compound.
        kd_nominal: Nominal damping in N·m·s/rad, [J].
        kp: Stiffness used by `torque`, [N, J]; a randomiser may write into it directly (`pd.kp[mask] = ...`).
        kd: Damping used by `torque`, [N, J].
    """

    def __init__(
        self,
        num_envs: int,
        default_pos: Tensor,
        stiffness: Tensor | float,
        damping: Tensor | float,
        action_scale: Tensor | float,
        device: torch.device | str,
        dtype: torch.dtype = torch.float32,
    ) -> None:
        self.default_pos = torch.as_tensor(default_pos, dtype=dtype, device=device).clone()
        num_joints = self.default_pos.shape[-1]

        def per_joint(x: Tensor | float) -> Tensor:
            # A scalar applies to every joint; clone so later in-place writes never alias the caller's tensor.
            return torch.as_tensor(x, dtype=dtype, device=device).expand(num_joints).clone()

        self.action_scale = per_joint(action_scale)
        self.kp_nominal = per_joint(stiffness)
        self.kd_nominal = per_joint(damping)
        self.kp = self.kp_nominal.repeat(num_envs, 1)
        self.kd = self.kd_nominal.repeat(num_envs, 1)

    def targets(self, action: Tensor) -> Tensor:
        """Joint position targets q* = q0 + scale·a, [N, J] -> [N, J]."""
        return torch.addcmul(self.default_pos, self.action_scale, action)

    def torque(self, target: Tensor, q: Tensor, qd: Tensor) -> Tensor:
        """PD torque τ = Kp(q* − q) − Kd·q̇, [N, J]; unclipped (the actuator model applies the limits)."""
        # The damping acts on q̇ alone (target velocity 0), as on the legged robots' joint controllers.
        return self.kp * (target - q) - self.kd * qd

    def set_gains(self, kp_scale: Tensor | float, kd_scale: Tensor | float, mask: Tensor) -> None:
        """Set gains = nominal × scale in the envs where mask [N] is true; scales are [N, J] or [N, 1]."""
        # torch.where instead of boolean indexing: indexing by a mask makes the host wait for its count.
        # copy_ keeps the tensors' identity, so views held elsewhere (and CUDA graphs) see the new gains.
        m = mask.unsqueeze(-1)
        self.kp.copy_(torch.where(m, self.kp_nominal * kp_scale, self.kp))
        self.kd.copy_(torch.where(m, self.kd_nominal * kd_scale, self.kd))
