"""The simulator facade and its backends: equivalence, masked resets, per-world parameters, errors."""

from __future__ import annotations

from pathlib import Path

import mujoco
import numpy as np
import pytest
import torch
from worlds import HOPPER, initial_state, make, rollout, smooth_actions

from tasks.mujoco.sim import SimConfig, Simulator, load_model
from tasks.mujoco.warp_backend import warp_available
from tasks.rrls.ant import AntCfg, AntEnv
from tasks.rrls.hopper import HopperCfg, HopperEnv

# pyright: reportAttributeAccessIssue=false
# (mujoco's compiled modules are re-exported with `import *`, which pyright cannot follow)


def test_batch_and_thread_pool_paths_are_bit_identical() -> None:
    batch, pool = make("cpu"), make("cpu", fields=("cfrc_ext",))  # cfrc_ext selects the thread-pool path
    assert type(batch.backend).__name__ == "BatchBackend" and type(pool.backend).__name__ == "ThreadPoolBackend"
    everyone = torch.ones(6, dtype=torch.bool)
    for sim in (batch, pool):
        sim.reset(everyone, *initial_state(sim))
    actions = smooth_actions(60, 6, batch.model.nu)
    assert torch.equal(rollout(batch, actions), rollout(pool, actions))


@pytest.mark.parametrize("fields", [(), ("cfrc_ext",)])
def test_masked_reset_leaves_other_worlds_untouched(fields: tuple[str, ...]) -> None:
    a, b = make("cpu", fields=fields), make("cpu", fields=fields)
    everyone = torch.ones(6, dtype=torch.bool)
    for sim in (a, b):
        sim.reset(everyone, *initial_state(sim))
    actions = smooth_actions(30, 6, a.model.nu)
    rollout(a, actions[:10])
    rollout(b, actions[:10])
    mask = torch.tensor([True, False, True, False, False, False])
    b.reset(mask, *initial_state(b, seed=1))
    after_a, after_b = rollout(a, actions[10:]), rollout(b, actions[10:])
    assert torch.equal(after_a[:, ~mask], after_b[:, ~mask])
    assert not torch.allclose(after_a[:, mask], after_b[:, mask])


def test_per_world_parameters_change_only_their_worlds() -> None:
    sim, reference = make("cpu", params=("body_mass", "geom_friction")), make("cpu")
    everyone = torch.ones(6, dtype=torch.bool)
    for s in (sim, reference):
        s.reset(everyone, *initial_state(s))
    heavy = sim.params["body_mass"].clone()
    heavy[:, 1] *= 3.0  # the torso
    mask = torch.tensor([False, True, False, False, False, True])
    sim.set_params("body_mass", heavy, mask)
    assert sim.params["body_mass"][1, 1].item() == pytest.approx(3.0 * sim.default_param("body_mass")[1].item())
    assert sim.params["body_mass"][0, 1].item() == pytest.approx(sim.default_param("body_mass")[1].item())
    actions = smooth_actions(40, 6, sim.model.nu)
    changed, same = rollout(sim, actions), rollout(reference, actions)
    assert torch.equal(changed[:, ~mask], same[:, ~mask])
    assert not torch.allclose(changed[:, mask], same[:, mask])
    with pytest.raises(KeyError, match="not declared per-world"):
        sim.set_params("dof_damping", torch.zeros(6, sim.model.nv))


def test_errors_name_what_is_wrong(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="no_such.xml"):
        load_model(tmp_path / "no_such.xml")
    bad = tmp_path / "bad.xml"
    bad.write_text("<mujoco><worldbody><geom type='sphere'/></worldbody></mujoco>")
    with pytest.raises(ValueError, match="could not load .*bad.xml"):
        load_model(bad)
    sim = make("cpu", fields=("sensordata",))
    with pytest.raises(KeyError, match="no sensor named 'imu'"):
        sim.sensor("imu")
    with pytest.raises(ValueError, match="unknown data field 'xvel'; available"):
        make("cpu", fields=("xvel",))
    with pytest.raises(ValueError, match="cannot vary per world; allowed"):
        make("cpu", params=("nq",))
    with pytest.raises(ValueError, match="backend"):
        SimConfig(backend="physx")
    with pytest.raises(ValueError, match="sim.solver='sor'; allowed: .*'newton'"):
        SimConfig(solver="sor")
    with pytest.raises(ValueError, match="sim.cone='round'; allowed: .*'elliptic'"):
        SimConfig(cone="round")


def test_solver_and_cone_overrides_reach_the_model() -> None:
    sim = Simulator(load_model(HOPPER), 2, "cpu", 1, (), (), SimConfig(backend="cpu", solver="cg", cone="elliptic"))
    assert sim.model.opt.solver == mujoco.mjtSolver.mjSOL_CG
    assert sim.model.opt.cone == mujoco.mjtCone.mjCONE_ELLIPTIC
    assert load_model(HOPPER).opt.cone == mujoco.mjtCone.mjCONE_PYRAMIDAL  # the file's own setting, untouched


