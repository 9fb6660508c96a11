"""The legged velocity-tracking task: robot model, every reward/termination term, randomisation, terrain, curriculum,
observations, controller limits inside the task, Menagerie loading, and cpu/warp parity."""

from __future__ import annotations

import dataclasses
import math
import os
import shutil
from pathlib import Path

import mujoco
import numpy as np
import pytest
import torch

from tasks.legged import events as ev
from tasks.legged import no_randomization
from tasks.legged import terms as t
from tasks.legged.config import CommandCfg, VelocityCfg
from tasks.legged.robot import RobotCfg, build_model, menagerie_go1, penalized_sensors
from tasks.legged.terrain import HeightMap, TerrainCfg, column_types, generate, update_levels
from tasks.legged.velocity import VelocityTask
from tasks.mujoco.sim import SimConfig
from tasks.mujoco.warp_backend import warp_available

# pyright: reportAttributeAccessIssue=false, reportArgumentType=false


def make(n: int = 4, randomize: bool = False, **kw: object) -> VelocityTask:
    cfg = VelocityCfg(num_envs=n, sim=SimConfig(backend="cpu", nthread=1), **kw)  # type: ignore[arg-type]
    return VelocityTask(cfg if randomize else no_randomization(cfg), seed=0)


# --- robot model -----------------------------------------------------------------------------------------------------


def test_go1_model_matches_published_parameters_and_stands() -> None:
    m = build_model(RobotCfg())
    assert (m.nq, m.nv, m.nu) == (19, 18, 12)
    assert math.isclose(m.body_mass.sum(), 12.74, abs_tol=0.05)  # Go1: ~12.7 kg
    assert np.allclose(m.actuator_ctrlrange[:3, 1], [23.7, 23.7, 35.55])
    # Only feet, legs and trunk collide, and only with the ground.
    robot_geoms = [i for i in range(m.ngeom) if m.geom_bodyid[i] > 0 and m.geom_conaffinity[i]]
    assert all(m.geom_contype[i] == 0 for i in robot_geoms)
    env = make(n=2)
    for _ in range(50):  # 1 s of standing with zero actions (PD on the standing pose)
        env.step(torch.zeros(2, 12))
    assert (env.foot_force > 1.0).all(), "all four feet carry load"
    assert (env.base_pos[:, 2] > 0.22).all() and (env.base_pos[:, 2] < 0.32).all()
    assert not env.terminated().any()
    assert (env.penalized_force == 0).all(), "standing: no thigh or shank touches the ground"
    # The feet carry the weight: Σ normal force ≈ m g.
    assert torch.allclose(env.foot_force.sum(-1), torch.full((2,), 12.74 * 9.81, dtype=env.dtype), rtol=0.1)


def test_missing_robot_parts_give_clear_errors(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="MJCF file not found"):
        build_model(RobotCfg(mjcf=str(tmp_path / "nope.xml")))
    with pytest.raises(KeyError, match="joint 'hip_x'"):
        build_model(RobotCfg(joint_names=("hip_x",)))
    with pytest.raises(KeyError, match="geom 'paw'"):
        build_model(RobotCfg(foot_geoms=("paw",)))
    with pytest.raises(FileNotFoundError, match="MENAGERIE_ROOT"):
        RobotCfg(menagerie="unitree_go1/absent.xml").resolve_mjcf()


