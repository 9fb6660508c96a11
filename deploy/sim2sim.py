"""Sim-to-sim: run the exact file that will go on the robot -- an exported ONNX policy behind the torch-free runtime and
its safety layer -- against the task in simulation (MuJoCo tasks on the ``cpu`` backend, whatever they trained on).

One :class:`~deploy.runtime.PolicyRuntime` per episode (as each robot has its own), one episode per parallel env.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from deploy.runtime import Fault, PolicyRuntime, SafetyConfig


@dataclass
class SimReport:
    """Task metrics of a sim-to-sim run."""

    task: str
    episodes: int
    mean_return: float
    returns: list[float]
    mean_length: float
    faults: dict[str, int] = field(default_factory=dict)
    safe_steps: int = 0
    policy_us_median: float = 0.0


def run_sim2sim(
    policy: str,
    task: str | None = None,
    episodes: int = 8,
    seed: int = 0,
    safety: SafetyConfig | None = None,
    backend: str = "cpu",
) -> SimReport:
    """Run ``episodes`` episodes of ``task`` (default: the one in the policy's metadata) with the ONNX ``policy``."""
    from rsl_rl.registry import get_task

    runtimes = [PolicyRuntime(policy, safety) for _ in range(episodes)]
    meta = runtimes[0].metadata
    task = task or meta.get("task")
    if not task:
        raise ValueError(f"{policy} records no task: pass one")
    spec = get_task(task)
    env_cfg = spec.env_cfg()
    env_cfg.num_envs = episodes
    if hasattr(env_cfg, "sim"):
        env_cfg.sim.backend = backend
    env = spec.build(env_cfg, device="cpu", seed=seed)
    groups = meta["observation"]["groups"]
    obs = env.reset()
    returns = np.zeros(episodes)
    lengths = np.zeros(episodes, dtype=np.int64)
    active = np.ones(episodes, dtype=bool)
    faults: dict[str, int] = {}
    safe_steps = 0
    timings: list[float] = []
    with torch.inference_mode():
        for _ in range(env.max_episode_length):
            x = torch.cat([obs[g] for g in groups], dim=-1).numpy()
            actions = np.zeros((episodes, meta["action"]["dim"]), dtype=np.float32)
            for i, runtime in enumerate(runtimes):
                if not active[i]:
                    continue
                result = runtime.step(x[i])
                actions[i] = result.action
                safe_steps += int(result.safe)
                timings.append(result.policy_seconds)
                for flag in Fault:
                    if flag and flag in result.fault:
                        faults[str(flag.name)] = faults.get(str(flag.name), 0) + 1
            obs, reward, terminated, truncated, _ = env.step(torch.from_numpy(actions))
            returns += np.where(active, reward.numpy(), 0.0)
            lengths += active
            active &= ~(terminated | truncated).numpy()
            if not active.any():
                break
    env.close()
    return SimReport(
        task=task,
        episodes=episodes,
        mean_return=float(returns.mean()),
        returns=returns.tolist(),
        mean_length=float(lengths.mean()),
        faults=faults,
        safe_steps=safe_steps,
        policy_us_median=float(np.median(timings) * 1e6) if timings else 0.0,
    )


def report_lines(report: SimReport) -> list[str]:
    lines = [f"episode {i}: return {r:.2f}" for i, r in enumerate(report.returns)]
    lines.append(
        f"{report.task}: mean return {report.mean_return:.2f} over {report.episodes} episodes, mean length "
        f"{report.mean_length:.0f}, safe fall-backs {report.safe_steps}, faults {report.faults or 'none'}, "
        f"policy call median {report.policy_us_median:.1f} µs"
    )
    return lines


__all__: list[Any] = ["SimReport", "report_lines", "run_sim2sim"]
