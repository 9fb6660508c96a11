"""The 7-DoF arm (tasks/manipulation/arm.xml) in real MuJoCo physics: the model against Franka's public numbers, the
simulator facade's Cartesian quantities against MuJoCo's own (mj_jacSite, qfrc_bias, mj_fullM, site poses), and the
Cartesian impedance controller closing the loop at physics rate: contact force K·clip against a wall, free-space step
response, gravity compensation."""

# pyright: reportAttributeAccessIssue=false
# (mujoco's compiled modules are re-exported with `import *`, which pyright cannot follow)

from __future__ import annotations

import math

import mujoco
import numpy as np
import pytest
import torch

from controllers.impedance import CartesianImpedance, ImpedanceConfig
from tasks.manipulation.arm import ARM_XML, HOME_QPOS, TORQUE_LIMITS, arm_spec, load_arm
from tasks.mujoco.sim import CARTESIAN_FIELDS, SimConfig, Simulator
from tasks.mujoco.warp_backend import warp_available

ALL = lambda n: torch.ones(n, dtype=torch.bool)  # noqa: E731
HOME = torch.tensor(HOME_QPOS, dtype=torch.float64)


def _simulator(model: mujoco.MjModel, n: int, fields: tuple[str, ...] = (), backend: str = "cpu") -> Simulator:
    return Simulator(model, n, "cpu", 1, (*CARTESIAN_FIELDS, *fields), (), SimConfig(backend=backend, nthread=1))


