"""Sim-to-sim: run the exact file that will go on the robot -- an exported ONNX policy behind the torch-free runtime and
its safety layer -- against the task in simulation (MuJoCo tasks on the ``cpu`` backend, whatever they trained on).

The task is rebuilt from the env config embedded in the policy's metadata (the one it was trained with, ``--env.*``
overrides included), and its deployment spec must match the metadata (action layout, bounds, gains, observation
terms): a mismatch is an error, never a silently different test. One :class:`~deploy.runtime.PolicyRuntime` per
episode (as each robot has its own), one episode per parallel env; the runtime keeps a history student's observation
history itself.
"""

from __future__ import annotations

import math
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
    observations: list[np.ndarray] = field(default_factory=list)
    """With ``record``: per episode, the observations given to the runtime ``[steps, obs_dim]``."""
    actions: list[np.ndarray] = field(default_factory=list)
    """With ``record``: per episode, the runtime's actions ``[steps, action_dim]``."""


def run_sim2sim(
    policy: str,
    task: str | None = None,
    episodes: int = 8,
    seed: int = 0,
    safety: SafetyConfig | None = None,
    backend: str = "cpu",
    max_steps: int | None = None,
    record: bool = False,
) -> SimReport:
    """Run ``episodes`` episodes of ``task`` (default: the one in the policy's metadata) with the ONNX ``policy``,
    each at most ``max_steps`` steps (default: the task's episode length)."""
    from rsl_rl.cli.env_config import env_config_for
    from rsl_rl.registry import get_task

    runtimes = [PolicyRuntime(policy, safety) for _ in range(episodes)]
    meta = runtimes[0].metadata
    task = task or meta.get("task")
    if not task:
        raise ValueError(f"{policy} records no task: pass one")
    spec = get_task(task)
    env_cfg = env_config_for(spec, meta.get("env_config") if meta.get("task") == task else None)
    env_cfg.num_envs = episodes
    if hasattr(env_cfg, "sim"):
        env_cfg.sim.backend = backend
    env = spec.build(env_cfg, device="cpu", seed=seed)
    try:
        check_task_matches(meta, env.deployment_spec(), f"{policy} (task '{task}')")
    except ValueError:
        env.close()
        raise
    groups = meta["observation"]["groups"]
    horizon = env.max_episode_length if max_steps is None else min(max_steps, env.max_episode_length)
    obs = env.reset()
    returns = np.zeros(episodes)
    lengths = np.zeros(episodes, dtype=np.int64)
    active = np.ones(episodes, dtype=bool)
    faults: dict[str, int] = {}
    safe_steps = 0
    timings: list[float] = []
    seen: list[list[np.ndarray]] = [[] for _ in range(episodes)]
    done: list[list[np.ndarray]] = [[] for _ in range(episodes)]
    with torch.inference_mode():
        for _ in range(horizon):
            # Images are flattened C·H·W, as the export lays them out.
            x = torch.cat([obs[g].flatten(1) for g in groups], dim=-1).numpy()
            actions = np.zeros((episodes, meta["action"]["dim"]), dtype=np.float32)
            for i, runtime in enumerate(runtimes):
                if not active[i]:
                    continue
                result = runtime.step(x[i])
                actions[i] = result.action
                if record:
                    seen[i].append(x[i].copy())
                    done[i].append(result.action)
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
        observations=[np.stack(rows) for rows in seen if rows],
        actions=[np.stack(rows) for rows in done if rows],
    )


def check_task_matches(meta: dict[str, Any], env_spec: dict[str, Any], source: str) -> None:
    """Raise ``ValueError`` where the simulated task's deployment spec differs from the policy's metadata: the action
    layout, bounds, gains and meaning, and the observation terms of the policy's groups."""
    from deploy.export import action_layout

    expected = action_layout(env_spec.get("action", {}), int(meta["action"]["dim"]))
    for key, policy_value in meta["action"].items():
        if key in expected and not _same(expected[key], policy_value):
            raise ValueError(
                f"{source}: the simulated task differs from the policy's metadata in action.{key} (task: "
                f"{expected[key]}, policy: {policy_value}); rebuild the task with the config the policy was trained "
                "with"
            )
    described = env_spec.get("observation", {})
    for group in meta["observation"]["groups"]:
        if group not in described:
            continue
        policy_terms = [(t["name"], t["size"]) for t in meta["observation"]["terms"] if t["group"] == group]
        task_terms = [(name, size) for name, size in described[group]]
        if policy_terms != task_terms:
            raise ValueError(
                f"{source}: the simulated task's '{group}' observation terms {task_terms} differ from the policy's "
                f"{policy_terms}"
            )


def _same(a: Any, b: Any) -> bool:
    """Equal, numbers to float32 precision (the spec comes from float32 tensors, the metadata through JSON)."""
    if isinstance(a, (list, tuple)) and isinstance(b, (list, tuple)):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, (int, float)) and isinstance(b, (int, float)) and not isinstance(a, bool):
        return math.isclose(a, b, rel_tol=1e-6, abs_tol=1e-7)
    return a == b


def report_lines(report: SimReport) -> list[str]:
    lines = [f"episode {i}: return {r:.2f}" for i, r in enumerate(report.returns)]
    lines.append(
        f"{report.task}: mean return {report.mean_return:.2f} over {report.episodes} episodes, mean length "
        f"{report.mean_length:.0f}, safe fall-backs {report.safe_steps}, faults {report.faults or 'none'}, "
        f"policy call median {report.policy_us_median:.1f} µs"
    )
    return lines


__all__: list[Any] = ["SimReport", "check_task_matches", "report_lines", "run_sim2sim"]
