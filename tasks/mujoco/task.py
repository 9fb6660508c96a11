"""Base of the MuJoCo tasks: a :class:`Simulator` of N worlds, actions as actuator controls, masked resets.

A task subclass names the data fields it reads (``fields``), the per-world parameters it may randomise (``params``),
and implements ``observe`` and ``terminated``; reward terms read ``env.sim`` tensors. Physics that turns non-finite is
caught by the simulator: the world ends its episode, is reset, and is counted (``extras["counts"]``), so observations
never carry NaN. The same task runs on either backend (``cfg.sim.backend``).
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from tasks.mujoco.sim import SimConfig, Simulator, load_model
from tasks.task import BatchedTask


@dataclass
class MujocoTaskCfg:
    """Settings every MuJoCo task has."""

    num_envs: int = 64
    """Parallel worlds."""
    max_episode_steps: int = 1000
    """Truncation length in env steps."""
    decimation: int = 5
    """Physics steps per env step (gymnasium's frame_skip)."""
    reset_noise_scale: float = 0.1
    """Scale of the initial-state noise."""
    clip_actions: bool = True
    """Clip actions to the actuators' control range before they act and are penalised (what SB3 and rsl_rl do)."""
    model_file: str = ""
    """MJCF file; empty = the task's default model."""
    sim: SimConfig = field(default_factory=SimConfig)
    """Backend and its settings."""


def gymnasium_asset(name: str) -> str:
    """Path of an MJCF file that the gymnasium package ships (``envs/mujoco/assets``)."""
    try:
        import gymnasium
    except ImportError as err:
        raise ImportError("the gymnasium MuJoCo tasks need gymnasium: pip install 'rsl-rl-forge[mujoco]'") from err
    return os.path.join(os.path.dirname(gymnasium.__file__), "envs", "mujoco", "assets", name)


class MujocoTask(BatchedTask):
    """A batched task on the MuJoCo simulation layer."""

    fields: tuple[str, ...] = ()
    """Data fields the task reads besides qpos and qvel."""
    params: tuple[str, ...] = ()
    """Model parameters the task may set per world."""

    def __init__(self, cfg: Any, device: torch.device | str = "cpu", seed: int = 0) -> None:
        if cfg.num_envs < 1:
            raise ValueError(f"num_envs must be >= 1, got {cfg.num_envs}")
        self.cfg = cfg
        self.device = torch.device(device)
        model = self.build_model()
        self.sim = Simulator(model, cfg.num_envs, self.device, self.sim_decimation(), self.fields, self.params, cfg.sim)
        self.model = model
        self.dtype = self.sim.dtype
        self.num_envs = cfg.num_envs
        self.num_actions = model.nu
        self.max_episode_length = cfg.max_episode_steps
        # One env step is cfg.decimation physics steps, whether sim.step() covers them all or the task loops them.
        self.step_dt = float(model.opt.timestep) * cfg.decimation
        limited = model.actuator_ctrllimited.astype(bool)
        ctrl_range = np.where(limited[:, None], model.actuator_ctrlrange, [-np.inf, np.inf])
        self.ctrl_low = torch.as_tensor(ctrl_range[:, 0], dtype=self.dtype, device=self.device)
        self.ctrl_high = torch.as_tensor(ctrl_range[:, 1], dtype=self.dtype, device=self.device)
        self.init_qpos = torch.as_tensor(model.qpos0, dtype=self.dtype, device=self.device)
        self.init_qvel = torch.zeros(model.nv, dtype=self.dtype, device=self.device)
        self.generator = torch.Generator(device=self.device)
        self.generator.manual_seed(seed)
        self.init_buffers()
        self.reset()

    # --- what a task defines or may override -------------------------------------------------------------------------

    def build_model(self) -> Any:
        """The ``MjModel`` of one world (default: ``cfg.model_file`` or the task's default file)."""
        return load_model(self.cfg.model_file or self.default_model_file())

    def sim_decimation(self) -> int:
        """Physics steps per ``sim.step()``: ``cfg.decimation``, or 1 for a task that acts between physics steps."""
        return self.cfg.decimation

    def default_model_file(self) -> str:
        """MJCF used when ``cfg.model_file`` is empty."""
        raise NotImplementedError(f"{type(self).__name__} names no default model: set cfg.model_file")

    def sample_reset_state(self) -> tuple[torch.Tensor, torch.Tensor]:
        """Initial ``(qpos, qvel)`` for every world: the model's default pose plus U(±noise) on both (gymnasium's
        Hopper/Walker rule; tasks with another rule override this)."""
        s = self.cfg.reset_noise_scale
        return self.init_qpos + self.uniform(-s, s, self.sim.model.nq), self.init_qvel + self.uniform(
            -s, s, self.sim.model.nv
        )

    def before_physics(self) -> None:
        """Hook run right before the physics step (e.g. to remember positions for a velocity reward)."""

    def observation_terms(self) -> list[tuple[str, int]]:
        """The ``policy`` group's terms in order, for deployment metadata (default: one term)."""
        return [("policy", int(self.get_observations()["policy"].shape[-1]))]

    def deployment_spec(self) -> dict[str, Any]:
        """Observation terms, and actuators as the action layout (position actuators also give their PD gains).

        The bounds are the control ranges: ``process_action`` clips to them (``clip_actions``), and where it does not,
        MuJoCo clamps ``ctrl`` to them before it acts, so the runtime's clip gives the physics of training. A model
        that turns MuJoCo's clamping off and a task that does not clip leave the actions unbounded.
        """
        import mujoco  # here only: the rest of the task reaches MuJoCo through the simulator

        m = self.model
        names = [m.actuator(i).name or f"actuator_{i}" for i in range(m.nu)]
        no_clamp = mujoco.mjtDisableBit.mjDSBL_CLAMPCTRL  # pyright: ignore[reportAttributeAccessIssue]
        clamped = self.cfg.clip_actions or not m.opt.disableflags & no_clamp
        unbounded = [None] * m.nu
        action: dict[str, Any] = {
            "names": names,
            "default": [0.0] * m.nu,
            "scale": [1.0] * m.nu,
            "low": self.ctrl_low.tolist() if clamped else unbounded,
            "high": self.ctrl_high.tolist() if clamped else unbounded,
            "command": "actuator",  # the action is the actuator's ctrl
            "limit": "clip",
            "last_action": None,  # the gymnasium observations hold no action
        }
        # A position actuator is gain kp on ctrl with bias (0, −kp, −kd): report its PD gains.
        position = (m.actuator_gaintype == 0) & (m.actuator_biastype == 1)
        if position.all() and m.nu > 0:
            action["kp"] = m.actuator_gainprm[:, 0].tolist()
            action["kd"] = (-m.actuator_biasprm[:, 2]).tolist()
        return {"observation": {"policy": self.observation_terms()}, "action": action}

    # --- helpers -----------------------------------------------------------------------------------------------------

    def uniform(self, low: float, high: float, dim: int) -> torch.Tensor:
        u = torch.rand(self.num_envs, dim, generator=self.generator, dtype=self.dtype, device=self.device)
        return low + (high - low) * u

    def normal(self, dim: int) -> torch.Tensor:
        return torch.randn(self.num_envs, dim, generator=self.generator, dtype=self.dtype, device=self.device)

    # --- BatchedTask -------------------------------------------------------------------------------------------------

    def process_action(self, actions: torch.Tensor) -> torch.Tensor:
        actions = actions.to(self.dtype)
        return torch.clamp(actions, self.ctrl_low, self.ctrl_high) if self.cfg.clip_actions else actions

    def physics_step(self) -> torch.Tensor:
        self.before_physics()
        self.sim.ctrl.copy_(self.action)
        return self.sim.step()

    def step_counts(self) -> dict[str, torch.Tensor]:
        return self.sim.take_counts()

    def reset_envs(self, mask: torch.Tensor) -> None:
        qpos, qvel = self.sample_reset_state()
        self.sim.reset(mask, qpos, qvel)

    def state_dict(self) -> dict[str, Any]:
        """Episode bookkeeping and RNG (:class:`BatchedTask`) plus every world's simulator state."""
        return {**super().state_dict(), "sim": self.sim.state_dict()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        super().load_state_dict(state)
        self.sim.load_state_dict(state["sim"])

    def render(self, worlds: tuple[int, ...] = (0,), width: int = 640, height: int = 480) -> np.ndarray:
        """Offscreen frames ``uint8 [len(worlds), H, W, 3]`` of the chosen worlds."""
        return self.sim.render(worlds, width, height)

    def close(self) -> None:
        self.sim.close()
