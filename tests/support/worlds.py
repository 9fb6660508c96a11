"""Helpers for simulator tests: a Hopper batch, reproducible initial states, smooth actions, recorded rollouts."""

from __future__ import annotations

import torch

from tasks.mujoco.sim import SimConfig, Simulator, load_model
from tasks.mujoco.task import gymnasium_asset

HOPPER = gymnasium_asset("hopper.xml")


def make(
    backend: str,
    n: int = 6,
    fields: tuple[str, ...] = (),
    params: tuple[str, ...] = (),
    device: str = "cpu",
    cuda_graph: bool = True,
) -> Simulator:
    """``n`` Hopper worlds, decimation 4."""
    cfg = SimConfig(backend=backend, nthread=2, cuda_graph=cuda_graph)
    return Simulator(load_model(HOPPER), n, device, 4, fields, params, cfg)


def initial_state(sim: Simulator, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """The model's default pose plus small seeded noise, float64 on the CPU (``Simulator.reset`` moves it)."""
    g = torch.Generator().manual_seed(seed)
    n, m = sim.num_worlds, sim.model
    qpos = torch.from_numpy(m.qpos0).expand(n, -1) + 0.005 * torch.rand(n, m.nq, generator=g, dtype=torch.float64)
    qvel = 0.005 * torch.rand(n, m.nv, generator=g, dtype=torch.float64)
    return qpos, qvel


def smooth_actions(steps: int, n: int, nu: int, amplitude: float = 0.8) -> torch.Tensor:
    """``[steps, n, nu]`` sines with a different phase per world and actuator."""
    t = torch.arange(steps, dtype=torch.float64).view(-1, 1, 1)
    phase = torch.arange(n * nu, dtype=torch.float64).view(1, n, nu)
    return amplitude * torch.sin(0.3 * t + phase)


def rollout(sim: Simulator, actions: torch.Tensor) -> torch.Tensor:
    """Apply each row of ``actions`` for one step; ``[steps, n, nq + nv]`` states after each, float64 on the CPU."""
    states = []
    for a in actions:
        sim.ctrl[:] = a.to(sim.device, sim.dtype)
        sim.step()
        states.append(torch.cat([sim.qpos, sim.qvel], dim=-1).double().cpu())
    return torch.stack(states)