def _random_state(model: mujoco.MjModel, n: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    rng = np.random.default_rng(seed)
    low, high = model.jnt_range[:, 0], model.jnt_range[:, 1]
    return torch.as_tensor(rng.uniform(low, high, (n, model.nq))), torch.as_tensor(rng.normal(size=(n, model.nv)))


def _mujoco_reference(model: mujoco.MjModel, qpos: np.ndarray, qvel: np.ndarray, site: str) -> dict[str, np.ndarray]:
    """MuJoCo C's own values at one state: mj_forward, then mj_jacSite and mj_fullM."""
    d = mujoco.MjData(model)
    d.qpos[:], d.qvel[:] = qpos, qvel
    mujoco.mj_forward(model, d)
    jacp, jacr = np.zeros((3, model.nv)), np.zeros((3, model.nv))
    mujoco.mj_jacSite(model, d, jacp, jacr, model.site(site).id)
    full = np.zeros((model.nv, model.nv))
    mujoco.mj_fullM(model, d, full)
    return {
        "jac": np.vstack((jacp, jacr)),
        "bias": d.qfrc_bias.copy(),
        "pos": d.site(site).xpos.copy(),
        "rot": d.site(site).xmat.reshape(3, 3).copy(),
        "mass": full,
    }


def _assert_facade_matches(sim: Simulator, qpos: torch.Tensor, qvel: torch.Tensor, atol: float) -> None:
    jac, mass, bias = sim.site_jacobian("ee"), sim.mass_matrix(), sim.qfrc_bias
    pos, rot = sim.site_pose("ee")
    assert jac.shape == (sim.num_worlds, 6, sim.model.nv) and mass.shape == (sim.num_worlds, sim.model.nv, sim.model.nv)
    for i in range(sim.num_worlds):
        ref = _mujoco_reference(sim.model, qpos[i].numpy(), qvel[i].numpy(), "ee")
        ours = {"jac": jac[i], "bias": bias[i], "pos": pos[i], "rot": rot[i], "mass": mass[i]}
        for name, value in ours.items():
            np.testing.assert_allclose(value.double().numpy(), ref[name], atol=atol, err_msg=f"world {i}: {name}")


# --- the model --------------------------------------------------------------------------------------------------------


def test_model_has_franka_dimensions_limits_and_masses() -> None:
    model = mujoco.MjModel.from_xml_path(str(ARM_XML))
    assert (model.nq, model.nv, model.nu) == (7, 7, 7)
    assert model.opt.timestep == 0.002 and model.opt.cone == mujoco.mjtCone.mjCONE_PYRAMIDAL
    ranges = [(-2.8973, 2.8973), (-1.7628, 1.7628), (-2.8973, 2.8973), (-3.0718, -0.0698)]
    ranges += [(-2.8973, 2.8973), (-0.0175, 3.7525), (-2.8973, 2.8973)]
    np.testing.assert_allclose(model.jnt_range, ranges)
    np.testing.assert_allclose(model.actuator_ctrlrange, [(-t, t) for t in TORQUE_LIMITS])
    assert model.actuator_ctrllimited.all()
    masses = [model.body(f"link{i}").mass[0] for i in range(1, 8)]
    np.testing.assert_allclose(masses, [4.97, 0.65, 3.23, 3.59, 1.23, 1.67, 0.74])
    # Franka's documented flange position in the "ready" posture: 0.307 m forward, 0.590 m up, pointing down. Checks
    # the Denavit-Hartenberg offsets end to end.
    d = mujoco.MjData(model)
    d.qpos[:] = HOME_QPOS
    mujoco.mj_forward(model, d)
    np.testing.assert_allclose(d.site("flange").xpos, [0.3069, 0.0, 0.5903], atol=5e-4)
    np.testing.assert_allclose(d.site("flange").xmat.reshape(3, 3)[:, 2], [0, 0, -1], atol=1e-6)
    np.testing.assert_allclose(d.site("ee").xpos, d.site("flange").xpos - [0, 0, 0.06], atol=1e-9)  # 6 cm peg
    # Collision only on the peg and the environment: no arm link can touch anything.
    colliding = {model.geom(i).name for i in range(model.ngeom) if model.geom_contype[i] or model.geom_conaffinity[i]}
    assert colliding == {"floor", "table", "peg"}


def test_zero_torque_falls_stably_and_gravity_compensation_holds() -> None:
    model = load_arm()
    d = mujoco.MjData(model)
    for compensate in (False, True):
        mujoco.mj_resetDataKeyframe(model, d, 0)
        mujoco.mj_forward(model, d)
        for _ in range(1000):  # 2 s
            d.ctrl[:] = d.qfrc_bias if compensate else 0.0
            mujoco.mj_step(model, d)
        assert np.isfinite(d.qpos).all() and np.isfinite(d.qvel).all()
        assert (d.qpos >= model.jnt_range[:, 0] - 0.02).all() and (d.qpos <= model.jnt_range[:, 1] + 0.02).all()
        drift = np.abs(d.qpos - model.key_qpos[0]).max()
        assert drift < 1e-9 if compensate else drift > 0.3, (compensate, drift)


def test_gripper_variant_opens_both_fingers_with_one_actuator() -> None:
    model = load_arm("gripper")
    assert (model.nq, model.nu) == (9, 8) and model.site("ee").bodyid == model.body("gripper/hand").id
    d = mujoco.MjData(model)
    mujoco.mj_resetDataKeyframe(model, d, 0)
    d.ctrl[model.actuator("gripper/fingers").id] = 0.03
    for _ in range(500):
        d.ctrl[:7] = d.qfrc_bias[:7]
        mujoco.mj_step(model, d)
    left, right = d.joint("gripper/finger_left").qpos[0], d.joint("gripper/finger_right").qpos[0]
    assert left == pytest.approx(0.03, abs=1e-3) and right == pytest.approx(left, abs=1e-4)
    with pytest.raises(ValueError, match="end_effector='hand'; allowed: 'peg', 'gripper'"):
        arm_spec("hand")


# --- the facade's Cartesian quantities --------------------------------------------------------------------------------


@pytest.mark.parametrize("path", ["batch", "threads"])
@pytest.mark.parametrize("end_effector", ["peg", "gripper"])
def test_facade_jacobian_bias_pose_and_mass_equal_mujoco(path: str, end_effector: str) -> None:
    """Random states in 4 worlds, on both cpu paths (mujoco.batch; the thread pool serving cfrc_ext): the facade's
    site Jacobian, bias forces, site pose and mass matrix equal mj_jacSite, qfrc_bias, site_xpos/xmat and mj_fullM."""
    model = load_arm(end_effector)
    sim = _simulator(model, 4, ("cfrc_ext",) if path == "threads" else ())
    qpos, qvel = _random_state(model, 4, seed=1)
    sim.reset(ALL(4), qpos, qvel)
    _assert_facade_matches(sim, qpos, qvel, atol=1e-12)
    if end_effector == "gripper":  # the fingers do not move the site between them
        assert (sim.site_jacobian("ee")[:, :, 7:] == 0).all()


def test_facade_fields_after_a_step_describe_the_state_before_it() -> None:
    """MuJoCo's step computes the derived fields, then integrates: after sim.step the Cartesian quantities are those of
    the state the step started from, as documented."""
    model = load_arm()
    sim = _simulator(model, 3)
    qpos, qvel = _random_state(model, 3, seed=2)
    sim.reset(ALL(3), qpos, qvel)
    sim.ctrl.copy_(torch.linspace(-5, 5, 7))
    sim.step()
    assert not torch.equal(sim.qpos, qpos)
    _assert_facade_matches(sim, qpos, qvel, atol=1e-12)


def test_facade_names_missing_fields_and_sites() -> None:
    sim = Simulator(load_arm(), 1, "cpu", 1, (), (), SimConfig(backend="cpu", nthread=1))
    with pytest.raises(KeyError, match=r"site_jacobian needs the fields \['site_xpos', 'cdof', 'subtree_com'\]"):
        sim.site_jacobian("ee")
    with pytest.raises(KeyError, match=r"mass_matrix needs the fields \['M'\]"):
        sim.mass_matrix()
    with pytest.raises(KeyError, match="no site named 'tcp' in the model; sites: \\['flange', 'ee'\\]"):
        _simulator(load_arm(), 1).site_pose("tcp")


@pytest.mark.skipif(not warp_available(), reason="mujoco-warp is not installed")
def test_warp_facade_jacobian_bias_pose_and_mass_equal_mujoco() -> None:
    """The same quantities from MuJoCo Warp (float32; 2 worlds, after a reset's forward pass)."""
    model = load_arm()
    sim = _simulator(model, 2, backend="warp")
    assert sim.data["site_xmat"].shape == (2, model.nsite, 9)  # MjData's layout, as on the cpu backend
    qpos, qvel = _random_state(model, 2, seed=3)
    sim.reset(ALL(2), qpos, qvel)
    _assert_facade_matches(sim, qpos, qvel, atol=5e-5)


# --- the impedance controller in closed loop --------------------------------------------------------------------------


def _run(
    sim: Simulator, ctrl: CartesianImpedance, target_pos: torch.Tensor, target_rot: torch.Tensor, steps: int
) -> torch.Tensor:
    """Run the controller at physics rate; returns the site positions after each step, [steps, N, 3]."""
    trajectory = []
    for _ in range(steps):
        pos, rot = sim.site_pose("ee")
        jac = sim.site_jacobian("ee")
        tau = ctrl.torque(pos, rot, jac, sim.qpos, sim.qvel, sim.qfrc_bias, target_pos, target_rot, sim.mass_matrix())
        sim.ctrl.copy_(tau)
        assert not sim.step().any()
        trajectory.append(sim.site_pose("ee")[0].clone())
    return torch.stack(trajectory)


def _at_home(model: mujoco.MjModel, n: int, fields: tuple[str, ...] = ()) -> Simulator:
    sim = _simulator(model, n, fields)
    sim.reset(ALL(n), HOME.expand(n, 7), torch.zeros(n, 7))
    return sim


@pytest.mark.parametrize("projection", ["dynamic", "pseudo_inverse"])
def test_steady_contact_force_is_stiffness_times_clip(projection: str) -> None:
    """The target 10 cm inside a rigid obstacle: world 0 pushes the peg's side into a wall in front (+x), world 1 its
    tip down onto a block. At rest the contact force (a touch sensor around the peg, read through the facade) equals
    K_t · clip of the axis: x uses the negative bound (e_x = x − x_d < 0), z the positive one (e_z > 0)."""
    spec = arm_spec()
    box = mujoco.mjtGeom.mjGEOM_BOX
    # The peg (radius 1 cm) hangs at x = 0.307 with its tip at z = 0.530: both obstacles 1 cm away from it.
    spec.worldbody.add_geom(name="wall", type=box, size=[0.05, 0.1, 0.08], pos=[0.307 + 0.02 + 0.05, 0, 0.62])
    spec.worldbody.add_geom(name="block", type=box, size=[0.015, 0.05, 0.05], pos=[0.307, 0, 0.530 - 0.01 - 0.05])
    cylinder = mujoco.mjtGeom.mjGEOM_CYLINDER
    spec.body("peg").add_site(name="touch", type=cylinder, size=[0.013, 0.033, 0], pos=[0, 0, 0.03])
    spec.add_sensor(name="touch", type=mujoco.mjtSensor.mjSENS_TOUCH, objtype=mujoco.mjtObj.mjOBJ_SITE, objname="touch")
    sim = _at_home(spec.compile(), 2, ("sensordata",))
    cfg = ImpedanceConfig(translational_clip_neg=(0.004, 0.003, 0.01), nullspace_projection=projection)
    ctrl = CartesianImpedance(cfg, 2, HOME, "cpu", torch.float64)
    pos0, rot0 = (t.clone() for t in sim.site_pose("ee"))
    target = pos0 + torch.tensor([[0.01 + 0.1, 0, 0], [0, 0, -0.01 - 0.1]], dtype=torch.float64)
    _run(sim, ctrl, target, rot0, 1000)  # 2 s to settle
    touch = []
    for _ in range(100):  # then average 0.2 s
        _run(sim, ctrl, target, rot0, 1)
        touch.append(sim.sensor("touch")[:, 0].clone())
    force = torch.stack(touch).mean(0)
    expected = torch.tensor([2000 * 0.004, 2000 * 0.01], dtype=torch.float64)  # 8 N, 20 N
    torch.testing.assert_close(force, expected, rtol=0.10, atol=0.0)
    velocity = (sim.site_jacobian("ee")[:, :3] @ sim.qvel.unsqueeze(-1)).squeeze(-1).norm(dim=-1)
    assert (velocity < 2e-3).all()  # at rest: a steady force, not a bounce


def test_free_space_step_response_converges_without_large_overshoot() -> None:
    """5 cm steps of the target along +x, +y, +z and −z (4 worlds) under SERL's compliance gains: the clipped error
    turns a far target into an approach at about K·clip/D, so the site arrives within 2 mm in under 1.5 s and
    overshoots by less than 10 % of the step (measured 1-5 %)."""
    sim = _at_home(load_arm(), 4)
    ctrl = CartesianImpedance(ImpedanceConfig(), 4, HOME, "cpu", torch.float64)
    pos0, rot0 = (t.clone() for t in sim.site_pose("ee"))
    step = 0.05 * torch.tensor([[1, 0, 0], [0, 1, 0], [0, 0, 1], [0, 0, -1]], dtype=torch.float64)
    trajectory = _run(sim, ctrl, pos0 + step, rot0, 1000)  # 2 s
    error = (trajectory - (pos0 + step)).norm(dim=-1)  # [T, N]
    settle_step = 750  # 1.5 s
    assert (error[settle_step:] < 2e-3).all(), error[settle_step:].max(0).values
    assert (error[-1] < 1e-3).all()
    progress = ((trajectory - pos0) * step).sum(-1) / 0.05**2  # fraction of the step travelled, [T, N]
    overshoot = progress.max(0).values - 1
    assert (overshoot < 0.10).all(), overshoot
    # The orientation is held while the position moves: within the rotational clip's reach.
    rot = sim.site_pose("ee")[1]
    angle = torch.arccos(((rot.transpose(1, 2) @ rot0).diagonal(dim1=1, dim2=2).sum(-1) - 1) / 2)
    assert (angle < 0.01).all()


def test_gravity_compensation_holds_random_postures_and_zero_torque_does_not() -> None:
    """τ = qfrc_bias (the controller's bias term alone) holds 4 random postures still for 1 s; without it they fall.
    The full controller with its target at the current pose holds them too."""
    model = load_arm()
    qpos, _ = _random_state(model, 4, seed=4)
    qpos[:, 3] = qpos[:, 3].clamp(-2.8, -0.3)  # away from the elbow's limits, where a limit would hold the arm
    still = torch.zeros(4, 7, dtype=torch.float64)
    for mode in ("bias", "none", "controller"):
        sim = _simulator(model, 4)
        sim.reset(ALL(4), qpos, still)
        pos0, rot0 = (t.clone() for t in sim.site_pose("ee"))
        ctrl = CartesianImpedance(ImpedanceConfig(), 4, qpos, "cpu", torch.float64)
        if mode == "controller":
            trajectory = _run(sim, ctrl, pos0, rot0, 500)
            assert (trajectory - pos0).norm(dim=-1).max() < 1e-3
            continue
        for _ in range(500):
            sim.ctrl.copy_(sim.qfrc_bias if mode == "bias" else torch.zeros_like(sim.ctrl))
            sim.step()
        drift = (sim.qpos - qpos).abs().max(dim=1).values
        if mode == "bias":
            assert (drift < 1e-6).all(), drift
        else:
            assert (drift > 0.05).all(), drift


def test_controller_settles_in_float32() -> None:
    """The same loop in float32 (the warp backend's dtype, here from cpu tensors cast down) still settles: the law
    and its rotation maths are accurate enough in single precision."""
    sim = _at_home(load_arm(), 2)
    ctrl = CartesianImpedance(ImpedanceConfig(), 2, HOME, "cpu", torch.float32)
    pos0, rot0 = (t.clone().float() for t in sim.site_pose("ee"))
    target = pos0 + torch.tensor([[0.03, 0, 0], [0, -0.03, 0.02]])
    for _ in range(750):
        pos, rot = (t.float() for t in sim.site_pose("ee"))
        tau = ctrl.torque(
            pos,
            rot,
            sim.site_jacobian("ee").float(),
            sim.qpos.float(),
            sim.qvel.float(),
            sim.qfrc_bias.float(),
            target,
            rot0,
            sim.mass_matrix().float(),
        )
        sim.ctrl.copy_(tau)
        sim.step()
    assert (sim.site_pose("ee")[0].float() - target).norm(dim=-1).max() < 2e-3
    assert math.isfinite(float(ctrl.last_torque.abs().max()))
