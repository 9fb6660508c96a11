"""DCMotor and ActionDelay: hand values, limit properties (hypothesis), and delays against a reference history."""

from __future__ import annotations

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import Tensor

from controllers import ActionDelay, DCMotor


def test_dc_motor_torque_speed_line_by_hand() -> None:
    motor = DCMotor(1, effort_limit=10.0, velocity_limit=20.0, saturation_effort=12.0)
    # q̇ = v_max/2: τ_max = min(12·(1 − 0.5), 10) = 6; τ_min = clip(12·(−1 − 0.5), −10, 0) = −10.
    qd = torch.tensor([[10.0]])
    assert motor.apply(torch.tensor([[100.0]]), qd).item() == pytest.approx(6.0)
    assert motor.apply(torch.tensor([[-100.0]]), qd).item() == pytest.approx(-10.0)
    assert motor.apply(torch.tensor([[3.0]]), qd).item() == pytest.approx(3.0)
    # Beyond v_max no torque along q̇; braking is still limited by the effort limit.
    assert motor.apply(torch.tensor([[5.0]]), torch.tensor([[30.0]])).item() == 0.0
    assert motor.apply(torch.tensor([[-50.0]]), torch.tensor([[30.0]])).item() == pytest.approx(-10.0)
    assert motor.apply(torch.tensor([[-5.0]]), torch.tensor([[-25.0]])).item() == 0.0


def test_dc_motor_defaults_strength_and_clip_only() -> None:
    motor = DCMotor(2, effort_limit=torch.tensor([10.0, 4.0]), velocity_limit=20.0)
    assert motor.saturation_effort.tolist() == [10.0, 4.0] and motor.strength.tolist() == [[1.0, 1.0]] * 2
    # saturation = effort: at q̇ = v_max/2, τ_max = sat/2.
    half = torch.full((2, 2), 10.0)
    torch.testing.assert_close(motor.apply(torch.full((2, 2), 100.0), half), torch.tensor([[5.0, 2.0]] * 2))
    motor.strength[1] = 1.5
    assert motor.apply(torch.tensor([[1.0, 1.0], [1.0, 1.0]]), torch.zeros(2, 2)).tolist() == [[1, 1], [1.5, 1.5]]
    clip = DCMotor(1, torch.tensor([10.0, 4.0]), 20.0, torque_speed=False)
    assert clip.apply(torch.tensor([[100.0, -100.0]]), torch.tensor([[50.0, 50.0]])).tolist() == [[10.0, -4.0]]


def test_dc_motor_scalar_limits_shapes_and_dtype() -> None:
    motor = DCMotor(3, 5.0, 2.0, num_joints=4, dtype=torch.float64)
    assert motor.strength.shape == (3, 4) and motor.effort_limit.shape == (4,)
    assert motor.apply(torch.zeros(3, 4, dtype=torch.float64), torch.zeros(3, 4, dtype=torch.float64)).dtype == (
        torch.float64
    )
    assert DCMotor(3, 5.0, 2.0).strength.shape == (3, 1)  # no joint count known: one column broadcasts


def _tensor(draw: st.DrawFn, shape: tuple[int, ...], lo: float, hi: float) -> Tensor:
    n = 1
    for s in shape:
        n *= s
    values = draw(st.lists(st.floats(lo, hi, width=32), min_size=n, max_size=n))
    return torch.tensor(values, dtype=torch.float32).reshape(shape)


@st.composite
def motor_cases(draw: st.DrawFn, saturation_at_least_effort: bool = False) -> tuple[DCMotor, Tensor, Tensor]:
    """A DCMotor with random per-joint limits and strengths in [0, 2], and a torque and velocity to apply."""
    n, j = draw(st.integers(1, 4)), draw(st.integers(1, 3))
    effort = _tensor(draw, (j,), 0.125, 100.0)
    velocity = _tensor(draw, (j,), 0.125, 50.0)
    low = 1.0 if saturation_at_least_effort else 0.25
    saturation = effort * _tensor(draw, (j,), low, 3.0)
    motor = DCMotor(n, effort, velocity, saturation)
    motor.strength.copy_(_tensor(draw, (n, j), 0.0, 2.0))
    return motor, _tensor(draw, (n, j), -1000.0, 1000.0), _tensor(draw, (n, j), -200.0, 200.0)


@settings(max_examples=200, deadline=None)
@given(case=motor_cases(), torque_speed=st.booleans())
def test_dc_motor_never_exceeds_effort_nor_accelerates_beyond_v_max(
    case: tuple[DCMotor, Tensor, Tensor], torque_speed: bool
) -> None:
    motor, torque, qd = case
    motor.torque_speed = torque_speed
    tau = motor.apply(torque, qd)
    assert (tau.abs() <= motor.effort_limit).all()
    if torque_speed:
        assert (tau[qd >= motor.velocity_limit] <= 0).all()
        assert (tau[qd <= -motor.velocity_limit] >= 0).all()
    # Within the limits the commanded (strength-scaled) torque passes unchanged, with its sign kept.
    assert (tau * motor.strength * torque >= 0).all()
    assert (tau.abs() <= (motor.strength * torque).abs()).all()


