"""Builders shared by the wrapper tests: small real envs (MuJoCo hopper, pure-torch pendulum) and a spy wrapper."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
import torch

import tasks  # noqa: F401  (registers the tasks)
from rsl_rl.env import Env, StepResult
from rsl_rl.registry import get_task
from tasks.mujoco.sim import SimConfig
from tasks.wrappers.base import Wrapper, unwrap


def build_task(name: str, num_envs: int = 8, seed: int = 0, max_steps: int | None = None) -> Any:
    spec = get_task(name)
    cfg = spec.env_cfg_for("ppo") if name == "hopper" else spec.env_cfg()
    cfg.num_envs = num_envs
    if max_steps is not None:
        cfg.max_episode_steps = max_steps
    if hasattr(cfg, "sim"):
        cfg.sim = SimConfig(backend="cpu", nthread=1)
    return spec.build(cfg, device=torch.device("cpu"), seed=seed)


class Probe(Wrapper):
    """Records, at each step, the action it passes on, the forces the simulator is about to apply, and the inner
    step's final observations (a spy on what an outer wrapper hands inward; it changes nothing)."""

    def __init__(self, env: Env) -> None:
        super().__init__(env)
        self.actions: list[torch.Tensor] = []
        self.forces: list[torch.Tensor] = []
        self.final_obs: list[Any] = []

    def step(self, actions: torch.Tensor) -> StepResult:
        self.actions.append(actions.clone())
        sim = getattr(unwrap(self), "sim", None)
        if sim is not None:
            self.forces.append(sim.xfrc_applied.clone())
        out = self.env.step(actions)
        self.final_obs.append(out[4]["final_obs"].clone())
        return out


@pytest.fixture
def hopper() -> Callable[..., Any]:
    """``hopper(num_envs=8, seed=0, max_steps=None)``: the real MuJoCo hopper on the cpu backend."""
    return lambda **kw: build_task("hopper", **kw)


@pytest.fixture
def pendulum() -> Callable[..., Any]:
    """``pendulum(num_envs=8, seed=0, max_steps=None)``: gymnasium's Pendulum-v1 in torch."""
    return lambda **kw: build_task("pendulum", **kw)


@pytest.fixture
def probe() -> type[Probe]:
    return Probe