def test_the_packaged_robot_file_is_named_portably(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The default robot names its MJCF relative to the package, so a config stored in a checkpoint (export, play,
    deploy-sim rebuild the task from it) finds the file on another machine or install; a file in the working directory
    with a relative name still wins."""
    cfg = RobotCfg()
    assert not os.path.isabs(cfg.mjcf)
    monkeypatch.chdir(tmp_path)
    assert Path(cfg.resolve_mjcf()).is_file() and Path(cfg.resolve_mjcf()).name == "go1.xml"
    (tmp_path / "mine.xml").write_text(Path(cfg.resolve_mjcf()).read_text())
    assert Path(RobotCfg(mjcf="mine.xml").resolve_mjcf()).resolve() == (tmp_path / "mine.xml").resolve()


def test_a_menagerie_robot_loads_by_name_through_the_same_path(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    root = tmp_path / "menagerie" / "unitree_go1"
    root.mkdir(parents=True)
    shutil.copy(RobotCfg().resolve_mjcf(), root / "go1.xml")
    monkeypatch.setenv("MENAGERIE_ROOT", str(tmp_path / "menagerie"))
    robot = dataclasses.replace(RobotCfg(), name="go1-menagerie", menagerie="unitree_go1/go1.xml")
    env = make(n=2, robot=robot)
    obs, *_ = env.step(torch.zeros(2, 12))
    assert obs["policy"].shape == (2, 48)


def _stl(path: Path, size: float) -> None:
    """A tetrahedron as a binary STL (a placeholder for a Menagerie visual mesh)."""
    v = np.array([[0, 0, 0], [size, 0, 0], [0, size, 0], [0, 0, size]], dtype=np.float32)
    faces = [(0, 2, 1), (0, 1, 3), (0, 3, 2), (1, 2, 3)]
    with open(path, "wb") as f:
        f.write(b"\0" * 80 + np.uint32(len(faces)).tobytes())
        for face in faces:
            f.write(np.zeros(3, np.float32).tobytes() + v[list(face)].tobytes() + b"\0\0")


def write_menagerie_go1(root: Path) -> None:
    """A local stand-in of MuJoCo Menagerie's ``unitree_go1/go1.xml`` with the features that matter to us: bodies,
    joints and inertias as ours; default classes; *unnamed* collision geoms (capsules, cylinders, boxes) with
    self-collisions on (no contype/conaffinity set); feet as sphere geoms named ``FR``/``FL``/``RR``/``RL`` (condim 6,
    priority 1) and sites of the same names inside the calf bodies; visual meshes from ``assets/``; position actuators
    and a ``home`` keyframe; elliptic cone, impratio 100 and MuJoCo's default 0.002 s time step. Meshes are
    placeholders (the real ones are not available offline)."""
    (root / "assets").mkdir(parents=True)
    for name in ("trunk", "hip", "thigh", "thigh_mirror", "calf"):
        _stl(root / "assets" / f"{name}.stl", 0.05)
    legs = {"FR": (1, -1), "FL": (1, 1), "RR": (-1, -1), "RL": (-1, 1)}
    bodies = []
    for leg, (fx, sy) in legs.items():
        side = "right" if sy < 0 else "left"
        hip_geoms = [f'<geom class="hip_{side}1"/>', f'<geom class="hip_{side}2"/>']
        if fx < 0:
            hip_geoms.append(f'<geom class="hip_{side}3"/>')
        thigh_mesh = "thigh_mirror" if sy < 0 else "thigh"
        bodies.append(f"""
      <body name="{leg}_hip" pos="{0.1881 * fx} {0.04675 * sy} 0">
        <inertial pos="{-0.0049166 * fx} {-0.00762615 * sy} -8.865e-05" mass="0.68"
          diaginertia="0.000734064 0.000468438 0.000398719"/>
        <joint class="abduction" name="{leg}_hip_joint"/>
        <geom class="visual" mesh="hip"/>
        {" ".join(hip_geoms)}
        <body name="{leg}_thigh" pos="0 {0.08 * sy} 0">
          <inertial pos="-0.00304722 {-0.019315 * sy} -0.0305004" mass="1.009"
            diaginertia="0.00478717 0.00460903 0.000709268"/>
          <joint class="hip" name="{leg}_thigh_joint"/>
          <geom class="visual" mesh="{thigh_mesh}"/>
          <geom class="thigh1"/><geom class="thigh2"/><geom class="thigh3"/>
          <body name="{leg}_calf" pos="0 0 -0.213">
            <inertial pos="0.00429862 0.000976676 -0.146197" mass="0.195862"
              diaginertia="0.00149767 0.00148468 3.58427e-05"/>
            <joint class="knee" name="{leg}_calf_joint"/>
            <geom class="visual" mesh="calf"/>
            <geom class="calf1"/><geom class="calf2"/>
            <geom name="{leg}" class="foot"/>
            <site name="{leg}" pos="0 0 -0.213" type="sphere" size="0.023" group="5"/>
          </body>
        </body>
      </body>""")
    hips = "".join(
        f"""
        <default class="hip_{side}{k}"><geom size="{r} 0.02" pos="0 {y} 0" quat="1 1 0 0" type="cylinder"/></default>"""
        for side, sign in (("left", 1), ("right", -1))
        for k, (r, y) in enumerate(((0.046, 0.045 * sign), (0.031, 0.065 * sign), (0.046, 0.0)), start=1)
    )
    actuators = "".join(
        f'<position class="{cls}" name="{leg}_{part}" joint="{leg}_{part}_joint"/>'
        for leg in legs
        for part, cls in (("hip", "abduction"), ("thigh", "hip"), ("calf", "knee"))
    )
    xml = f"""<mujoco model="go1">
  <compiler angle="radian" meshdir="assets" autolimits="true"/>
  <option cone="elliptic" impratio="100"/>
  <default>
    <default class="go1">
      <geom friction="0.6" margin="0.001" condim="1"/>
      <joint axis="0 1 0" damping="2" armature="0.01" frictionloss="0.2"/>
      <position kp="100" forcerange="-23.7 23.7"/>
      <default class="abduction">
        <joint axis="1 0 0" damping="1" range="-0.863 0.863"/><position ctrlrange="-0.863 0.863"/>
      </default>
      <default class="hip"><joint range="-0.686 4.501"/><position ctrlrange="-0.686 4.501"/></default>
      <default class="knee">
        <joint range="-2.818 -0.888"/><position forcerange="-35.55 35.55" ctrlrange="-2.818 -0.888"/>
      </default>
      <default class="visual"><geom type="mesh" contype="0" conaffinity="0" group="2" material="dark"/></default>
      <default class="collision">
        <geom group="3" type="capsule"/>{hips}
        <default class="thigh1"><geom size="0.015" fromto="-0.02 0 0 -0.02 0 -0.16"/></default>
        <default class="thigh2"><geom size="0.015" fromto="0 0 0 -0.02 0 -0.1"/></default>
        <default class="thigh3"><geom size="0.015" fromto="-0.02 0 -0.16 0 0 -0.2"/></default>
        <default class="calf1"><geom size="0.01" fromto="0 0 0 0.02 0 -0.13"/></default>
        <default class="calf2"><geom size="0.01" fromto="0.02 0 -0.13 0 0 -0.2"/></default>
        <default class="foot">
          <geom type="sphere" size="0.023" pos="0 0 -0.213" priority="1" solimp="0.015 1 0.031" condim="6"
            friction="0.8 0.02 0.01"/>
        </default>
      </default>
    </default>
  </default>
  <asset>
    <material name="dark" rgba="0.1 0.1 0.1 1"/>
    <mesh class="go1" file="trunk.stl"/><mesh class="go1" file="hip.stl"/><mesh class="go1" file="thigh_mirror.stl"/>
    <mesh class="go1" file="calf.stl"/><mesh class="go1" file="thigh.stl"/>
  </asset>
  <worldbody>
    <body name="trunk" pos="0 0 0.445" childclass="go1">
      <camera name="tracking" mode="trackcom" pos="0 -1 0.8" xyaxes="1 0 0 0 1 1"/>
      <light pos="0 0 5" mode="trackcom" diffuse="0.8 0.8 0.8"/>
      <inertial pos="0.0223 0.002 -0.0005" mass="5.204" diaginertia="0.0716565 0.0630105 0.0168101"/>
      <freejoint/>
      <geom class="visual" mesh="trunk"/>
      <geom class="collision" size="0.125 0.04 0.057" type="box"/>
      <geom class="collision" quat="1 0 1 0" pos="0 -0.04 0" size="0.058 0.125" type="cylinder"/>
      <geom class="collision" quat="1 0 1 0" pos="0 0.04 0" size="0.058 0.125" type="cylinder"/>
      <geom class="collision" pos="0.25 0 0" size="0.005 0.06 0.05" type="box"/>
      <site name="imu" pos="0 0 0"/>{"".join(bodies)}
    </body>
  </worldbody>
  <actuator>{actuators}</actuator>
  <keyframe>
    <key name="home" qpos="0 0 0.27 1 0 0 0 {" ".join(["0 0.9 -1.8"] * 4)}" ctrl="{" ".join(["0 0.9 -1.8"] * 4)}"/>
  </keyframe>
</mujoco>
"""
    (root / "go1.xml").write_text(xml)


def test_the_menagerie_go1_file_layout_trains_through_its_robot_config(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Menagerie's Go1 (stand-in): feet named FR/FL/RR/RL, unnamed collision geoms, self-collisions on, 2 ms step."""
    write_menagerie_go1(tmp_path / "menagerie" / "unitree_go1")
    monkeypatch.setenv("MENAGERIE_ROOT", str(tmp_path / "menagerie"))
    raw = mujoco.MjModel.from_xml_path(str(tmp_path / "menagerie" / "unitree_go1" / "go1.xml"))
    assert raw.opt.timestep == 0.002 and raw.nu == 12
    with pytest.raises(KeyError, match="geom 'FR_foot' not found; named geoms: .*'FR'"):
        build_model(dataclasses.replace(RobotCfg(), menagerie="unitree_go1/go1.xml"))
    robot = menagerie_go1()
    model = build_model(robot)
    assert model.opt.timestep == 0.005, "the robot config's time step, not the file's 2 ms"
    collide = [i for i in range(model.ngeom) if model.geom_bodyid[i] > 0 and model.geom_conaffinity[i]]
    assert len(collide) == 4 * (2 + 3 + 2 + 1) + 2 + 4 and all(model.geom_contype[i] == 0 for i in collide)
    groups = penalized_sensors(model, robot)
    assert [len(g) for g in groups] == [3] * 4, "every unnamed thigh collision geom is sensed"
    env = make(n=2, robot=robot)
    assert env.step_dt == pytest.approx(0.02)
    for _ in range(50):  # 1 s of standing
        env.step(torch.zeros(2, 12))
    assert (env.foot_force > 1.0).all() and not env.terminated().any()
    assert (env.penalized_force == 0).all(), "no thigh touches the ground"
    # Menagerie's soft feet sink ~2 cm and a calf capsule may graze the ground: the feet carry most of m·g, not all.
    assert (env.foot_force.sum(-1) > 0.6 * 12.74 * 9.81).all()
    # Lying on its side, low: the legs of that side touch the ground through their unnamed geoms, and are penalised.
    qpos = env.sim.qpos.clone()
    qpos[1, :3] = torch.tensor([0.0, 0.0, 0.06], dtype=env.dtype)
    qpos[1, 3:7] = torch.tensor([math.cos(math.pi / 4), math.sin(math.pi / 4), 0.0, 0.0], dtype=env.dtype)
    env.sim.reset(torch.tensor([False, True]), qpos, torch.zeros_like(env.sim.qvel))
    env.sim.step()
    env.refresh_state()
    assert env.penalized_force[0].sum() == 0 and (env.penalized_force[1] > 1.0).sum() >= 2
    assert t.undesired_contacts(env, threshold=1.0).tolist()[0] == 0.0


# --- reward and termination terms (hand values) ----------------------------------------------------------------------


def test_reward_terms_hand_values() -> None:
    env = make(n=2)
    f64 = dict(dtype=env.dtype)
    env.command = torch.tensor([[1.0, 0.0, 0.5], [0.0, 0.0, 0.0]], **f64)
    env.base_lin_vel = torch.tensor([[0.5, 0.5, 0.2], [0.0, 0.0, -0.1]], **f64)
    env.base_ang_vel = torch.tensor([[0.1, 0.2, 0.0], [0.0, 0.0, 0.3]], **f64)
    assert torch.allclose(t.track_lin_vel_xy_exp(env, std=0.5), torch.exp(torch.tensor([-0.5 / 0.25, 0.0], **f64)))
    assert torch.allclose(
        t.track_ang_vel_z_exp(env, std=0.5), torch.exp(torch.tensor([-0.25 / 0.25, -0.09 / 0.25], **f64))
    )
    assert torch.allclose(t.lin_vel_z_l2(env), torch.tensor([0.04, 0.01], **f64))
    assert torch.allclose(t.ang_vel_xy_l2(env), torch.tensor([0.05, 0.0], **f64))
    env.torque = torch.zeros(2, 12, **f64)
    env.torque[0, :2] = torch.tensor([3.0, 4.0])
    assert torch.allclose(t.joint_torques_l2(env), torch.tensor([25.0, 0.0], **f64))
    env.joint_vel, env.last_joint_vel = torch.zeros(2, 12, **f64), torch.zeros(2, 12, **f64)
    env.joint_vel[1, 0] = 0.02  # Δq̇ = 0.02 over 0.02 s → 1 rad/s²
    assert torch.allclose(t.joint_acc_l2(env), torch.tensor([0.0, 1.0], **f64))
    env.action, env.prev_action = torch.zeros(2, 12, **f64), torch.zeros(2, 12, **f64)
    env.action[0] = 0.5
    assert torch.allclose(t.action_rate_l2(env), torch.tensor([3.0, 0.0], **f64))
    # Air time: foot 0 of env 0 lands after 0.8 s → 0.8 − 0.5; env 1 stands (command 0) → 0.
    env.last_air_time = torch.tensor([[0.8, 0.3, 0.0, 0.0], [0.9, 0.0, 0.0, 0.0]], **f64)
    env.first_contact = torch.tensor([[True, False, False, False], [True, False, False, False]])
    assert torch.allclose(t.feet_air_time(env, threshold=0.5), torch.tensor([0.3, 0.0], **f64))
    # Turning in place is moving: its steps earn air time too (else standing and twisting is the easier answer).
    turn = env.command.clone()
    env.command = torch.tensor([[1.0, 0.0, 0.5], [0.0, 0.0, 0.6]], **f64)
    assert torch.allclose(t.feet_air_time(env, threshold=0.5), torch.tensor([0.3, 0.4], **f64))
    env.command = turn
    env.penalized_force = torch.tensor([[0.0, 5.0, 0.5, 2.0] + [0.0] * 4, [0.0] * 8], **f64)
    assert torch.allclose(t.undesired_contacts(env, threshold=1.0), torch.tensor([2.0, 0.0], **f64))
    env.projected_gravity = torch.tensor([[0.0, 0.0, -1.0], [0.6, 0.0, -0.8]], **f64)
    assert torch.allclose(t.flat_orientation_l2(env), torch.tensor([0.0, 0.36], **f64))
    low, high = env.soft_joint_limits
    env.joint_pos = torch.stack([(low + high) / 2, (low + high) / 2])
    env.joint_pos[1, 0] = high[0] + 0.1
    assert torch.allclose(t.joint_pos_limits(env), torch.tensor([0.0, 0.1], **f64))
    env.command = torch.zeros(2, 3, **f64)
    env.joint_pos = env.default_joint_pos.expand(2, -1).clone()
    env.joint_pos[0, 3] += 0.2
    assert torch.allclose(t.stand_still(env), torch.tensor([0.2, 0.0], **f64))


def test_rewards_are_weighted_per_second_and_logged_per_term() -> None:
    env = make(n=4, max_episode_steps=6)
    weights = {name: w for name, (w, _, _) in zip(env.reward_names, env.reward_terms, strict=True)}
    assert weights["track_lin_vel_xy"] == pytest.approx(1.5 * 0.02) and weights["lin_vel_z"] == pytest.approx(-0.04)
    g = torch.Generator().manual_seed(0)
    total = torch.zeros(4, dtype=torch.float64)
    for _ in range(6):
        _, reward, _, truncated, extras = env.step(0.3 * torch.randn(4, 12, generator=g))
        total += reward.double()
    assert truncated.all()
    episode = extras["episode"]
    sums = torch.stack([episode[f"reward/{n}"] for n in env.reward_names]).double()
    assert torch.allclose(sums.sum(0), total, atol=1e-5), "the per-term episode sums add up to the episode's reward"
    for name, weight in (("track_lin_vel_xy", 1.5), ("track_ang_vel_z", 0.75)):
        mean_kernel = episode[f"tracking/{name}"]
        assert torch.allclose(mean_kernel * weight * 0.02 * 6, episode[f"reward/{name}"])
        assert ((mean_kernel > 0) & (mean_kernel <= 1)).all()
    best = (1.5 + 0.75) * 0.02 * 6
    earned = episode["reward/track_lin_vel_xy"] + episode["reward/track_ang_vel_z"]
    assert torch.allclose(episode["tracking/fraction"], earned / best)


def test_only_positive_rewards_clips_each_steps_total_at_zero() -> None:
    g = torch.Generator().manual_seed(0)
    actions = [3 * torch.randn(8, 12, generator=g) for _ in range(5)]  # violent: large penalties
    rewards = {}
    for clip in (False, True):
        env = make(n=8, only_positive_rewards=clip)
        rewards[clip] = torch.stack([env.step(a)[1] for a in actions])
    assert (rewards[False] < 0).any()
    assert torch.equal(rewards[True], rewards[False].clamp(min=0.0))


def test_terminations_base_contact_and_bad_orientation() -> None:
    env = make(n=2)
    qpos = env.sim.qpos.clone()
    qvel = torch.zeros_like(env.sim.qvel)
    qpos[1, 2] = 0.05  # trunk (half height 0.057 m) pressed on the ground
    qpos[1, 3:7] = torch.tensor([0.0, 1.0, 0.0, 0.0])  # upside down
    env.sim.reset(torch.tensor([False, True]), qpos, qvel)
    env.sim.ctrl.zero_()
    env.sim.step()
    env.refresh_state()
    assert t.base_contact(env).tolist() == [False, True]
    assert t.bad_orientation(env).tolist() == [False, True]
    assert env.terminated().tolist() == [False, True]


def test_timeout_is_a_truncation() -> None:
    env = make(n=2, max_episode_steps=5)
    for _ in range(5):
        _, _, terminated, truncated, _ = env.step(torch.zeros(2, 12))
    assert truncated.all() and not terminated.any()


# --- feet air time ---------------------------------------------------------------------------------------------------


def test_air_time_first_contact_and_the_flicker_filter_by_hand() -> None:
    """legged_gym's rule, step by step: contact = force > 1 N, OR-ed with the previous step's; at each touch-down
    ``first_contact`` is set and ``last_air_time`` holds the time since lift-off (touch-down step included)."""
    env = make(n=1)
    env.air_time, env.last_contact = torch.zeros_like(env.air_time), torch.zeros_like(env.last_contact)
    # Foot 0 steps twice (3 and then 2 steps in the air); foot 1 flickers (one step without force: no lift-off);
    # foot 2 stays down; foot 3 is in the air from the start and lands at step 4.
    pattern = [[1, 1, 1, 0], [1, 0, 1, 0], [0, 1, 1, 0], [0, 1, 1, 0], [0, 1, 1, 1], [1, 1, 1, 1], [1, 1, 1, 1],
               [0, 1, 1, 1], [0, 1, 1, 1], [0, 1, 1, 1], [1, 1, 1, 1]]  # fmt: skip
    first, last = [], []
    for forces in pattern:
        env.foot_force = torch.tensor([forces], dtype=env.dtype) * 50.0
        env._update_feet()
        first.append(env.first_contact[0].tolist())
        last.append(env.last_air_time[0].tolist())
    touchdowns = {foot: [k for k in range(len(pattern)) if first[k][foot]] for foot in range(4)}
    # foot 0: lifted at step 2 (filtered contact lasts one more step), air at 3, 4, touch-down at 5 → 3 periods;
    # lifted again at 7 → air at 8, 9, touch-down at 10 → 3 periods. foot 3: air at 0-3, touch-down at 4 → 5 periods.
    assert touchdowns == {0: [5, 10], 1: [], 2: [], 3: [4]}
    assert last[5][0] == pytest.approx(3 * 0.02) and last[10][0] == pytest.approx(3 * 0.02)
    assert last[4][3] == pytest.approx(5 * 0.02)
    assert env.air_time[0].tolist() == [0.0, 0.0, 0.0, 0.0]
    # The reward pays (t_air − threshold) at touch-down only, for a moving command.
    env.command = torch.tensor([[0.5, 0.0, 0.0]], dtype=env.dtype)
    assert t.feet_air_time(env, threshold=0.05).item() == pytest.approx(3 * 0.02 - 0.05)


def test_a_dropped_robot_lands_on_all_feet_with_its_fall_time_as_air_time() -> None:
    env = make(n=1)
    qpos = env.sim.qpos.clone()
    qpos[0, 2] = 0.55  # feet ~0.3 m above the ground: ~0.25 s of free fall
    qpos[0, 3:7] = torch.tensor([1.0, 0.0, 0.0, 0.0])
    qpos[0, env.qpos_idx] = env.default_joint_pos
    env.sim.reset(torch.ones(1, dtype=torch.bool), qpos, torch.zeros_like(env.sim.qvel))
    env.refresh_state()
    env.air_time, env.last_contact = torch.zeros_like(env.air_time), torch.zeros_like(env.last_contact)
    landed: dict[int, float] = {}
    for step in range(1, 40):
        env.physics_step()
        for foot in range(4):
            if env.first_contact[0, foot] and foot not in landed:
                landed[foot] = env.last_air_time[0, foot].item()
                assert landed[foot] == pytest.approx(step * 0.02), "airborne since the drop"
    assert sorted(landed) == [0, 1, 2, 3]
    assert min(landed.values()) > 0.15 and max(landed.values()) < 0.4  # √(2·0.3/9.81) ≈ 0.25 s


# --- randomisation and perturbations ---------------------------------------------------------------------------------


def test_randomization_terms_stay_in_range_and_respect_the_mask() -> None:
    env = make(n=64, randomize=True)
    friction = env.sim.params["geom_friction"][:, env.foot_geom_ids, 0]
    assert friction.min() >= 0.5 and friction.max() <= 1.25 and friction.std() > 0.1
    assert (friction == friction[:, :1]).all(), "one friction value per env for all feet"
    added = env.sim.params["body_mass"][:, env.base_id] - env.nominal["body_mass"][:, env.base_id]
    assert added.min() >= -1.0 and added.max() <= 2.0 and added.std() > 0.3
    shift = env.sim.params["body_ipos"][:, env.base_id] - env.nominal["body_ipos"][:, env.base_id]
    assert (shift.abs() <= torch.tensor([0.05, 0.05, 0.01], dtype=shift.dtype) + 1e-9).all()
    assert env.motor.strength.min() >= 0.9 and env.motor.strength.max() <= 1.1
    assert (env.pd.kp / env.pd.kp_nominal).min() >= 0.9 - 1e-9 and (env.pd.kp / env.pd.kp_nominal).max() <= 1.1 + 1e-9
    assert set(env.delay.delay.tolist()) == {0, 1}
    before = env.sim.params["body_mass"].clone()
    mask = torch.zeros(64, dtype=torch.bool)
    mask[3] = True
    ev.base_mass(env, mask, added=(5.0, 5.0))
    after = env.sim.params["body_mass"]
    assert torch.equal(after[~mask], before[~mask])
    assert after[3, env.base_id] == pytest.approx(env.nominal["body_mass"][3, env.base_id].item() + 5.0)


def test_payload_changes_the_physics() -> None:
    """A heavier base (per-world parameter) presses the feet harder: the randomisation reaches MuJoCo."""
    env = make(n=2)
    mask = torch.tensor([False, True])
    ev.base_mass(env, mask, added=(3.0, 3.0))
    load = torch.zeros(2, dtype=env.dtype)
    for i in range(100):
        env.step(torch.zeros(2, 12))
        load += env.foot_force.sum(-1) * (i >= 60)  # mean over the settled last 0.8 s
    assert ((load[1] - load[0]) / 40).item() == pytest.approx(3.0 * 9.81, rel=0.1)


def _robot_momentum(env: VelocityTask, world: int) -> np.ndarray:
    """Linear momentum (kg m/s) of the whole robot in one world, with that world's own body masses."""
    m = build_model(env.cfg.robot)
    m.body_mass[:] = env.sim.params["body_mass"][world].numpy()
    d = mujoco.MjData(m)
    mujoco.mj_setConst(m, d)  # subtree masses of the drawn masses
    d.qpos[:], d.qvel[:] = env.sim.qpos[world].numpy(), env.sim.qvel[world].numpy()
    mujoco.mj_forward(m, d)
    mujoco.mj_subtreeVel(m, d)
    return m.body_subtreemass[env.base_id] * d.subtree_linvel[env.base_id]


def test_a_push_changes_the_robot_momentum_by_its_own_mass_times_the_drawn_velocity() -> None:
    """Δp = m_world · Δv with each world's drawn payload (not the nominal mass): the robot gains the drawn velocity."""
    env = make(n=4)
    ev.base_mass(env, torch.tensor([True, True, False, False]), added=(2.0, 2.0))  # worlds 0, 1 carry 2 kg
    env.cfg.rewards.clear()
    # In the air (no ground contact: only the push changes the horizontal momentum), legs held at the PD target (the
    # legs hardly move, so the discrete-time momentum changes by ~2e-4 of the push besides it).
    qpos = env.init_qpos.expand(4, -1).clone()
    qpos[:, 2] = 2.0
    qpos[:, env.qpos_idx] = env.default_joint_pos
    env.sim.reset(torch.ones(4, dtype=torch.bool), qpos, torch.zeros_like(env.sim.qvel))
    env.refresh_state()
    env.cfg.events["push"] = ev.EventTerm(ev.push, "interval", {"velocity": (0.6, 0.6)}, interval_s=(0.02, 0.02))
    env.event_timers = {"push": torch.tensor([0.02, 1e9, 0.02, 1e9], dtype=env.dtype)}  # push worlds 0 and 2
    before = [_robot_momentum(env, i) for i in range(4)]
    env.physics_step()
    gained = [(_robot_momentum(env, i) - before[i])[:2] for i in range(4)]
    mass = env.sim.params["body_mass"].sum(-1).numpy()
    assert mass[0] == pytest.approx(mass[2] + 2.0)
    for i in range(4):
        expected = [0.6 * mass[i]] * 2 if i in (0, 2) else [0.0, 0.0]
        assert gained[i] == pytest.approx(expected, rel=1e-3, abs=1e-9), i


def test_pushes_come_at_the_drawn_intervals_never_at_the_first_step_and_restart_with_the_episode() -> None:
    env = make(n=64, randomize=True)
    lo, hi = env.cfg.events["push"].interval_s
    timers = env.event_timers["push"]
    assert timers.min() >= lo and timers.max() <= hi and timers.std() > 0.5, "first interval drawn at start-up"
    env.step(torch.zeros(64, 12))
    assert (env.push_force == 0).all() and (env.sim.xfrc_applied == 0).all(), "nobody is pushed at the first step"
    # Every 5 steps (0.1 s): the pushes come at steps 5, 10, 15 ...; env 1 restarts its episode at step 7.
    env = make(n=3)
    env.cfg.events["push"] = ev.EventTerm(ev.push, "interval", {"velocity": (0.5, 0.5)}, interval_s=(0.1, 0.1))
    env.event_timers = {"push": torch.zeros(3, dtype=env.dtype)}
    env.reset()
    pushed: dict[int, list[int]] = {0: [], 1: [], 2: []}
    for step in range(1, 21):
        env.step(torch.zeros(3, 12))
        for i in range(3):
            if env.push_force[i].abs().sum() > 0:
                pushed[i].append(step)
        if step == 7:
            env.reset_envs(torch.tensor([False, True, False]))
    assert pushed[0] == pushed[2] == [5, 10, 15, 20]
    assert pushed[1] == [5, 12, 17], "the interval restarts with the episode (Isaac Lab's per-episode timers)"
    assert env.push_force[0].tolist() == pytest.approx([0.5 * float(env.sim.params["body_mass"][0].sum()) / 0.02] * 2)


def test_torques_never_exceed_motor_limits_under_random_actions() -> None:
    env = make(n=8, randomize=True)
    g = torch.Generator().manual_seed(0)
    effort = env.motor.effort_limit
    for _ in range(30):
        env.step(5 * torch.randn(8, 12, generator=g))
        assert (env.torque.abs() <= effort + 1e-9).all()
        assert (env.sim.ctrl.abs() <= effort + 1e-9).all()


def test_action_delay_holds_the_previous_action() -> None:
    env = make(n=2)
    env.delay.set_delay(torch.tensor([0, 1]), torch.ones(2, dtype=torch.bool))
    env.step(torch.zeros(2, 12))
    env.step(torch.ones(2, 12))
    target_now = env.pd.targets(env.delay.buffer[env.delay.head])  # what the delay buffer just stored
    assert torch.allclose(target_now[0], env.default_joint_pos + 0.25)
    # env 1 acted on the zero action of the step before: its joints stayed near the standing pose.
    assert (env.joint_pos[1] - env.default_joint_pos).abs().max() < (
        env.joint_pos[0] - env.default_joint_pos
    ).abs().max()


# --- observations ----------------------------------------------------------------------------------------------------


def test_observation_groups_noise_and_privileged_terms() -> None:
    clean = make(n=4)
    obs = clean.reset()
    assert obs["policy"].shape == (4, 48) and obs["student"].shape == (4, 45) and obs["critic"].shape[1] > 48
    assert torch.equal(obs["policy"][:, 3:], obs["student"]), "student = policy without the base linear velocity"
    assert torch.allclose(obs["policy"], obs["critic"][:, :48]), (
        "without noise the critic's first terms are the policy's"
    )
    noisy = make(n=4, randomize=True)
    a, b = noisy.observe(), noisy.observe()
    diff = (a["policy"] - b["policy"]).abs()
    assert diff[:, 3:6].max() <= 2 * 0.2 + 1e-6 and diff[:, 3:6].max() > 0  # angular velocity: U(±0.2)
    assert torch.equal(a["critic"], b["critic"]), "the critic sees no noise"
    assert torch.equal(a["policy"][:, 9:12], b["policy"][:, 9:12]), "commands are not noisy"


def test_command_shares_heading_control_and_direct_yaw_rates() -> None:
    """Standing, turn-in-place, heading-controlled and direct yaw-rate commands come in the configured shares (each
    within 4 standard deviations of a binomial draw)."""
    n = 2048
    commands = CommandCfg(min_speed=0.0)  # no planar command is zeroed for being slow: the categories are exact
    env = make(n=n, commands=commands)
    cmd, heading = env.command, env.heading_control
    planar_zero = (cmd[:, :2] == 0).all(-1)
    standing = planar_zero & (cmd[:, 2] == 0)
    turning = planar_zero & (cmd[:, 2] != 0)
    moving = ~planar_zero

    def share(x: torch.Tensor, of: torch.Tensor, p: float) -> None:
        m = int(of.sum())
        assert abs(int(x.sum()) / m - p) < 4 * math.sqrt(p * (1 - p) / m), (int(x.sum()), m, p)

    everyone = torch.ones(n, dtype=torch.bool)
    share(standing, everyone, commands.standing_fraction)
    share(turning, everyone, commands.turn_fraction)
    share(heading & moving, moving, commands.heading_fraction)
    assert not (heading & ~moving).any(), "standing and turning envs hold their yaw rate, not a heading"
    # Heading control: ω = 0.5 · heading error, clipped. Direct yaw rates: U(−1, 1) for the whole period.
    err = t.wrap_angle(env.heading_target - t.yaw_of(env.base_quat))
    assert torch.allclose(cmd[heading, 2], (0.5 * err[heading]).clamp(-1, 1))
    direct = cmd[~heading & ~standing, 2]
    assert direct.abs().max() <= 1.0 and abs(direct.mean()) < 0.1
    assert abs((direct.abs() > 0.5).float().mean() - 0.5) < 0.1
    before = cmd.clone()
    for _ in range(5):
        env.step(torch.zeros(n, 12))
    assert torch.equal(env.command[~heading], before[~heading]), "direct commands hold until resampled"
    assert not torch.equal(env.command[heading, 2], before[heading, 2]), "heading control follows the turning robot"
    # With heading control off, no env is heading-controlled; slow planar commands are zeroed (legged_gym).
    env = make(n=256, commands=CommandCfg(heading=False))
    planar = env.command[:, :2].norm(dim=-1)
    assert not env.heading_control.any() and ((planar == 0) | (planar >= 0.2)).all()


def test_commands_are_resampled_every_period_and_with_each_episode() -> None:
    env = make(n=3, commands=CommandCfg(heading=False, resample_s=0.1, standing_fraction=0.0, turn_fraction=0.0))
    changed: dict[int, list[int]] = {0: [], 1: [], 2: []}
    for step in range(1, 21):
        before = env.command.clone()
        env.step(torch.zeros(3, 12))
        for i in range(3):
            if not torch.equal(env.command[i], before[i]):
                changed[i].append(step)
        if step == 7:
            env.reset_envs(torch.tensor([False, True, False]))
            assert env.command_timer[1] == 0
    assert changed[0] == changed[2] == [5, 10, 15, 20]
    assert changed[1] == [5, 12, 17], "a reset draws a new command and restarts the period"


def test_bad_command_config_is_a_clear_error() -> None:
    with pytest.raises(ValueError, match="heading_fraction"):
        CommandCfg(heading_fraction=1.5)
    with pytest.raises(ValueError, match="standing_fraction \\+ turn_fraction"):
        CommandCfg(standing_fraction=0.6, turn_fraction=0.6)
    with pytest.raises(ValueError, match="lin_vel_x"):
        CommandCfg(lin_vel_x=(1.0, -1.0))
    with pytest.raises(ValueError, match="resample_s"):
        CommandCfg(resample_s=0.0)


# --- terrain and curriculum ------------------------------------------------------------------------------------------


def test_curriculum_rule() -> None:
    levels = torch.tensor([0, 3, 3, 5, 2, 0])
    distance = torch.tensor([5.0, 5.0, 1.0, 6.0, 3.0, 0.0])
    asked = torch.tensor([10.0, 10.0, 10.0, 10.0, 4.0, 10.0])
    random_level = torch.tensor([1, 1, 1, 1, 1, 1])
    new = update_levels(levels, distance, asked, tile_size=8.0, num_levels=6, random_level=random_level)
    # up (>4 m) | up | down (<5 m asked/2) | past the last level → random | stays (3 ≥ 2, ≤ 4) | never below 0
    assert new.tolist() == [1, 4, 2, 1, 2, 0]


def test_heightfield_in_mujoco_matches_the_torch_height_map() -> None:
    cfg = TerrainCfg(kind="rough", num_levels=3, num_cols=3, tile_size=4.0)
    heights, centres = generate(cfg)
    model = build_model(RobotCfg(), (heights, cfg.resolution, 0.5))
    data = mujoco.MjData(model)
    mujoco.mj_forward(model, data)
    hmap = HeightMap(heights, cfg.resolution, torch.device("cpu"))
    rng = np.random.default_rng(0)
    half = (np.array(heights.shape[::-1]) - 1) * cfg.resolution / 2 - 0.5
    terrain = mujoco.mj_name2id(model, mujoco.mjtObj.mjOBJ_GEOM, "terrain")
    geomid = np.zeros(1, dtype=np.int32)
    errors = []
    for xy in rng.uniform(-half, half, size=(200, 2)):
        dist = mujoco.mj_ray(model, data, np.array([*xy, 5.0]), np.array([0.0, 0.0, -1.0]), None, 1, -1, geomid)
        assert geomid[0] == terrain
        errors.append(abs((5.0 - dist) - hmap.height_at(torch.tensor(xy)).item()))
    # MuJoCo triangulates each cell, the map interpolates bilinearly: equal up to the cell's curvature.
    assert np.median(errors) < 1e-3 and np.max(errors) < 0.12
    assert centres.shape == (3, 3, 3)
    # Difficulty grows with the level: every column's tile spans more height at the hardest level than at the easiest.
    n, b = round(cfg.tile_size / cfg.resolution), round(cfg.border / cfg.resolution)
    for col in range(cfg.num_cols):
        span = [np.ptp(heights[b + col * n : b + (col + 1) * n, b + lv * n : b + (lv + 1) * n]) for lv in range(3)]
        assert span[0] < span[1] < span[2], (col, span)


def test_rough_task_spawns_on_tiles_and_its_curriculum_moves_levels_up_down_and_wraps() -> None:
    terrain = TerrainCfg(kind="rough", num_levels=4, num_cols=3, tile_size=4.0, max_init_level=1)
    env = make(n=8, terrain=terrain)
    assert env.levels.max() <= 1 and env.levels.min() == 0
    obs = env.reset()
    assert obs["policy"].shape == (8, 48 + 187)
    ground = env.ground_height(env.base_pos[:, :2])
    assert ((env.base_pos[:, 2] - ground - 0.30).abs() < 1e-6).all()
    assert torch.allclose(env.env_origin, env.centres[env.levels, env.columns])
    # The rule inside the task, at the reset of envs 0-3 (episode 20 s):
    # 0 walked 3 m > tile/2 → up; 1 walked 0.5 m of the 20 m its 1 m/s command asked → down;
    # 2 stood still as commanded → stays; 3 walked off the hardest level → a random level.
    env.levels = torch.tensor([1, 2, 1, 3, 0, 0, 0, 0])
    env.env_origin = env.centres[env.levels, env.columns]
    env.base_pos = env.env_origin.clone()
    env.base_pos[[0, 3], 0] += 3.0
    env.base_pos[1, 0] += 0.5
    env.command = torch.zeros_like(env.command)
    env.command[1, 0] = 1.0
    env.command[3, 0] = 0.5
    mask = torch.tensor([True] * 4 + [False] * 4)
    before = env.levels.clone()
    env.reset_envs(mask)
    assert env.levels[:3].tolist() == [2, 1, 1]
    assert 0 <= env.levels[3] < 4 and torch.equal(env.levels[4:], before[4:])
    assert torch.allclose(env.env_origin[:4], env.centres[env.levels[:4], env.columns[:4]]), "moved to the new tile"
    assert ((env.base_pos[:4, :2] - env.env_origin[:4, :2]).abs() <= 0.5).all()
    # A robot on level 0 that fails stays at 0; the log reports the mean level.
    env.levels[0], env.command[0, 0] = 0, 1.0
    env.base_pos = env.env_origin.clone()
    env.reset_envs(torch.tensor([True] + [False] * 7))
    assert env.levels[0] == 0
    _, _, _, _, extras = env.step(torch.zeros(8, 12))
    assert extras["log"]["terrain_level"] == pytest.approx(env.levels.float().mean().item())


def test_height_scan_reads_the_ground_under_yaw_rotated_points() -> None:
    """The scan (critic: clean; policy: + noise) is base_z − 0.5 − ground height at the scan points, rotated with the
    base's yaw, x-major: checked against MuJoCo's own ray casts on the heightfield, on stairs."""
    terrain = TerrainCfg(kind="rough", num_levels=3, num_cols=6, tile_size=4.0)
    env = make(n=2, randomize=True, terrain=terrain)
    stairs = column_types(terrain).index("stairs_up")
    centre = env.centres[2, stairs]
    qpos = env.sim.qpos.clone()
    yaw = torch.tensor([0.0, 0.7], dtype=env.dtype)
    qpos[:, 0], qpos[:, 1] = centre[0] + 1.0, centre[1] - 0.4  # off the platform, on the steps
    qpos[:, 2] = centre[2] + 0.35
    qpos[:, 3:7] = torch.stack([torch.cos(yaw / 2), 0 * yaw, 0 * yaw, torch.sin(yaw / 2)], -1)
    env.sim.reset(torch.ones(2, dtype=torch.bool), qpos, torch.zeros_like(env.sim.qvel))
    env.refresh_state()
    obs = env.observe()
    scan = obs["critic"][:, -187:].double()
    data = mujoco.MjData(env.model)
    mujoco.mj_forward(env.model, data)
    geomid = np.zeros(1, dtype=np.int32)
    xs, ys = env.cfg.height_scan
    for i in range(2):
        c, s_ = math.cos(yaw[i]), math.sin(yaw[i])
        base = env.base_pos[i].numpy()
        expected = []
        for x in xs:
            for y in ys:
                px, py = base[0] + c * x - s_ * y, base[1] + s_ * x + c * y
                dist = mujoco.mj_ray(
                    env.model, data, np.array([px, py, 5.0]), np.array([0, 0, -1.0]), None, 1, -1, geomid
                )
                expected.append(np.clip(base[2] - 0.5 - (5.0 - dist), -1.0, 1.0))
        err = np.abs(scan[i].numpy() - np.array(expected))
        assert np.median(err) < 2e-3 and err.max() < 0.12, (i, np.median(err), err.max())
        assert np.ptp(expected) > 0.2, "the points cover several steps"
    noise = obs["policy"][:, -187:].double() - scan
    assert noise.abs().max() <= 0.1 + 1e-6 and noise.abs().max() > 0.05, "policy scan = clean scan + U(±0.1)"


# --- backends --------------------------------------------------------------------------------------------------------


@pytest.mark.skipif(not warp_available(), reason="mujoco-warp is not installed")
def test_cpu_and_warp_backends_agree_on_a_short_rollout() -> None:
    def run(backend: str) -> torch.Tensor:
        cfg = no_randomization(VelocityCfg(num_envs=2, sim=SimConfig(backend=backend, nthread=1)))
        env = VelocityTask(cfg, seed=3)
        env.reset()
        g = torch.Generator().manual_seed(0)
        base = []
        for _ in range(25):  # 0.5 s, 100 physics steps, walking-like random targets
            env.step(0.5 * torch.randn(2, 12, generator=g))
            base.append(torch.cat([env.base_pos, env.joint_pos], -1).double().clone())
        return torch.stack(base)

    cpu, warp = run("cpu"), run("warp")
    # float32 (Warp) vs float64 (MuJoCo C) with contacts: trajectories agree to millimetres / milliradians.
    assert (cpu - warp).abs().max() < 5e-3


# --- non-finite actions ----------------------------------------------------------------------------------------------


def test_a_non_finite_action_ends_only_its_episode_and_never_leaks() -> None:
    """A NaN (or ±inf) action ends that env's episode like an invalid world (terminated, reward 0, counted); it never
    reaches the simulator, the delay buffer, ``last_action`` or the action-rate reward of any env."""
    env = make(n=4, randomize=True)
    env.delay.set_delay(torch.ones(4, dtype=torch.long), torch.ones(4, dtype=torch.bool))  # the buffer is read
    g = torch.Generator().manual_seed(0)
    bad_at = {3: (1, float("nan")), 7: (2, float("inf")), 11: (1, float("nan"))}  # a second time in the same env
    for step in range(16):
        actions = 0.3 * torch.randn(4, 12, generator=g)
        if step in bad_at:
            env_id, value = bad_at[step]
            actions[env_id, 5] = value
        obs, reward, terminated, _, extras = env.step(actions)
        for group in ("policy", "critic", "student"):
            assert torch.isfinite(obs[group]).all(), (step, group)
            assert torch.isfinite(extras["final_obs"][group]).all(), (step, group)
        assert torch.isfinite(reward).all(), step
        assert all(torch.isfinite(v).all() for v in extras["episode"].values()), step
        assert torch.isfinite(env.delay.buffer).all() and torch.isfinite(env.sim.ctrl).all()
        expected = torch.zeros(4, dtype=torch.bool)
        if step in bad_at:
            expected[bad_at[step][0]] = True
            assert reward[bad_at[step][0]] == 0.0
        assert (terminated & expected).tolist() == expected.tolist(), step
        assert int(extras["counts"]["nonfinite_actions"]) == int(expected.sum()), step
        if step in bad_at:
            assert env.episode_length_buf[bad_at[step][0]] == 0
            assert (env.action[bad_at[step][0]] == 0).all(), "the reset env's last action is cleared"


def test_reset_clears_the_per_env_buffers_of_the_reset_envs_only_even_nan() -> None:
    """Buffers of a reset env are set, not multiplied by 0 (NaN·0 = NaN); other envs keep theirs bit for bit."""
    env = make(n=4, randomize=True)
    g = torch.Generator().manual_seed(1)
    for _ in range(40):  # walking-like actions: feet in the air, contacts, delays
        env.step(0.5 * torch.randn(4, 12, generator=g))
    mask = torch.tensor([False, True, False, True])
    for name in ("action", "prev_action", "air_time", "last_air_time"):
        value = getattr(env, name).clone()
        value[1] = float("nan")
        value[3] = 0.7
        setattr(env, name, value)
    env.first_contact = env.first_contact | mask.unsqueeze(-1)
    env.last_contact = env.last_contact | mask.unsqueeze(-1)
    env.delay.buffer[:, 1] = float("nan")
    names = ("action", "prev_action", "air_time", "last_air_time", "first_contact", "last_contact")
    before = {name: getattr(env, name).clone() for name in names}
    delay_before = env.delay.buffer.clone()
    env.reset_envs(mask)
    for name in names:
        after = getattr(env, name)
        assert not after[mask].any(), f"{name} of the reset envs is cleared"
        assert torch.equal(after[~mask], before[name][~mask]), f"{name} of the other envs is untouched"
    assert (env.delay.buffer[:, mask] == 0).all() and torch.equal(env.delay.buffer[:, ~mask], delay_before[:, ~mask])
    assert torch.equal(env.last_joint_vel[mask], env.joint_vel[mask]), "no joint acceleration across the reset"
    assert (env.command_timer[mask] == 0).all()
    assert torch.isfinite(env.observe()["policy"]).all()


# --- terrain type assignment -----------------------------------------------------------------------------------------


def test_the_default_grid_has_every_terrain_type_and_the_tiles_are_of_that_type() -> None:
    from tasks.legged.terrain import TERRAIN_TYPES

    cfg = TerrainCfg(kind="rough")
    kinds = column_types(cfg)
    assert sorted(kinds) == sorted(TERRAIN_TYPES), "6 columns, 6 types with positive shares: one column each"
    heights, centres = generate(cfg)
    n, b = round(cfg.tile_size / cfg.resolution), round(cfg.border / cfg.resolution)
    level = cfg.num_levels - 1  # the hardest row: every type's shape is pronounced
    for col, kind in enumerate(kinds):
        tile = heights[b + col * n : b + (col + 1) * n, b + level * n : b + (level + 1) * n]
        centre, edge = tile[n // 2, n // 2], tile[0, n // 2]
        if kind.endswith("_up"):
            assert centre > edge + 0.5, kind  # climbs to the centre
        elif kind.endswith("_down"):
            assert centre < edge - 0.5, kind  # descends to the centre
        else:  # bumps or boxes around a level platform
            c = n // 2
            assert np.ptp(tile[c - 10 : c + 10, c - 10 : c + 10]) == 0 and np.ptp(tile) > 0.1, kind
        assert centres[level, col, 2] == pytest.approx(centre)


def test_terrain_columns_follow_the_proportions() -> None:
    cfg = TerrainCfg(num_cols=20)
    counts = {k: column_types(cfg).count(k) for k in cfg.proportions}
    for kind, share in cfg.proportions.items():
        assert abs(counts[kind] - share * 20) <= 1, (kind, counts)
    assert sum(counts.values()) == 20
    # A zero share is never generated; fewer columns than types: the largest shares first.
    only = TerrainCfg(num_cols=4, proportions={"rough": 0.5, "stairs_up": 0.5, "obstacles": 0.0})
    assert column_types(only) == ["rough", "rough", "stairs_up", "stairs_up"]
    assert column_types(TerrainCfg(num_cols=2)) == ["rough", "stairs_up"]  # 0.25, then the first of two 0.2 shares
    with pytest.raises(ValueError, match="proportions"):
        TerrainCfg(proportions={"rough": -1.0, "stairs_up": 2.0})
    with pytest.raises(ValueError, match="proportions"):
        TerrainCfg(proportions={"rough": 0.0})


# --- exact resume ----------------------------------------------------------------------------------------------------


def _resume_cfg(kind: str) -> VelocityCfg:
    """Randomised, pushed often (pushes, delays and gain draws inside the window), short episodes (resets inside it)."""
    cfg = VelocityCfg(num_envs=6, max_episode_steps=12, sim=SimConfig(backend="cpu", nthread=1))
    if kind == "rough":
        cfg = dataclasses.replace(
            cfg,
            terrain=TerrainCfg(kind="rough", num_levels=4, num_cols=6, tile_size=4.0, max_init_level=3),
            only_positive_rewards=True,
        )
    cfg.events["push"] = dataclasses.replace(cfg.events["push"], interval_s=(0.06, 0.2))
    # Fast commands in 0.24 s episodes: robots cover less than half of what they were asked, so levels go down.
    cfg.commands = dataclasses.replace(cfg.commands, resample_s=0.3, lin_vel_x=(5.0, 6.0))
    return cfg


@pytest.mark.parametrize("kind", ["flat", "rough"])
def test_a_loaded_env_continues_exactly_as_the_saved_one(kind: str, tmp_path: Path) -> None:
    """Saved mid-episode (through a checkpoint file, weights-only), loaded into a fresh env with another seed: the
    next 30 steps -- resets, pushes, command resamplings and curriculum moves included -- are identical."""
    a = VelocityTask(_resume_cfg(kind), seed=1)
    g = torch.Generator().manual_seed(0)
    actions = [0.8 * torch.randn(6, 12, generator=g) for _ in range(45)]
    for u in actions[:15]:
        a.step(u)
    torch.save({"env_state": a.state_dict()}, tmp_path / "ckpt.pt")
    b = VelocityTask(_resume_cfg(kind), seed=2)
    assert not torch.equal(a.command, b.command)
    b.load_state_dict(torch.load(tmp_path / "ckpt.pt", weights_only=True)["env_state"])
    assert torch.equal(a.levels, b.levels) and torch.equal(a.env_origin, b.env_origin)
    b.get_observations()  # a runner asks the resumed env for its observations: no extra noise draw, no divergence
    for group in ("policy", "critic"):
        assert torch.equal(a.get_observations()[group], b.get_observations()[group])
    resets, levels_before = 0, a.levels.clone()
    for u in actions[15:]:
        out_a, out_b = a.step(u), b.step(u)
        for group in ("policy", "critic", "student"):
            assert torch.equal(out_a[0][group], out_b[0][group]), group
            assert torch.equal(out_a[4]["final_obs"][group], out_b[4]["final_obs"][group])
        for x, y in zip(out_a[1:4], out_b[1:4], strict=True):
            assert torch.equal(x, y)
        for key, value in out_a[4]["episode"].items():
            assert torch.equal(value, out_b[4]["episode"][key]), key
        resets += int((out_a[2] | out_a[3]).sum())
    assert resets >= 6, "episodes ended (and envs were reset) after the resume"
    assert (
        torch.equal(a.levels, b.levels)
        and torch.equal(a.pd.kp, b.pd.kp)
        and torch.equal(a.delay.buffer, b.delay.buffer)
    )
    if kind == "rough":
        assert not torch.equal(a.levels, levels_before), "the curriculum moved after the resume, the same in both"


def test_loading_a_state_of_another_shape_or_task_is_a_clear_error() -> None:
    state = make(n=4).state_dict()
    with pytest.raises(ValueError, match="'velocity.command' has shape \\(4, 3\\), expected \\(2, 3\\)|shape"):
        make(n=2).load_state_dict(state)
    with pytest.raises(ValueError, match="no 'velocity' entry"):
        make(n=4).load_state_dict({k: v for k, v in state.items() if k != "velocity"})
    with pytest.raises(ValueError, match="event timers"):
        make(n=4, randomize=True).load_state_dict(state)  # saved without the push event
