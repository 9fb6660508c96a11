"""The Cartesian impedance law (controllers/impedance.py) on hand values and properties, in pure torch: the per-axis
reference clipping, rotation errors of known rotations, the null-space projection (no task-space wrench or
acceleration), torque and torque-rate saturation, the integral term, the policy action interface, and the config's
validation. The closed loop on the MuJoCo arm is tested in tests/tasks/test_arm.py."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from controllers.impedance import (
    CartesianImpedance,
    ImpedanceConfig,
    limit_torque,
    matrix_to_quaternion,
    nullspace_torque,
    pose_error,
    so3_exp,
    so3_log,
    target_from_action,
)

F64 = torch.float64
EYE3 = torch.eye(3, dtype=F64)


def _rot(axis: Sequence[float], angle: float) -> torch.Tensor:
    """A rotation matrix by hand (Rodrigues written out), [1, 3, 3]."""
    a = torch.tensor(axis, dtype=F64)
    a = a / a.norm()
    k = torch.tensor([[0, -a[2], a[1]], [a[2], 0, -a[0]], [-a[1], a[0], 0]], dtype=F64)
    return (EYE3 + math.sin(angle) * k + (1 - math.cos(angle)) * k @ k).unsqueeze(0)


def _six_joint_controller(cfg: ImpedanceConfig, n: int = 1) -> CartesianImpedance:
    """A 6-joint 'arm' whose Jacobian the tests choose (J = I makes τ equal the task wrench)."""
    return CartesianImpedance(cfg, n, torch.zeros(6), "cpu", F64)


def _cfg(**changes: Any) -> ImpedanceConfig:
    base: dict[str, Any] = {
        "torque_limit": (1e6,) * 6,
        "nullspace_stiffness": 0.0,
        "nullspace_projection": "pseudo_inverse",
    }
    base.update(changes)
    return ImpedanceConfig(**base)


def _wrench(ctrl: CartesianImpedance, error: torch.Tensor, velocity: torch.Tensor | None = None) -> torch.Tensor:
    """Torque of the J = I arm with the site displaced from its target by ``error`` [N, 6] (= the wrench)."""
    n = error.shape[0]
    target_rot = _rot((0.3, -0.2, 0.9), 0.7).expand(n, 3, 3)
    rot = so3_exp(error[:, 3:]) @ target_rot  # log(R R_dᵀ) = the rotation part of the error
    jac = torch.eye(6, dtype=F64).expand(n, 6, 6)
    qvel = torch.zeros(n, 6, dtype=F64) if velocity is None else velocity
    zeros = torch.zeros(n, 6, dtype=F64)
    target_pos = torch.full((n, 3), 0.4, dtype=F64)
    return ctrl.torque(target_pos + error[:, :3], rot, jac, zeros, qvel, zeros, target_pos, target_rot, None)


# --- rotations --------------------------------------------------------------------------------------------------------


def test_orientation_error_of_known_rotations() -> None:
    p = torch.zeros(1, 3, dtype=F64)
    # About z by +0.3 rad past the target (target = identity): the error is +0.3 about z.
    torch.testing.assert_close(
        pose_error(p, _rot((0, 0, 1), 0.3), p, EYE3[None]), torch.tensor([[0, 0, 0, 0, 0, 0.3]], dtype=F64)
    )
    # About x by −0.5 rad, with a non-trivial target: the error is in the world frame, R = exp(e) R_d.
    target = _rot((1, 2, 3), 1.1)
    error = pose_error(p, _rot((1, 0, 0), -0.5) @ target, p, target)
    torch.testing.assert_close(error[:, 3:], torch.tensor([[-0.5, 0, 0]], dtype=F64))
    # Half a turn about (1, 1, 0)/√2: angle π, axis up to sign.
    half_turn = so3_log(_rot((1, 1, 0), math.pi))
    torch.testing.assert_close(half_turn.abs(), torch.tensor([[1, 1, 0]], dtype=F64) * math.pi / math.sqrt(2))
    # The translational part is p − p_d.
    pos, target_pos = torch.tensor([[0.1, 0.2, 0.3]], dtype=F64), torch.tensor([[0.4, 0.2, -0.1]], dtype=F64)
    torch.testing.assert_close(pose_error(pos, EYE3[None], target_pos, EYE3[None])[:, :3], pos - target_pos)


@settings(max_examples=200, deadline=None)
@given(
    st.lists(st.floats(-1.0, 1.0), min_size=3, max_size=3),
    st.floats(0.0, math.pi - 1e-3),
)
def test_exp_and_log_are_inverse_and_match_hand_rodrigues(axis: list[float], angle: float) -> None:
    direction = torch.tensor(axis, dtype=F64)
    if direction.norm() < 1e-3:
        direction = torch.tensor([0.0, 0.0, 1.0], dtype=F64)
    rotvec = (direction / direction.norm() * angle).unsqueeze(0)
    rot = so3_exp(rotvec)
    torch.testing.assert_close(rot, _rot(direction.tolist(), angle), atol=1e-12, rtol=0)
    torch.testing.assert_close(so3_log(rot), rotvec, atol=1e-9, rtol=0)
    quat = matrix_to_quaternion(rot)
    assert quat[0, 0] >= 0 and abs(float(quat.norm()) - 1) < 1e-12


def test_small_rotations_keep_their_digits_in_float32() -> None:
    rotvec = torch.tensor([[1e-6, -2e-6, 3e-7], [0.0, 0.0, 0.0], [1e-3, 0, 0]])
    torch.testing.assert_close(so3_log(so3_exp(rotvec)), rotvec, atol=1e-9, rtol=1e-3)


# --- reference clipping, gains, integral ------------------------------------------------------------------------------


def test_law_by_hand_values() -> None:
    """τ = Jᵀ(−K ê − D J q̇) + qfrc_bias on a 6-joint arm with J = I: every term checkable by hand."""
    cfg = _cfg(
        translational_clip_pos=(0.003, 0.003, 0.01),
        translational_clip_neg=(0.004, 0.002, 0.01),
        rotational_clip_pos=(0.02, 0.02, 0.02),
        rotational_clip_neg=(0.02, 0.05, 0.02),
    )
    ctrl = _six_joint_controller(cfg)
    error = torch.tensor([[-0.1, 0.001, 0.1, 0.01, -0.3, 0.5]], dtype=F64)
    velocity = torch.tensor([[0.1, 0.0, 0.0, 0.0, 0.0, 0.2]], dtype=F64)
    # ê = (−0.004, 0.001, 0.01, 0.01, −0.05, 0.02); F = −K ê − D ẋ with K = (2000 ×3, 150 ×3), D = (89 ×3, 7 ×3).
    expected = torch.tensor([[8.0 - 8.9, -2.0, -20.0, -1.5, 7.5, -3.0 - 1.4]], dtype=F64)
    torch.testing.assert_close(_wrench(ctrl, error, velocity), expected)


@settings(max_examples=100, deadline=None)
@given(
    st.lists(st.floats(-0.2, 0.2), min_size=3, max_size=3),
    st.lists(st.floats(-1.0, 1.0), min_size=3, max_size=3),
    st.lists(st.floats(1e-3, 0.05), min_size=12, max_size=12),
)
def test_clipping_bounds_each_axis_asymmetrically(
    pos_error: list[float], rot_error: list[float], bounds: list[float]
) -> None:
    """Static wrench −K·clip(e, −neg, pos) for every axis: never beyond K × its own bound on its own side."""
    cfg = _cfg(
        translational_clip_pos=tuple(bounds[0:3]),
        translational_clip_neg=tuple(bounds[3:6]),
        rotational_clip_pos=tuple(bounds[6:9]),
        rotational_clip_neg=tuple(bounds[9:12]),
    )
    error = torch.tensor([pos_error + rot_error], dtype=F64)
    wrench = _wrench(_six_joint_controller(cfg), error)
    high = torch.tensor(bounds[0:3] + bounds[6:9], dtype=F64)
    low = -torch.tensor(bounds[3:6] + bounds[9:12], dtype=F64)
    stiffness = torch.tensor([2000.0] * 3 + [150.0] * 3, dtype=F64)
    torch.testing.assert_close(wrench[0], -stiffness * torch.clamp(error[0], low, high), atol=1e-9, rtol=1e-9)


def test_integral_accumulates_the_clipped_error_and_saturates() -> None:
    cfg = _cfg(translational_integral_gain=50.0, rotational_integral_gain=0.0, translational_integral_clip=0.1, dt=1.0)
    ctrl = _six_joint_controller(cfg, n=2)
    error = torch.tensor([[0.1, 0, 0, 0, 0, 0], [0, -0.002, 0, 0, 0, 0]], dtype=F64)
    _wrench(ctrl, error)
    # ∫ê = dt·ê after one call (dt = 1 s): 0.003 for the clipped x, −0.002 for the unclipped y.
    torch.testing.assert_close(ctrl.error_integral[:, :2], torch.tensor([[3e-3, 0], [0, -2e-3]], dtype=F64))
    for _ in range(60):
        wrench = _wrench(ctrl, error)
    torch.testing.assert_close(ctrl.error_integral[:, :2], torch.tensor([[0.1, 0], [0, -0.1]], dtype=F64))
    torch.testing.assert_close(wrench[:, :2], torch.tensor([[-6.0 - 5.0, 0], [0, 4.0 + 5.0]], dtype=F64))
    ctrl.reset(torch.tensor([True, False]))
    assert ctrl.error_integral[0].abs().sum() == 0 and ctrl.error_integral[1, 1] == -0.1


# --- null space -------------------------------------------------------------------------------------------------------


def _random_arm(seed: int, n: int = 3, joints: int = 7) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """A random Jacobian [n, 6, J] and mass matrix [n, J, J] of an arm away from singularities (singular values of J in
    [0.2, 2], eigenvalues of M in [0.1, 5]: what a 7-DoF arm has in its workspace), and a posture torque [n, J]."""
    g = torch.Generator().manual_seed(seed)
    rotation = lambda size: torch.linalg.qr(torch.randn(n, size, size, generator=g, dtype=F64)).Q  # noqa: E731
    uniform = lambda low, high, size: low + (high - low) * torch.rand(n, size, generator=g, dtype=F64)  # noqa: E731
    jac = rotation(6) @ torch.diag_embed(uniform(0.2, 2.0, 6)) @ rotation(joints)[:, :6]
    q = rotation(joints)
    mass = q @ torch.diag_embed(uniform(0.1, 5.0, joints)) @ q.transpose(1, 2)
    tau0 = 10 * torch.randn(n, joints, generator=g, dtype=F64)
    return jac, mass, tau0


@settings(max_examples=50, deadline=None)
@given(st.integers(0, 2**31 - 1))
def test_nullspace_torque_makes_no_task_wrench_or_acceleration(seed: int) -> None:
    """Dynamically consistent: J̄ᵀ τ_ns = 0 (no task-space acceleration, J M⁻¹ τ_ns = 0); pseudo-inverse form:
    (J⁺)ᵀ τ_ns = 0 (no task wrench, J τ_ns = 0). And both keep what already lies in their null space, so they do
    not just return zero."""
    jac, mass, tau0 = _random_arm(seed)
    dynamic = nullspace_torque(jac, tau0, mass, regularization=1e-12)
    accel = jac @ torch.linalg.solve(mass, dynamic.unsqueeze(-1))
    torch.testing.assert_close(accel, torch.zeros_like(accel), atol=1e-6, rtol=0)
    static = nullspace_torque(jac, tau0, None, regularization=1e-12)
    wrench = torch.linalg.pinv(jac.transpose(1, 2)) @ static.unsqueeze(-1)
    torch.testing.assert_close(wrench, torch.zeros_like(wrench), atol=1e-6, rtol=0)
    # A null-space direction n of J: M n passes the dynamic projection, n the static one, unchanged.
    n = torch.linalg.svd(jac, full_matrices=True).Vh[:, -1]  # [N, 7], J n = 0
    mn = (mass @ n.unsqueeze(-1)).squeeze(-1)
    torch.testing.assert_close(nullspace_torque(jac, mn, mass, 1e-12), mn)
    torch.testing.assert_close(nullspace_torque(jac, n, None, 1e-12), n)


def test_posture_term_changes_no_task_force_in_the_controller() -> None:
    """Through the whole law: turning the posture stiffness on changes the torque only by a null-space torque."""
    jac, mass, _ = _random_arm(7, n=2)
    g = torch.Generator().manual_seed(8)
    qpos, qvel, bias = (torch.randn(2, 7, generator=g, dtype=F64) for _ in range(3))
    pos, target = torch.zeros(2, 3, dtype=F64), torch.full((2, 3), 0.002, dtype=F64)
    rot, target_rot = _rot((0, 0, 1), 0.01).expand(2, 3, 3), EYE3.expand(2, 3, 3)
    torques = {}
    for projection in ("dynamic", "pseudo_inverse"):
        for stiffness in (0.0, 30.0):
            cfg = ImpedanceConfig(
                nullspace_stiffness=stiffness,
                nullspace_projection=projection,
                torque_limit=(1e6,) * 7,
                regularization=1e-12,
            )
            ctrl = CartesianImpedance(cfg, 2, torch.zeros(7), "cpu", F64)
            torques[projection, stiffness] = ctrl.torque(pos, rot, jac, qpos, qvel, bias, target, target_rot, mass)
    dynamic = torques["dynamic", 30.0] - torques["dynamic", 0.0]
    static = torques["pseudo_inverse", 30.0] - torques["pseudo_inverse", 0.0]
    assert dynamic.abs().max() > 1.0 and static.abs().max() > 1.0  # the posture term is there ...
    torch.testing.assert_close(jac @ torch.linalg.solve(mass, dynamic.unsqueeze(-1)), torch.zeros(2, 6, 1, dtype=F64))
    torch.testing.assert_close(
        torch.linalg.pinv(jac.transpose(1, 2)) @ static.unsqueeze(-1), torch.zeros(2, 6, 1, dtype=F64)
    )


# --- saturation -------------------------------------------------------------------------------------------------------


def test_torque_and_rate_saturation() -> None:
    limit = torch.tensor([87.0, 12.0])
    previous = torch.tensor([[0.0, 0.0], [80.0, -11.5]])
    tau = torch.tensor([[500.0, -3.0], [100.0, -20.0]])
    torch.testing.assert_close(limit_torque(tau, previous, limit, 0.0), torch.tensor([[87.0, -3.0], [87.0, -12.0]]))
    torch.testing.assert_close(limit_torque(tau, previous, limit, 1.0), torch.tensor([[1.0, -1.0], [81.0, -12.0]]))


def test_controller_saturates_and_rate_limits_after_its_first_call() -> None:
    cfg = ImpedanceConfig(
        torque_limit=(87.0,) * 3 + (12.0,) * 3,
        torque_rate_limit=2.0,
        nullspace_stiffness=0.0,
        nullspace_projection="pseudo_inverse",
    )
    ctrl = CartesianImpedance(cfg, 2, torch.zeros(6), "cpu", F64)
    jac = 100 * torch.eye(6, dtype=F64).expand(2, 6, 6)  # a long lever: the clipped wrench asks for > the limits
    zeros = torch.zeros(2, 6, dtype=F64)
    bias = torch.tensor([[5.0, 0, 0, 0, 0, 0], [0, 0, 0, 0, 0, 0]], dtype=F64)
    pos, target = torch.zeros(2, 3, dtype=F64), torch.tensor([[1.0, 0, 0], [0, 0, 0]], dtype=F64)
    rot = EYE3.expand(2, 3, 3)
    first = ctrl.torque(pos, rot, jac, zeros, zeros, bias, target, rot, None)
    # World 0: τ_x = 100 · 2000 · 0.003 + 5 = 605 → 87; the first call has nothing to be rate-limited against.
    torch.testing.assert_close(first[0], torch.tensor([87.0, 0, 0, 0, 0, 0], dtype=F64))
    second = ctrl.torque(pos, rot, jac, zeros, zeros, -bias, target, rot, None)
    torch.testing.assert_close(second[0], torch.tensor([87.0, 0, 0, 0, 0, 0], dtype=F64))  # 595 → 87, unchanged
    ctrl.reset(torch.tensor([False, True]))
    third = ctrl.torque(pos, rot, jac, zeros, zeros, zeros, pos, rot, None)
    # World 0 wants 0 but may move only 2 N·m a step; world 1, just reset, is not rate-limited.
    torch.testing.assert_close(third[:, 0], torch.tensor([85.0, 0.0], dtype=F64))
    assert (third.abs() <= torch.tensor(cfg.torque_limit, dtype=F64)).all()


# --- the policy's action interface ------------------------------------------------------------------------------------


def test_action_moves_the_target_by_bounded_steps_inside_the_box() -> None:
    pos = torch.tensor([[0.5, 0.0, 0.3], [0.5, 0.0, 0.3]], dtype=F64)
    rot = EYE3.expand(2, 3, 3)
    low, high = torch.tensor([0.3, -0.2, 0.29], dtype=F64), torch.tensor([0.7, 0.2, 0.5], dtype=F64)
    action = torch.tensor([[1.0, -0.5, -1.0, 0, 0, 1.0], [3.0, 0, 0, -7.0, 0, 0]], dtype=F64)
    target_pos, target_rot = target_from_action(action, pos, rot, low, high)
    # +2 cm in x, −1 cm in y, −2 cm in z clipped to the box's floor at 0.29; actions beyond ±1 count as ±1.
    torch.testing.assert_close(target_pos, torch.tensor([[0.52, -0.01, 0.29], [0.52, 0.0, 0.3]], dtype=F64))
    torch.testing.assert_close(so3_log(target_rot), torch.tensor([[0, 0, 0.1], [-0.1, 0, 0]], dtype=F64))
    # The rotation composes in the world frame, R_d = exp(0.1 a) R.
    tilted = _rot((0, 1, 0), 0.4).expand(2, 3, 3)
    _, target_rot = target_from_action(action, pos, tilted, low, high)
    expected = torch.cat((_rot((0, 0, 1), 0.1), _rot((1, 0, 0), -0.1))) @ tilted
    torch.testing.assert_close(target_rot, expected)


def test_action_rotation_box_around_a_nominal_orientation() -> None:
    nominal = _rot((1, 0, 0), math.pi)[0]  # tool pointing down
    rot = nominal @ _rot((0, 0, 1), 0.25)  # already 0.25 rad about the tool axis
    pos = torch.zeros(1, 3, dtype=F64)
    box = (torch.full((3,), -1.0, dtype=F64), torch.full((3,), 1.0, dtype=F64))
    action = torch.tensor([[0, 0, 0, 0, 0, -1.0]], dtype=F64)  # −0.1 rad about world z = +0.1 about the tool's z
    _, target = target_from_action(action, pos, rot, *box, nominal_rot=nominal, rot_bound=0.3)
    torch.testing.assert_close(so3_log(nominal.T @ target), torch.tensor([[0, 0, 0.3]], dtype=F64))


# --- configuration ----------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"translational_stiffness": -1.0}, "impedance.translational_stiffness must be >= 0"),
        ({"rotational_damping": float("nan")}, "impedance.rotational_damping must be >= 0"),
        ({"translational_clip_pos": (0.003, 0.0, 0.01)}, r"impedance.translational_clip_pos must be 3 bounds > 0"),
        ({"rotational_clip_neg": (0.02, 0.02)}, r"impedance.rotational_clip_neg must be 3 bounds > 0"),
        ({"torque_limit": (87.0, -1.0)}, "impedance.torque_limit must be one limit > 0 per joint"),
        ({"nullspace_projection": "jacobian"}, "impedance.nullspace_projection='jacobian'; allowed: 'dynamic', "),
        ({"nullspace_damping": -2.0}, "impedance.nullspace_damping must be >= 0 or None"),
        ({"dt": 0.0}, "impedance.dt must be > 0"),
        ({"translational_integral_clip": -0.1}, "impedance.translational_integral_clip must be > 0"),
    ],
)
def test_validation_names_the_bad_field(change: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        ImpedanceConfig(**change)


def test_defaults_are_serl_compliance_mode_and_misuse_is_refused() -> None:
    cfg = ImpedanceConfig()
    assert (cfg.translational_stiffness, cfg.translational_damping) == (2000.0, 89.0)
    assert (cfg.rotational_stiffness, cfg.rotational_damping) == (150.0, 7.0)
    assert cfg.translational_clip_pos == cfg.translational_clip_neg == (0.003, 0.003, 0.01)
    assert cfg.rotational_clip_pos == (0.02, 0.02, 0.02)
    assert cfg.nullspace_damping == pytest.approx(2 * math.sqrt(10.0))
    with pytest.raises(ValueError, match="posture has 6 joints but impedance.torque_limit has 7 limits"):
        CartesianImpedance(cfg, 1, torch.zeros(6), "cpu")
    ctrl = CartesianImpedance(cfg, 1, torch.zeros(7), "cpu")
    z = torch.zeros(1, 7)
    with pytest.raises(ValueError, match="nullspace_projection='dynamic' needs the mass matrix"):
        ctrl.torque(
            torch.zeros(1, 3), torch.eye(3)[None], torch.zeros(1, 6, 7), z, z, z, torch.zeros(1, 3), torch.eye(3)[None]
        )
