"""The simulation layer on a CUDA device: Warp with and without its CUDA graph, Warp against MuJoCo C, the cpu
backend's worlds mirrored onto the GPU, and a task stepping without a host sync.

Skipped where torch sees no CUDA device (CI has none); on a GPU machine: ``pytest tests/tasks/test_mujoco_cuda.py``.
"""

from __future__ import annotations

from typing import Any

import pytest
import torch
from worlds import initial_state, make, rollout, smooth_actions

from rsl_rl.registry import get_task
from tasks.mujoco.warp_backend import warp_available

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
warp = pytest.mark.skipif(not warp_available(), reason="mujoco-warp is not installed")


@warp
def test_cuda_graph_replays_the_eager_step() -> None:
    """The captured decimated step and the same kernels launched one by one give the same trajectory. (Not
    bit-identical by contract: mujoco_warp gathers contacts with atomics, whose order may differ between launches.)"""
    graph, eager = make("warp", device="cuda"), make("warp", device="cuda", cuda_graph=False)
    assert graph.backend._graph is not None and eager.backend._graph is None
    everyone = torch.ones(6, dtype=torch.bool)
    for sim in (graph, eager):
        sim.reset(everyone, *initial_state(sim))
    actions = smooth_actions(50, 6, graph.model.nu, amplitude=0.3)
    assert (rollout(graph, actions) - rollout(eager, actions)).abs().max().item() < 1e-5


@warp
def test_warp_on_cuda_matches_cpu_over_100_steps() -> None:
    """Hopper with contacts, smooth actions, 100 env steps: the same tolerances as Warp's CPU device (float32 vs
    float64) in tests/tasks/test_mujoco_sim.py."""
    cpu, gpu = make("cpu"), make("warp", device="cuda")
    everyone = torch.ones(6, dtype=torch.bool)
    for sim in (cpu, gpu):
        sim.reset(everyone, *initial_state(cpu))
    actions = smooth_actions(100, 6, cpu.model.nu, amplitude=0.3)
    a, b = rollout(cpu, actions), rollout(gpu, actions)
    nq = cpu.model.nq
    assert gpu.qpos.is_cuda and gpu.dtype == torch.float32
    assert (a[..., :nq] - b[..., :nq]).abs().max().item() < 1e-4
    assert (a[..., nq:] - b[..., nq:]).abs().max().item() < 1e-3


@pytest.mark.parametrize("fields", [(), ("cfrc_ext",)], ids=["mujoco.batch", "thread-pool"])
def test_cpu_backend_mirrors_its_worlds_onto_cuda(fields: tuple[str, ...]) -> None:
    """MuJoCo C stepping host worlds for a CUDA-resident task: the same trajectory, masked reset and per-world
    parameters as on the CPU, bit for bit, with every tensor the task sees on the GPU."""
    host, mirrored = (
        make("cpu", fields=fields, params=("body_mass",)),
        make("cpu", fields=fields, params=("body_mass",), device="cuda"),
    )
    assert mirrored.qpos.is_cuda and mirrored.ctrl.is_cuda and mirrored.params["body_mass"].is_cuda
    everyone = torch.ones(6, dtype=torch.bool)
    for sim in (host, mirrored):
        sim.reset(everyone, *initial_state(sim))
    actions = smooth_actions(40, 6, host.model.nu)
    assert torch.equal(rollout(host, actions[:20]), rollout(mirrored, actions[:20]))
    mask = torch.tensor([False, True, False, False, True, False])
    heavy = host.params["body_mass"] * 1.5
    for sim in (host, mirrored):
        sim.reset(mask.to(sim.device), *initial_state(sim, seed=3))
        sim.set_params("body_mass", heavy.to(sim.device), mask.to(sim.device))
    assert torch.equal(host.params["body_mass"], mirrored.params["body_mass"].cpu())
    assert torch.equal(rollout(host, actions[20:]), rollout(mirrored, actions[20:]))
    if fields:
        assert torch.equal(host.data["cfrc_ext"], mirrored.data["cfrc_ext"].cpu())


@warp
@pytest.mark.parametrize("task", ["ant", "go1-flat"])
def test_env_steps_on_cuda_without_a_host_sync(task: str) -> None:
    """On the default CUDA backend (warp) a whole env step -- actions, physics (go1: torch PD between physics steps,
    randomisation events, pushes), rewards, terminations, masked resets -- never waits on the GPU: torch's sync debug
    mode turns any synchronising call into an error. (The cpu backend on CUDA syncs by design: its worlds live on the
    host.)"""
    spec = get_task(task)
    cfg = spec.env_cfg()
    cfg.num_envs = 64
    env: Any = spec.build(cfg, device="cuda", seed=0)
    assert env.sim.backend_name == "warp"
    g = torch.Generator(device="cuda").manual_seed(0)
    actions = [2.0 * torch.rand(64, env.num_actions, generator=g, device="cuda") - 1.0 for _ in range(105)]
    done_total = torch.zeros((), dtype=torch.long, device="cuda")
    with torch.inference_mode():
        for a in actions[:5]:  # warm-up: lazy allocations, kernel loading
            env.step(a)
        torch.cuda.synchronize()
        torch.cuda.set_sync_debug_mode("error")
        try:
            for a in actions[5:]:  # random actions end episodes (the Ant leaves its healthy height, go1 falls)
                obs, reward, terminated, truncated, _ = env.step(a)
                done_total += (terminated | truncated).sum()
        finally:
            torch.cuda.set_sync_debug_mode("default")
    assert obs["policy"].is_cuda and reward.is_cuda
    assert torch.isfinite(obs["policy"]).all() and torch.isfinite(reward).all()
    assert done_total.item() > 0
