"""The legged velocity-tracking task: robot model, every reward/termination term, randomisation, terrain, curriculum,
observations, controller limits inside the task, Menagerie loading, and cpu/warp parity."""

from __future__ import annotations

import dataclasses
import math
import shutil
from pathlib import Path

import mujoco
import numpy as np
import pytest
import torch

from tasks.legged import events as ev
from tasks.legged import no_randomization
from tasks.legged import terms as t
from tasks.legged.config import VelocityCfg
from tasks.legged.robot import RobotCfg, build_model
from tasks.legged.terrain import HeightMap, TerrainCfg, generate, update_levels
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


def test_a_menagerie_robot_loads_by_name_through_the_same_path(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    root = tmp_path / "menagerie" / "unitree_go1"
    root.mkdir(parents=True)
    shutil.copy(RobotCfg().mjcf, root / "go1.xml")
    monkeypatch.setenv("MENAGERIE_ROOT", str(tmp_path / "menagerie"))
    robot = dataclasses.replace(RobotCfg(), name="go1-menagerie", menagerie="unitree_go1/go1.xml")
    env = make(n=2, robot=robot)
    obs, *_ = env.step(torch.zeros(2, 12))
    assert obs["policy"].shape == (2, 48)


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
    env = make(n=2)
    weights = {name: w for name, (w, _, _) in zip(env.reward_names, env.reward_terms, strict=True)}
    assert weights["track_lin_vel_xy"] == pytest.approx(1.5 * 0.02)
    _, reward, *_, extras = env.step(torch.zeros(2, 12))
    assert set(extras["episode"]) >= {f"reward/{n}" for n in env.reward_names}
    assert "tracking/track_lin_vel_xy" in extras["episode"]


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


def test_push_changes_base_velocity_by_the_drawn_amount() -> None:
    env = make(n=2)
    env.cfg.rewards.clear()
    qpos = env.sim.qpos.clone()
    qpos[:, 2] = 2.0  # in the air: no ground friction
    env.sim.reset(torch.ones(2, dtype=torch.bool), qpos, torch.zeros_like(env.sim.qvel))
    env.refresh_state()
    env.event_timers = {"push": torch.tensor([0.0, 1e9], dtype=env.dtype)}
    env.cfg.events["push"] = ev.EventTerm(ev.push, "interval", {"velocity": (1.0, 1.0)})
    vel_before = env.sim.qvel[:, :2].clone()
    env.physics_step()
    dv = env.sim.qvel[:, :2] - vel_before
    # Both worlds start alike (legs moving under PD); the pushed one gains F·T / m_robot = Δv more, which the trunk's
    # own velocity follows to within a few percent (the legs are light and ride along).
    assert (dv[0] - dv[1]).tolist() == pytest.approx([1.0, 1.0], rel=0.1)


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
    a, b = noisy.get_observations(), noisy.get_observations()
    diff = (a["policy"] - b["policy"]).abs()
    assert diff[:, 3:6].max() <= 2 * 0.2 + 1e-6 and diff[:, 3:6].max() > 0  # angular velocity: U(±0.2)
    assert torch.equal(a["critic"], b["critic"]), "the critic sees no noise"
    assert torch.equal(a["policy"][:, 9:12], b["policy"][:, 9:12]), "commands are not noisy"


def test_commands_heading_control_and_standing() -> None:
    env = make(n=256)
    cmd = env.command
    planar = cmd[:, :2].norm(dim=-1)
    assert ((planar == 0) | (planar >= 0.2)).all(), "slow planar commands are zeroed"
    assert cmd[:, 0].abs().max() <= 1.0 and cmd[:, 2].abs().max() <= 1.0
    err = t.wrap_angle(env.heading_target - t.yaw_of(env.base_quat))
    assert torch.allclose(cmd[:, 2], (0.5 * err).clamp(-1, 1))


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
    level_rough = [np.ptp(heights) for _ in range(1)]
    assert level_rough[0] > 0.1


def test_rough_task_spawns_on_tiles_moves_levels_and_scans_heights() -> None:
    terrain = TerrainCfg(kind="rough", num_levels=4, num_cols=3, tile_size=4.0, max_init_level=1)
    env = make(n=8, terrain=terrain)
    assert env.levels.max() <= 1
    obs = env.reset()
    assert obs["policy"].shape == (8, 48 + 187)
    ground = env.ground_height(env.base_pos[:, :2])
    assert ((env.base_pos[:, 2] - ground - 0.30).abs() < 1e-6).all()
    # A robot that walked the length of half a tile is promoted at its next reset.
    env.base_pos = env.base_pos.clone()
    env.base_pos[0, :2] = env.env_origin[0, :2] + torch.tensor([3.0, 0.0], dtype=env.dtype)
    level = env.levels[0].item()
    env.reset_envs(torch.tensor([True] + [False] * 7))
    assert env.levels[0].item() == level + 1
    # Scan of a flat platform under a level base at 0.30 m: 0.30 − 0.5 near the centre.
    assert obs["critic"].shape[1] > obs["policy"].shape[1] - 187
    for _ in range(3):
        _, _, _, _, extras = env.step(torch.zeros(8, 12))
    assert "terrain_level" in extras["log"]


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
