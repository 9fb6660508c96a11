"""Actuator models between the control law and the simulator: motor torque limits and action delay."""

from __future__ import annotations

import torch
from torch import Tensor


class DCMotor:
    """Torque–speed limited DC motor (Isaac Lab's `DCMotor` law) with a per-env strength multiplier.

    Attributes:
        effort_limit: Continuous torque limit in N·m, [J] (or [1] when every limit is a scalar); |τ| never exceeds it.
        velocity_limit: No-load speed v_max in rad/s, [J]; the motor gives no torque along q̇ beyond it.
        saturation_effort: Stall torque of the torque–speed line in N·m, [J]; equals effort_limit by default.
        torque_speed: True applies the torque–speed curve; False clips to ±effort_limit only.
        strength: Motor-strength multiplier on the commanded torque, [N, J]; 1 by default, a randomiser writes into it.
    """

    def __init__(
        self,
        num_envs: int,
        effort_limit: Tensor | float,
        velocity_limit: Tensor | float,
        saturation_effort: Tensor | float | None = None,
        device: torch.device | str = "cpu",
        dtype: torch.dtype = torch.float32,
        torque_speed: bool = True,
        num_joints: int | None = None,
    ) -> None:
        if saturation_effort is None:
            saturation_effort = effort_limit
        limits = [torch.as_tensor(x, dtype=dtype, device=device) for x in (effort_limit, velocity_limit)]
        limits.append(torch.as_tensor(saturation_effort, dtype=dtype, device=device))
        # The joint count comes from the first per-joint limit; with scalars only, num_joints (or 1, broadcasting).
        sizes = [x.shape[-1] for x in limits if x.dim() > 0]
        num_joints = sizes[0] if sizes else (num_joints or 1)
        self.effort_limit, self.velocity_limit, self.saturation_effort = (x.expand(num_joints).clone() for x in limits)
        self.torque_speed = torque_speed
        self.strength = torch.ones(num_envs, num_joints, dtype=dtype, device=device)

    def apply(self, torque: Tensor, qd: Tensor) -> Tensor:
        """Torque the motor delivers for commanded torque [N, J] at joint velocity q̇ [N, J]."""
        tau = self.strength * torque
        if not self.torque_speed:
            return torch.clamp(tau, -self.effort_limit, self.effort_limit)
        # Torque–speed line: τ_max = sat·(1 − q̇/v_max), τ_min = sat·(−1 − q̇/v_max), each capped to the continuous
        # limit and to sign-correct values. Beyond v_max (q̇/v_max ≥ 1), τ_max = 0: no torque further along q̇.
        ratio = qd / self.velocity_limit
        tau_max = torch.clamp(self.saturation_effort * (1.0 - ratio), min=0.0).minimum(self.effort_limit)
        tau_min = torch.clamp(self.saturation_effort * (-1.0 - ratio), max=0.0).maximum(-self.effort_limit)
        # τ_min ≤ 0 ≤ τ_max always, so the clip is well defined and |τ| ≤ effort_limit whatever the strength.
        return torch.minimum(torch.maximum(tau, tau_min), tau_max)


class ActionDelay:
    """Per-env delay of whole actions by an integer number of policy steps (ring buffer, no host syncs).

    Attributes:
        max_delay: Largest delay in steps; the buffer holds the last max_delay + 1 actions.
        buffer: Ring of past actions, [max_delay + 1, N, A]; slot `head` holds the newest.
        head: Index of the newest action in `buffer`, a 0-dim long tensor (stays on the device, no syncs).
        delay: Steps each env's action is delayed by, [N] long, in [0, max_delay]; 0 by default.
    """

    def __init__(
        self,
        num_envs: int,
        num_actions: int,
        max_delay: int,
        device: torch.device | str,
        dtype: torch.dtype = torch.float32,
    ) -> None:
        if max_delay < 0:
            raise ValueError(f"max_delay must be >= 0, got {max_delay}")
        self.max_delay = max_delay
        self.buffer = torch.zeros(max_delay + 1, num_envs, num_actions, dtype=dtype, device=device)
        self.head = torch.zeros((), dtype=torch.long, device=device)
        self.delay = torch.zeros(num_envs, dtype=torch.long, device=device)
        self._env_ids = torch.arange(num_envs, device=device)

    def set_delay(self, delay: Tensor, mask: Tensor) -> None:
        """Set the delay [N] long of the envs where mask [N] is true; values are clamped to [0, max_delay]."""
        # Clamped, not validated: a check would sync with the host.
        self.delay.copy_(torch.where(mask, delay.clamp(0, self.max_delay), self.delay))

    def reset(self, mask: Tensor, value: Tensor | None = None) -> None:
        """Fill the whole history of the envs where mask [N] is true with value [N, A] (or zeros)."""
        m = mask.view(1, -1, 1)
        if value is None:
            self.buffer.masked_fill_(m, 0.0)
        else:
            self.buffer.copy_(torch.where(m, value.unsqueeze(0), self.buffer))

    def __call__(self, action: Tensor) -> Tensor:
        """Push action [N, A]; return each env's action from delay[i] calls ago (delay 0: this one), [N, A]."""
        if self.max_delay == 0:
            return action
        length = self.max_delay + 1
        self.head.add_(1).remainder_(length)
        self.buffer.index_copy_(0, self.head.view(1), action.unsqueeze(0))
        # The action pushed d calls ago sits d slots behind the head, modulo the ring length.
        return self.buffer[(self.head - self.delay).remainder(length), self._env_ids]
