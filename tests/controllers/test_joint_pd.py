"""JointPD against hand values, the gain-randomisation mask, and a closed PD + DCMotor loop on point inertias."""

from __future__ import annotations

import torch
from torch import Tensor

from controllers import DCMotor, JointPD


def _pd(num_envs: int = 1, dtype: torch.dtype = torch.float32) -> JointPD:
    return JointPD(
        num_envs,
        default_pos=torch.tensor([0.1, -0.2]),
        stiffness=torch.tensor([20.0, 40.0]),
        damping=torch.tensor([0.5, 1.0]),
        action_scale=torch.tensor([0.5, 0.25]),
        device="cpu",
        dtype=dtype,
    )


def test_targets_and_torque_by_hand() -> None:
    pd = _pd()
    target = pd.targets(torch.tensor([[1.0, 2.0]]))
    torch.testing.assert_close(target, torch.tensor([[0.1 + 0.5, -0.2 + 0.5]]))  # q* = q0 + scale·a
    q, qd = torch.tensor([[0.5, 0.5]]), torch.tensor([[1.0, -2.0]])
    # τ = Kp(q* − q) − Kd·q̇ = [20·0.1 − 0.5·1, 40·(−0.2) + 1·2]
    torch.testing.assert_close(pd.torque(target, q, qd), torch.tensor([[1.5, -6.0]]))


def test_scalar_gains_broadcast_and_inputs_are_not_aliased() -> None:
    default = torch.zeros(3)
    pd = JointPD(4, default, 25.0, 0.7, 0.3, "cpu")
    assert pd.kp.shape == pd.kd.shape == (4, 3)
    assert torch.equal(pd.kp, torch.full((4, 3), 25.0)) and torch.equal(pd.action_scale, torch.full((3,), 0.3))
    pd.kp[0] = 1.0
    assert pd.kp[1].tolist() == [25.0] * 3  # per-env rows are independent, not views of one row
    pd.default_pos += 1.0
    assert default.tolist() == [0.0] * 3


def test_follows_dtype_and_device_of_construction() -> None:
    pd = _pd(2, torch.float64)
    action = torch.zeros(2, 2, dtype=torch.float64)
    assert pd.targets(action).dtype == torch.float64
    assert pd.torque(action, action, action).dtype == torch.float64 and pd.kp.dtype == torch.float64


def test_set_gains_touches_only_masked_envs_and_scales_from_nominal() -> None:
    pd = _pd(4)
    pd.kp[1] = 99.0  # a value written by someone else in an unmasked env must survive
    mask = torch.tensor([True, False, True, False])
    kp_scale = torch.tensor([[2.0], [3.0], [4.0], [5.0]])  # [N, 1] broadcasts over joints
    kd_scale = torch.tensor([[1.5, 0.5], [9.0, 9.0], [0.1, 2.0], [9.0, 9.0]])  # [N, J]
    pd.set_gains(kp_scale, kd_scale, mask)
    assert pd.kp.tolist() == [[40.0, 80.0], [99.0, 99.0], [80.0, 160.0], [20.0, 40.0]]
    torch.testing.assert_close(pd.kd, torch.tensor([[0.75, 0.5], [0.5, 1.0], [0.05, 2.0], [0.5, 1.0]]))
    # Scales apply to the nominal gains, never to the already-scaled ones.
    pd.set_gains(torch.ones(4, 1), torch.ones(4, 1), mask)
    assert pd.kp.tolist() == [[20.0, 40.0], [99.0, 99.0], [20.0, 40.0], [20.0, 40.0]]
    assert pd.kp_nominal.tolist() == [20.0, 40.0]


def _simulate(q0: Tensor, target: Tensor, inertia: Tensor, load: Tensor, motor: DCMotor) -> tuple[Tensor, Tensor]:
    """Hold `target` for 2 s on 1-DoF point inertias; returns (final q, fraction of steps the motor clipped)."""
    pd = JointPD(q0.shape[0], torch.zeros(1), 20.0, 0.5, 1.0, "cpu")
    dt, q, qd = 0.005, q0.clone(), torch.zeros_like(q0)
    clipped = torch.zeros(())
    for _ in range(400):
        command = pd.torque(target, q, qd)
        tau = motor.apply(command, qd)
        clipped += (tau != command).float().mean()
        # Semi-implicit Euler: I·q̈ = τ + load, velocity first, then position with the new velocity.
        qd = qd + dt * (tau + load) / inertia
        q = q + dt * qd
    return q, clipped / 400


def test_held_target_converges_through_the_motor_limits() -> None:
    torch.manual_seed(0)
    n = 64
    inertia = torch.linspace(0.01, 0.1, n).unsqueeze(1)
    target = torch.rand(n, 1) * 2 - 1
    # Decay rate Kd/(2I) = 2.5 /s at I = 0.1, so after 2 s the oscillation envelope is e^-5 ≈ 6.7e-3 of the
    # initial error: starting errors up to 0.15 rad leave < 1e-3. Kp·0.15 = 3 N·m exceeds the 2 N·m limit.
    q0 = target + (torch.rand(n, 1) * 2 - 1) * 0.15
    motor = DCMotor(n, effort_limit=2.0, velocity_limit=5.0)
    q, clipped = _simulate(q0, target, inertia, torch.zeros(n, 1), motor)
    assert (q - target).abs().max() < 1e-3
    assert clipped > 0  # the loop really ran through the motor's limits


def test_constant_load_gives_steady_state_error_load_over_kp() -> None:
    torch.manual_seed(1)
    n, effort = 64, 2.0
    inertia = torch.linspace(0.01, 0.1, n).unsqueeze(1)
    target = torch.rand(n, 1) * 2 - 1
    sign = torch.where(torch.rand(n, 1) < 0.5, -1.0, 1.0)
    load = sign * effort * (0.2 + 0.6 * torch.rand(n, 1))  # |load| in [0.2, 0.8]·effort
    q, _ = _simulate(target, target, inertia, load, DCMotor(n, effort, 5.0))
    # Equilibrium Kp(q* − q) + load = 0, so q − q* = load/Kp.
    expected = load / 20.0
    assert ((q - target - expected).abs() <= 0.05 * expected.abs()).all()
