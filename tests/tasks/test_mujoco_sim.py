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
    # Stepped: the heavier world moves differently, the others exactly as before.
    b.reset(mask, a.qpos.clone(), a.qvel.clone())  # same state in both, world 3 included
    heavier, same = rollout(a, actions[:10]), rollout(b, actions[:10])
    assert torch.equal(heavier[:, ~mask], same[:, ~mask])
    assert (heavier[:, mask] - same[:, mask]).abs().max().item() > 1e-3
    assert np.isfinite(a.qpos.numpy()).all()


SLIDER = """<mujoco><option timestep="0.01"/><worldbody><body name="slider"><joint name="x" type="slide" axis="1 0 0"/>
<geom type="sphere" size="0.05" mass="0.01" contype="0" conaffinity="0"/></body></worldbody>
<actuator><motor joint="x" ctrllimited="false"/></actuator></mujoco>"""


@pytest.mark.parametrize("fields", [(), ("cfrc_ext",)])  # the mujoco.batch path and the thread-pool path
def test_every_blow_up_is_reported_exactly_once(fields: tuple[str, ...]) -> None:
    """A light slider pushed with a huge but finite force makes MuJoCo flag a bad acceleration and reset the world
    itself. Every such blow-up -- the second and later ones of a world, of a thread, back to back, and right after a
    reset -- is reported in the step it happens and in no other step (an infinite force would be zeroed by MuJoCo's
    bad-ctrl check instead)."""
    n = 6
    cfg = SimConfig(backend="cpu", nthread=2)
    sim = Simulator(mujoco.MjModel.from_xml_string(SLIDER), n, "cpu", 2, fields, (), cfg)
    zeros = torch.zeros(n, 1, dtype=torch.float64)
    expected, reported = torch.zeros(n, dtype=torch.long), torch.zeros(n, dtype=torch.long)
    for t in range(40):
        # World w blows up in steps t with (t + w) % 5 in {0, 1}: twice in a row, then three quiet steps.
        blow = torch.tensor([(t + w) % 5 < 2 for w in range(n)])
        sim.ctrl[:, 0] = torch.where(blow, 9e9, 0.1)
        unstable = sim.step()
        assert unstable.tolist() == blow.tolist(), f"step {t}"
        expected += blow
        reported += unstable
        sim.reset(unstable, zeros, zeros)  # what a task does with a reported world
    assert expected.min().item() >= 15
    assert torch.equal(reported, expected)


def _compiled_with_heavier_torso(factor: float) -> mujoco.MjModel:
    """Hopper compiled afresh with the torso's mass scaled (inertia and centre of mass as compiled before)."""
    base = load_model(HOPPER)
    spec = mujoco.MjSpec.from_file(HOPPER)
    spec.compiler.inertiafromgeom = mujoco.mjtInertiaFromGeom.mjINERTIAFROMGEOM_AUTO  # explicit inertials win
    torso = spec.body("torso")
    torso.explicitinertial = True
    torso.mass = base.body("torso").mass[0] * factor
    compiled = base.body("torso")
    torso.inertia, torso.ipos, torso.iquat = compiled.inertia, compiled.ipos, compiled.iquat
    return spec.compile()


@pytest.mark.parametrize(("backend", "fields"), [("cpu", ()), ("cpu", ("cfrc_ext",)), ("warp", ())])
def test_changed_mass_matches_a_model_compiled_with_it(backend: str, fields: tuple[str, ...]) -> None:
    """Changing a world's mass through the facade also updates what MuJoCo derives from it when compiling (subtree
    masses, the inverse weights that scale contact softness, actuator_acc0): that world then moves, step for step with
    contacts, like a model compiled with the new mass, and the other worlds like the original model."""
    if backend == "warp" and not warp_available():
        pytest.skip("mujoco-warp is not installed")
    n = 4
    cfg = SimConfig(backend=backend, nthread=2)
    sim = Simulator(load_model(HOPPER), n, "cpu", 4, fields, ("body_mass",), cfg)
    heavy_sim = Simulator(_compiled_with_heavier_torso(3.0), n, "cpu", 4, fields, (), cfg)
    plain_sim = Simulator(load_model(HOPPER), n, "cpu", 4, fields, (), cfg)
    assert (heavy_sim.model.body_subtreemass != plain_sim.model.body_subtreemass).any()
    mass = sim.params["body_mass"].clone()
    mass[:, 1] *= 3.0
    heavy = torch.tensor([True, False, True, False])
    sim.set_params("body_mass", mass, heavy)
    everyone = torch.ones(n, dtype=torch.bool)
    for s in (sim, heavy_sim, plain_sim):
        s.reset(everyone, *initial_state(sim))
    actions = smooth_actions(120, n, sim.model.nu)
    ours, compiled, plain = rollout(sim, actions), rollout(heavy_sim, actions), rollout(plain_sim, actions)
    tol = 1e-9 if backend == "cpu" else 2e-4  # float64 vs float32
    assert (ours[:, heavy] - compiled[:, heavy]).abs().max().item() < tol
    assert (ours[:, ~heavy] - plain[:, ~heavy]).abs().max().item() < tol