@settings(max_examples=200, deadline=None)
@given(case=motor_cases(saturation_at_least_effort=True))
def test_dc_motor_at_rest_with_unit_strength_is_a_plain_clip(case: tuple[DCMotor, Tensor, Tensor]) -> None:
    motor, torque, _ = case
    motor.strength.fill_(1.0)
    expected = torch.clamp(torque, -motor.effort_limit, motor.effort_limit)
    assert torch.equal(motor.apply(torque, torch.zeros_like(torque)), expected)


def test_action_delay_hand_sequence_with_mixed_delays() -> None:
    delay = ActionDelay(3, 1, max_delay=2, device="cpu")
    delay.set_delay(torch.tensor([0, 1, 2]), torch.ones(3, dtype=torch.bool))
    outputs = [delay(torch.full((3, 1), float(t + 1))).squeeze(1).tolist() for t in range(4)]
    # Env 0 sees the current action, env 1 the previous one, env 2 the one before; zeros before the first push.
    assert outputs == [[1.0, 0.0, 0.0], [2.0, 1.0, 0.0], [3.0, 2.0, 1.0], [4.0, 3.0, 2.0]]
    # Delays are clamped to max_delay, and only masked envs change.
    delay.set_delay(torch.tensor([5, 0, 0]), torch.tensor([True, False, False]))
    assert delay.delay.tolist() == [2, 1, 2]
    assert delay(torch.full((3, 1), 5.0)).squeeze(1).tolist() == [3.0, 4.0, 3.0]


def test_action_delay_reset_clears_only_masked_envs() -> None:
    delay = ActionDelay(2, 2, max_delay=3, device="cpu")
    delay.set_delay(torch.tensor([3, 3]), torch.ones(2, dtype=torch.bool))
    for t in range(4):
        delay(torch.full((2, 2), float(t + 1)))
    delay.reset(torch.tensor([True, False]))
    assert delay(torch.full((2, 2), 9.0)).tolist() == [[0.0, 0.0], [2.0, 2.0]]
    value = torch.tensor([[8.0, 8.0], [7.0, -7.0]])  # row i fills env i
    delay.reset(torch.tensor([False, True]), value)
    out = [delay(torch.full((2, 2), 10.0 + t)).tolist() for t in range(4)]
    assert [o[1] for o in out] == [[7.0, -7.0]] * 3 + [[10.0, 10.0]]
    assert [o[0] for o in out] == [[0.0, 0.0], [0.0, 0.0], [9.0, 9.0], [10.0, 10.0]]


def test_action_delay_zero_max_delay_returns_input() -> None:
    delay = ActionDelay(4, 3, max_delay=0, device="cpu", dtype=torch.float64)
    action = torch.randn(4, 3, dtype=torch.float64)
    assert delay(action) is action
    delay.set_delay(torch.full((4,), 3), torch.ones(4, dtype=torch.bool))
    delay.reset(torch.ones(4, dtype=torch.bool))
    assert delay.delay.tolist() == [0] * 4 and delay(action) is action


@settings(max_examples=200, deadline=None)
@given(data=st.data())
def test_action_delay_matches_a_reference_history(data: st.DataObject) -> None:
    n, a, max_delay = data.draw(st.integers(1, 4)), data.draw(st.integers(1, 3)), data.draw(st.integers(0, 4))
    delay = ActionDelay(n, a, max_delay, device="cpu")
    gen = torch.Generator().manual_seed(data.draw(st.integers(0, 2**31)))  # reproducible actions for shrinking
    # Reference: each env's history since its last reset, preceded by max_delay + 1 copies of the fill value.
    history: list[list[list[float]]] = [[[0.0] * a] * (max_delay + 1) for _ in range(n)]
    current = [0] * n
    for _ in range(data.draw(st.integers(1, 12))):
        op = data.draw(st.sampled_from(["step", "step", "delay", "reset"]))
        mask = data.draw(st.lists(st.booleans(), min_size=n, max_size=n))
        if op == "delay":
            new = data.draw(st.lists(st.integers(0, max_delay), min_size=n, max_size=n))
            delay.set_delay(torch.tensor(new), torch.tensor(mask))
            current = [d if m else c for d, m, c in zip(new, mask, current, strict=True)]
        elif op == "reset":
            fill = torch.randn(n, a, generator=gen)
            delay.reset(torch.tensor(mask), fill)
            for i in range(n):
                if mask[i]:
                    history[i] = [fill[i].tolist()] * (max_delay + 1)
        else:
            action = torch.randn(n, a, generator=gen)
            out = delay(action)
            for i in range(n):
                history[i].append(action[i].tolist())
                # The output is exactly a past input of that env (or the fill): the one from delay[i] calls ago.
                assert out[i].tolist() == history[i][-1 - current[i]]