warp = pytest.mark.skipif(not warp_available(), reason="mujoco-warp is not installed")


@warp
def test_warp_matches_cpu_over_100_steps() -> None:
    """Hopper with contacts, smooth actions, 100 env steps (400 physics steps): Warp (float32) tracks MuJoCo C
    (float64) to 1e-4 in qpos and 1e-3 in qvel. (With actions that make the hopper fall flat, the impacts amplify the
    float32 rounding: ~2e-3 in qpos by step 100. The six gymnasium tasks are compared step by step in
    tests/tasks/test_rrls.py.)"""
    cpu, gpu = make("cpu"), make("warp")
    everyone = torch.ones(6, dtype=torch.bool)
    for sim in (cpu, gpu):
        sim.reset(everyone, *initial_state(cpu))
    actions = smooth_actions(100, 6, cpu.model.nu, amplitude=0.3)
    a, b = rollout(cpu, actions), rollout(gpu, actions)
    assert gpu.dtype == torch.float32
    nq = cpu.model.nq
    assert (a[..., :nq] - b[..., :nq]).abs().max().item() < 1e-4
    assert (a[..., nq:] - b[..., nq:]).abs().max().item() < 1e-3


@warp
def test_warp_runs_a_pgs_model_with_newton_and_says_so() -> None:
    model = load_model(HOPPER)
    model.opt.solver = mujoco.mjtSolver.mjSOL_PGS
    with pytest.warns(UserWarning, match="PGS solver, which mujoco_warp does not have: .* runs Newton"):
        sim = Simulator(model, 2, "cpu", 1, (), (), SimConfig(backend="warp"))
    assert sim.model.opt.solver == mujoco.mjtSolver.mjSOL_NEWTON
    sim.step()
    assert torch.isfinite(sim.qpos).all()


@warp
def test_warp_buffer_overflows_are_reset_or_counted_not_printed(capfd: pytest.CaptureFixture[str]) -> None:
    """Constraint rows beyond sim.njmax make that world's physics wrong: it is reported unstable (the task resets and
    counts it). Contacts beyond the pool shared by all worlds (sim.nconmax) are counted per step. Neither floods the log
    with mujoco_warp's per-world kernel printf: the runner logs the counts once per iteration."""
    few_rows = HopperEnv(HopperCfg(num_envs=4, sim=SimConfig(backend="warp", njmax=2)))
    few_contacts = AntEnv(AntCfg(num_envs=2, sim=SimConfig(backend="warp", nconmax=1)))
    resets = pool = 0
    for _ in range(30):
        obs, _, _, _, extras = few_rows.step(torch.zeros(4, few_rows.num_actions))
        resets += int(extras["counts"]["invalid_physics_resets"])
        assert torch.isfinite(obs["policy"]).all()
        _, _, _, _, extras = few_contacts.step(torch.zeros(2, few_contacts.num_actions))
        pool += int(extras["counts"]["contact_overflow"])
    assert resets > 0 and pool > 0
    assert "overflow" not in capfd.readouterr().out
    fine = HopperEnv(HopperCfg(num_envs=4, sim=SimConfig(backend="warp")))
    for _ in range(30):
        _, _, _, _, extras = fine.step(torch.zeros(4, fine.num_actions))
        assert int(extras["counts"]["invalid_physics_resets"]) == 0
        assert int(extras["counts"]["contact_overflow"]) == 0


@warp
def test_warp_masked_reset_and_parameters() -> None:
    a, b = make("warp", params=("body_mass",)), make("warp", params=("body_mass",))
    everyone = torch.ones(6, dtype=torch.bool)
    for sim in (a, b):
        sim.reset(everyone, *initial_state(sim))
    actions = smooth_actions(20, 6, a.model.nu)
    rollout(a, actions[:10])
    rollout(b, actions[:10])
    mask = torch.tensor([False, False, False, True, False, False])
    b.reset(mask, *initial_state(b, seed=2))
    # Reset runs forward on every world; the others' fields and warm-start are restored: bit-identical futures.
    after_a, after_b = rollout(a, actions[10:]), rollout(b, actions[10:])
    assert torch.equal(after_a[:, ~mask], after_b[:, ~mask])
    assert not torch.allclose(after_a[:, mask], after_b[:, mask])
    heavy = a.params["body_mass"].clone() * 2.0
    a.set_params("body_mass", heavy, mask)
    assert torch.equal(a.params["body_mass"][3], heavy[3])
    assert torch.equal(a.params["body_mass"][0], b.params["body_mass"][0])
    assert np.isfinite(a.qpos.numpy()).all()
