"""Cartesian impedance control of a torque-controlled arm, batched: SERL's law (reference/serl.md §6,
``serl_franka_controllers/cartesian_impedance_controller.cpp``) for every env at once.

Per physics step, for N envs with J joints and the controlled site's Jacobian ``jac`` [N, 6, J]:

    e    = (p − p_d, log(R R_dᵀ))                       pose error: position, rotation vector (world frame)
    ê    = clip(e, −clip_neg, clip_pos)                  SERL's reference limiting, per axis and asymmetric
    ∫ê  ← clip(∫ê + dt·ê, ±integral_clip)
    F    = −K ê − D J q̇ − K_i ∫ê                         task wrench [N, 6] (force, torque), K, D, K_i diagonal
    τ₀   = K_n (q₀ − q) − D_n q̇                          posture torque
    τ    = Jᵀ F + (I − Jᵀ J̄ᵀ) τ₀ + qfrc_bias              J̄ᵀ: dynamically consistent (or pseudo-) inverse of Jᵀ
    τ    ← clip(τ, τ_prev ± rate_limit), then clip(τ, ±torque_limit)

Because ê is clipped, a target far inside an obstacle presses with a bounded wrench: at rest in contact the wrench on
the obstacle is K·clip (SERL's "high stiffness with bounded contact force"); in free space the site approaches a far
target at about K·clip/D. The orientation error is the rotation vector of R R_dᵀ (its angle in radians, so K_r is in
N·m/rad); SERL's C++ controller uses the quaternion's vector part, sin(θ/2)·axis, which is θ/2 near the target, so its
rotational stiffness acts as K_r/2 there.

Policies act at 10-20 Hz through :func:`target_from_action` (SERL's action interface); the law runs at physics rate.
The arm's quantities (site pose, Jacobian, ``qfrc_bias``, mass matrix) come from the simulator facade
(``tasks/mujoco/sim.py``) or, on a robot, from its model library; this file imports torch only.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import Tensor

NULLSPACE_PROJECTIONS = ("dynamic", "pseudo_inverse")


@dataclass
class ImpedanceConfig:
    """Gains and limits of :class:`CartesianImpedance`; defaults: SERL's peg-insertion "compliance" mode on a Franka
    Panda (reference/serl.md §6)."""

    translational_stiffness: float = 2000.0
    """K_t, N/m, on each of x, y, z."""
    translational_damping: float = 89.0
    """D_t, N·s/m (≈ 2√K_t: critical damping of a unit Cartesian mass)."""
    rotational_stiffness: float = 150.0
    """K_r, N·m/rad."""
    rotational_damping: float = 7.0
    """D_r, N·m·s/rad."""
    translational_clip_pos: tuple[float, float, float] = (0.003, 0.003, 0.01)
    """Upper bounds of the position error p − p_d per axis (x, y, z), m."""
    translational_clip_neg: tuple[float, float, float] = (0.003, 0.003, 0.01)
    """Magnitudes of the lower bounds of p − p_d per axis, m (SERL's ``translational_clip_neg_*``)."""
    rotational_clip_pos: tuple[float, float, float] = (0.02, 0.02, 0.02)
    """Upper bounds of the rotation error per world axis, rad."""
    rotational_clip_neg: tuple[float, float, float] = (0.02, 0.02, 0.02)
    """Magnitudes of the lower bounds of the rotation error per world axis, rad."""
    translational_integral_gain: float = 0.0
    """K_i on the integrated clipped position error, N/(m·s); 0 = no integral term (SERL's precision mode: 0.1)."""
    rotational_integral_gain: float = 0.0
    """K_i on the integrated clipped rotation error, N·m/(rad·s)."""
    translational_integral_clip: float = 0.1
    """Bound of each integrated position-error component, m·s (SERL: 0.1)."""
    rotational_integral_clip: float = 0.3
    """Bound of each integrated rotation-error component, rad·s (SERL: 0.3)."""
    nullspace_stiffness: float = 10.0
    """K_n, N·m/rad: pulls the joints towards the posture q₀ inside the task's null space."""
    nullspace_damping: float | None = None
    """D_n, N·m·s/rad; None = 2√K_n, as the Franka controllers do."""
    nullspace_projection: str = "dynamic"
    """``dynamic``: J̄ᵀ = Λ J M⁻¹ with Λ = (J M⁻¹ Jᵀ)⁻¹ (needs the mass matrix): the posture torque causes no task-space
    acceleration. ``pseudo_inverse``: J̄ᵀ = (J Jᵀ)⁻¹ J, SERL's form: the posture torque maps to no task-space wrench."""
    regularization: float = 1e-6
    """λ added to the diagonal of J M⁻¹ Jᵀ (or J Jᵀ) before it is inverted: keeps the projection finite at
    singularities."""
    torque_limit: tuple[float, ...] = (87.0, 87.0, 87.0, 87.0, 12.0, 12.0, 12.0)
    """Symmetric joint torque limits, N·m, one per joint (Franka Panda's)."""
    torque_rate_limit: float = 0.0
    """Largest change of each joint torque per control step, N·m; 0 = no limit (SERL: 1 N·m per 1 kHz step)."""
    dt: float = 0.002
    """Control period, s: the integration step of the integral term (the physics step when run at physics rate)."""

    def __post_init__(self) -> None:
        for name in (
            "translational_stiffness",
            "translational_damping",
            "rotational_stiffness",
            "rotational_damping",
            "translational_integral_gain",
            "rotational_integral_gain",
            "nullspace_stiffness",
            "torque_rate_limit",
        ):
            if not getattr(self, name) >= 0.0:  # also refuses NaN
                raise ValueError(f"impedance.{name} must be >= 0, got {getattr(self, name)}")
        for name in ("translational_integral_clip", "rotational_integral_clip", "regularization", "dt"):
            if not getattr(self, name) > 0.0:
                raise ValueError(f"impedance.{name} must be > 0, got {getattr(self, name)}")
        for name in ("translational_clip_pos", "translational_clip_neg", "rotational_clip_pos", "rotational_clip_neg"):
            value = tuple(getattr(self, name))
            if len(value) != 3 or not all(v > 0.0 for v in value):
                raise ValueError(f"impedance.{name} must be 3 bounds > 0 (x, y, z), got {value}")
        if len(self.torque_limit) == 0 or not all(v > 0.0 for v in self.torque_limit):
            raise ValueError(f"impedance.torque_limit must be one limit > 0 per joint, got {self.torque_limit}")
        if self.nullspace_projection not in NULLSPACE_PROJECTIONS:
            raise ValueError(
                f"impedance.nullspace_projection={self.nullspace_projection!r}; allowed: "
                f"{', '.join(map(repr, NULLSPACE_PROJECTIONS))}"
            )
        if self.nullspace_damping is None:
            self.nullspace_damping = 2.0 * math.sqrt(self.nullspace_stiffness)
        elif not self.nullspace_damping >= 0.0:
            raise ValueError(f"impedance.nullspace_damping must be >= 0 or None, got {self.nullspace_damping}")


# --- rotations --------------------------------------------------------------------------------------------------------


def skew(v: Tensor) -> Tensor:
    """Cross-product matrices [v]×, [..., 3] -> [..., 3, 3] ([v]× u = v × u)."""
    x, y, z = v.unbind(-1)
    zero = torch.zeros_like(x)
    return torch.stack((zero, -z, y, z, zero, -x, -y, x, zero), dim=-1).unflatten(-1, (3, 3))


def so3_exp(rotvec: Tensor) -> Tensor:
    """Rotation matrices of rotation vectors (Rodrigues), [..., 3] -> [..., 3, 3]:
    R = I + (sin θ/θ)[v]× + ((1 − cos θ)/θ²)[v]×², θ = |v|."""
    theta2 = (rotvec * rotvec).sum(-1, keepdim=True).unsqueeze(-1)
    theta = theta2.sqrt()
    small = theta2 < 1e-8
    safe = torch.where(small, torch.ones_like(theta), theta)
    # Taylor series below θ = 1e-4, where the closed forms lose their digits.
    a = torch.where(small, 1.0 - theta2 / 6.0, torch.sin(safe) / safe)
    b = torch.where(small, 0.5 - theta2 / 24.0, (1.0 - torch.cos(safe)) / (safe * safe))
    k = skew(rotvec)
    eye = torch.eye(3, dtype=rotvec.dtype, device=rotvec.device)
    return eye + a * k + b * (k @ k)


def matrix_to_quaternion(rot: Tensor) -> Tensor:
    """Unit quaternions (w, x, y, z) with w ≥ 0 of rotation matrices, [..., 3, 3] -> [..., 4].

    Each of the four components can be recovered from the diagonal; the one with the largest magnitude is, and the
    others from the off-diagonal entries divided by it (accurate for every rotation, 180° included)."""
    m = rot.flatten(-2)
    m00, m01, m02, m10, m11, m12, m20, m21, m22 = m.unbind(-1)
    # 4w², 4x², 4y², 4z² from the trace and the diagonal.
    four_sq = torch.stack(
        (1 + m00 + m11 + m22, 1 + m00 - m11 - m22, 1 - m00 + m11 - m22, 1 - m00 - m11 + m22), dim=-1
    ).clamp_min(0.0)
    # Row i: 4·q_i·(w, x, y, z); divided by 4|q_i| it is ±q.
    rows = torch.stack(
        (
            torch.stack((four_sq[..., 0], m21 - m12, m02 - m20, m10 - m01), dim=-1),
            torch.stack((m21 - m12, four_sq[..., 1], m10 + m01, m02 + m20), dim=-1),
            torch.stack((m02 - m20, m10 + m01, four_sq[..., 2], m12 + m21), dim=-1),
            torch.stack((m10 - m01, m20 + m02, m21 + m12, four_sq[..., 3]), dim=-1),
        ),
        dim=-2,
    )
    best = four_sq.argmax(dim=-1, keepdim=True)
    row = rows.gather(-2, best.unsqueeze(-1).expand(*best.shape[:-1], 1, 4)).squeeze(-2)
    quat = row / (2.0 * four_sq.gather(-1, best).sqrt())
    return torch.where(quat[..., :1] < 0, -quat, quat)


def so3_log(rot: Tensor) -> Tensor:
    """Rotation vectors (axis·angle, angle in [0, π]) of rotation matrices, [..., 3, 3] -> [..., 3]."""
    quat = matrix_to_quaternion(rot)
    w, v = quat[..., :1], quat[..., 1:]
    norm = torch.linalg.vector_norm(v, dim=-1, keepdim=True)
    # θ = 2·atan2(|v|, w); rotvec = θ·v/|v|, whose limit as |v| → 0 is 2v/w.
    safe = torch.where(norm > 1e-12, norm, torch.ones_like(norm))
    scale = torch.where(norm > 1e-12, 2.0 * torch.atan2(norm, w) / safe, 2.0 / w)
    return scale * v


def pose_error(pos: Tensor, rot: Tensor, target_pos: Tensor, target_rot: Tensor) -> Tensor:
    """Pose error e = (p − p_d, log(R R_dᵀ)) in the world frame, [N, 3], [N, 3, 3] (twice) -> [N, 6].

    The rotation part is the rotation vector that turns the target orientation into the current one: −K·e drives the
    site back to the target."""
    return torch.cat((pos - target_pos, so3_log(rot @ target_rot.transpose(-1, -2))), dim=-1)


# --- the law, term by term --------------------------------------------------------------------------------------------


def nullspace_torque(jac: Tensor, tau0: Tensor, mass_matrix: Tensor | None, regularization: float) -> Tensor:
    """Null-space projection (I − Jᵀ J̄ᵀ) τ₀, [N, 6, J], [N, J], [N, J, J] or None -> [N, J].

    J̄ᵀ = (J M⁻¹ Jᵀ + λI)⁻¹ J M⁻¹, with M the mass matrix (dynamically consistent: J̄ᵀ Jᵀ = I and J̄ᵀ(τ − Jᵀ J̄ᵀ τ) = 0,
    so the projected torque accelerates the site not at all), or with M = I when ``mass_matrix`` is None (the
    pseudo-inverse form (J⁺)ᵀ = (J Jᵀ)⁻¹ J: the projected torque is orthogonal to every Jᵀ F, so it maps to no wrench).
    """
    rhs = torch.cat((jac.transpose(1, 2), tau0.unsqueeze(-1)), dim=-1)  # [Jᵀ | τ₀], [N, J, 7]
    solved = rhs if mass_matrix is None else torch.linalg.solve(mass_matrix, rhs)  # M⁻¹ [Jᵀ | τ₀]
    projected = jac @ solved  # [J M⁻¹ Jᵀ | J M⁻¹ τ₀], [N, 6, 7]
    eye = torch.eye(jac.shape[1], dtype=jac.dtype, device=jac.device)
    wrench = torch.linalg.solve(projected[..., :-1] + regularization * eye, projected[..., -1:])  # J̄ᵀ τ₀, [N, 6, 1]
    return tau0 - (jac.transpose(1, 2) @ wrench).squeeze(-1)


def limit_torque(tau: Tensor, previous: Tensor, torque_limit: Tensor, rate_limit: float) -> Tensor:
    """Torque-rate then torque saturation, [N, J] -> [N, J]: τ ← clip(τ, τ_prev ± rate) (rate 0: none), then
    clip(τ, ±torque_limit) (the actuators' limits, as MuJoCo's ctrlrange would)."""
    if rate_limit > 0.0:
        tau = torch.minimum(torch.maximum(tau, previous - rate_limit), previous + rate_limit)
    return torch.minimum(torch.maximum(tau, -torque_limit), torque_limit)


class CartesianImpedance:
    """Batched Cartesian impedance controller with per-env gains and state (integral, previous torque).

    Attributes:
        stiffness: K per env, [N, 6] (K_t ×3, K_r ×3); a randomiser may write into it (``ctrl.stiffness[mask] = ...``).
        damping: D per env, [N, 6].
        posture: Null-space posture q₀ per env, [N, J].
        error_integral: ∫ê per env, [N, 6] (zero while the integral gains are zero).
        last_torque: The torque of the previous call, [N, J] (the reference of the rate limit).
    """

    def __init__(
        self,
        cfg: ImpedanceConfig,
        num_envs: int,
        posture: Tensor,
        device: torch.device | str,
        dtype: torch.dtype = torch.float32,
    ) -> None:
        posture = torch.as_tensor(posture, dtype=dtype, device=device)
        num_joints = len(cfg.torque_limit)
        if posture.shape[-1] != num_joints:
            raise ValueError(
                f"posture has {posture.shape[-1]} joints but impedance.torque_limit has {num_joints} limits"
            )
        self.cfg = cfg
        tensor = lambda x: torch.tensor(x, dtype=dtype, device=device)  # noqa: E731
        gains = lambda t, r: tensor((t,) * 3 + (r,) * 3)  # noqa: E731
        self.stiffness = gains(cfg.translational_stiffness, cfg.rotational_stiffness).repeat(num_envs, 1)
        self.damping = gains(cfg.translational_damping, cfg.rotational_damping).repeat(num_envs, 1)
        self.integral_gain = gains(cfg.translational_integral_gain, cfg.rotational_integral_gain)
        self.integral_clip = gains(cfg.translational_integral_clip, cfg.rotational_integral_clip)
        self.clip_high = tensor((*cfg.translational_clip_pos, *cfg.rotational_clip_pos))
        self.clip_low = -tensor((*cfg.translational_clip_neg, *cfg.rotational_clip_neg))
        self.torque_limit = tensor(cfg.torque_limit)
        self.nullspace_damping = float(cfg.nullspace_damping or 0.0)
        self.posture = posture.expand(num_envs, num_joints).clone()
        self.error_integral = torch.zeros(num_envs, 6, dtype=dtype, device=device)
        self.last_torque = torch.zeros(num_envs, num_joints, dtype=dtype, device=device)
        # Envs whose next torque has no previous one to be rate-limited against (all, until the first call).
        self._fresh = torch.ones(num_envs, dtype=torch.bool, device=device)

    def reset(self, mask: Tensor) -> None:
        """Forget the integral and the previous torque of the envs where ``mask`` [N] (no host sync)."""
        m = mask.unsqueeze(-1)
        self.error_integral.masked_fill_(m, 0.0)
        self.last_torque.masked_fill_(m, 0.0)
        self._fresh |= mask

    def torque(
        self,
        pos: Tensor,
        rot: Tensor,
        jac: Tensor,
        qpos: Tensor,
        qvel: Tensor,
        bias: Tensor,
        target_pos: Tensor,
        target_rot: Tensor,
        mass_matrix: Tensor | None = None,
    ) -> Tensor:
        """Joint torques [N, J] that drive the site at (``pos`` [N, 3], ``rot`` [N, 3, 3]) towards (``target_pos``
        [N, 3], ``target_rot`` [N, 3, 3]), given the site Jacobian ``jac`` [N, 6, J] (linear rows over angular), the
        joint state ``qpos``, ``qvel`` [N, J], the bias forces ``bias`` [N, J] (gravity + Coriolis) and, for the
        dynamically consistent projection, the mass matrix [N, J, J]. All in the world frame; updates the integral."""
        cfg = self.cfg
        if cfg.nullspace_projection == "dynamic" and mass_matrix is None:
            raise ValueError("impedance.nullspace_projection='dynamic' needs the mass matrix (or use 'pseudo_inverse')")
        # ê = clip(e, −clip_neg, clip_pos): bounds the wrench an unreachable target can command to K·clip.
        error = torch.minimum(
            torch.maximum(pose_error(pos, rot, target_pos, target_rot), self.clip_low), self.clip_high
        )
        self.error_integral.copy_((self.error_integral + cfg.dt * error).clamp(-self.integral_clip, self.integral_clip))
        velocity = (jac @ qvel.unsqueeze(-1)).squeeze(-1)  # ẋ = J q̇, [N, 6]
        # F = −K ê − D ẋ − K_i ∫ê; task torque Jᵀ F.
        wrench = -self.stiffness * error - self.damping * velocity - self.integral_gain * self.error_integral
        tau_task = (jac.transpose(1, 2) @ wrench.unsqueeze(-1)).squeeze(-1)
        # τ₀ = K_n (q₀ − q) − D_n q̇, projected into the task's null space.
        tau0 = cfg.nullspace_stiffness * (self.posture - qpos) - self.nullspace_damping * qvel
        projection_mass = mass_matrix if cfg.nullspace_projection == "dynamic" else None
        tau = tau_task + nullspace_torque(jac, tau0, projection_mass, cfg.regularization) + bias
        previous = torch.where(self._fresh.unsqueeze(-1), tau, self.last_torque)
        tau = limit_torque(tau, previous, self.torque_limit, cfg.torque_rate_limit)
        # In place, so that views held elsewhere (and CUDA graphs) follow.
        self.last_torque.copy_(tau)
        self._fresh.zero_()
        return tau


def target_from_action(
    action: Tensor,
    pos: Tensor,
    rot: Tensor,
    pos_low: Tensor,
    pos_high: Tensor,
    pos_scale: float = 0.02,
    rot_scale: float = 0.1,
    nominal_rot: Tensor | None = None,
    rot_bound: float | None = None,
) -> tuple[Tensor, Tensor]:
    """SERL's action interface: a policy action in [−1, 1]⁶ moves a pose by at most ``pos_scale`` (m) per axis and
    ``rot_scale`` (rad) per axis; the new target stays in a safety box.

    ``action`` [N, 6] (clipped to [−1, 1]); ``pos`` [N, 3], ``rot`` [N, 3, 3]: the pose it moves from (SERL: the current
    pose of the end effector; the previous target also works); ``pos_low``, ``pos_high`` [3] or [N, 3]: the position
    box. The rotation is applied in the world frame, R_d = exp(rot_scale·a_rot) R (SERL composes Euler angles; for
    these small steps the two agree to second order). With ``nominal_rot`` [3, 3] or [N, 3, 3] and ``rot_bound`` (rad),
    each component of the rotation vector of R_nominalᵀ R_d is clipped to ±rot_bound (a box around a nominal tool
    orientation, in its frame). Returns (target_pos [N, 3], target_rot [N, 3, 3])."""
    action = action.clamp(-1.0, 1.0)
    # p_d = clip(p + s_p·a_pos, box)
    target_pos = torch.minimum(torch.maximum(pos + pos_scale * action[:, :3], pos_low), pos_high)
    target_rot = so3_exp(rot_scale * action[:, 3:]) @ rot
    if nominal_rot is not None and rot_bound is not None:
        nominal = nominal_rot.expand_as(target_rot)
        offset = so3_log(nominal.transpose(-1, -2) @ target_rot).clamp(-rot_bound, rot_bound)
        target_rot = nominal @ so3_exp(offset)
    return target_pos, target_rot
