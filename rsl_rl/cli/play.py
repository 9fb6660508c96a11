"""``rsl-rl play``, ``rsl-rl export`` and ``rsl-rl deploy-sim``: the commands that take a trained checkpoint or an
exported policy (dispatched from :mod:`rsl_rl.cli.main`)."""

from __future__ import annotations

import dataclasses
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import tyro

from rsl_rl.cli.env_config import checkpoint_env_config
from rsl_rl.cli.run_support import (
    acting_runner,
    default_device,
    get_task_or_exit,
    load_checkpoint_file,
    resolve_device,
    seed_everything,
    set_backend,
    set_config_field,
    task_from_run_dir,
)


@dataclass
class PlayArgs:
    """Run a trained policy deterministically and print each episode's return."""

    checkpoint: Path
    """Checkpoint file, or a run directory (its latest model_<it>.pt)."""
    task: str | None = None
    """Task (default: the one recorded in the checkpoint)."""
    num_envs: int = 8
    """Episodes to run (one per parallel env)."""
    seed: int = 0
    """Seed of the env's initial states."""
    device: str = dataclasses.field(default_factory=default_device)
    """cpu, cuda or cuda:N."""
    video: Path | None = None
    """Write an MP4 of the episodes (tasks that render, e.g. MuJoCo tasks)."""
    video_worlds: int = 1
    """Worlds shown side by side in the video."""
    video_size: tuple[int, int] = (480, 360)
    """Width and height of one world's frame."""
    backend: str | None = None
    """Simulation backend of MuJoCo tasks: cpu or warp."""
    env_set: tuple[str, ...] = ()
    """Env-config overrides ``FIELD.PATH=VALUE`` (Python literals), e.g. ``commands.lin_vel_x=(1.0,1.0)``."""
    jsrl_combined: bool = False
    """A jump-start RL run: play the combined policy (its guide for the first h steps of every episode, h of the
    checkpoint's curriculum stage or drawn per episode in random mode, then the learner) instead of the learner
    alone (what is exported and deployed)."""


def play(argv: Sequence[str]) -> int:
    args = tyro.cli(PlayArgs, args=list(argv), prog="rsl-rl play")
    device = resolve_device(args.device)
    path, state = load_checkpoint_file(args.checkpoint)
    task = args.task or (state.get("infos") or {}).get("task") or task_from_run_dir(path)
    if task is None:
        print("error: the checkpoint does not record its task; pass --task NAME", file=sys.stderr)
        return 2
    spec = get_task_or_exit(task)
    seed_everything(args.seed)
    env_cfg = checkpoint_env_config(spec, state)  # the env it was trained in, --env.* overrides included
    env_cfg.num_envs = args.num_envs
    set_backend(env_cfg, args.backend, spec.name)
    for assignment in args.env_set:
        set_config_field(env_cfg, assignment)
    env = spec.build(env_cfg, device=device, seed=args.seed)
    runner = acting_runner(env, spec, state, path, device)
    policy = None  # the runner's deterministic learner
    if args.jsrl_combined:
        from rsl_rl.cli.jsrl_support import combined_policy

        policy, description = combined_policy(state, runner.get_inference_policy(device), spec, env, device)
        print(description)
    elif "jsrl" in state:
        print("learner alone (a JSRL run: --jsrl-combined plays its guide, then the learner)")
    frames: list[Any] = []
    worlds = tuple(range(min(args.video_worlds, env.num_envs)))

    def record(env: Any) -> None:
        frames.append(np.concatenate(list(env.render(worlds, *args.video_size)), axis=1))

    if args.video is not None:
        record(env)  # fails early, with the reason, if the task cannot render
    returns = runner.evaluate(env, callback=record if args.video is not None else None, policy=policy).tolist()
    for i, ret in enumerate(returns):
        print(f"episode {i}: return {ret:.2f}")
    print(f"mean return over {len(returns)} episodes: {sum(returns) / len(returns):.2f} ({path})")
    if args.video is not None:
        from tasks.mujoco.render import write_video

        video = write_video(args.video, frames, fps=1.0 / env.step_dt)
        print(f"wrote {video} ({len(frames)} frames at {1.0 / env.step_dt:.0f} fps)")
    env.close()
    return 0


@dataclass
class ExportArgs:
    """Write the deterministic policy (normaliser baked in) as ONNX and TorchScript with deployment metadata.

    Input ``obs``, output ``actions``. The files are written only after onnxruntime and TorchScript reproduce the torch
    policy to 1e-5 on >= 10,000 observations (random ones and ones recorded in the task).
    """

    checkpoint: Path
    """Checkpoint file, or a run directory (its latest model_<it>.pt)."""
    out_dir: Path | None = None
    """Output directory (default: <checkpoint's directory>/exported)."""
    task: str | None = None
    """Task for the metadata and the recorded observations (default: the one in the checkpoint)."""


def export(argv: Sequence[str]) -> int:
    from deploy.export import export_checkpoint

    args = tyro.cli(ExportArgs, args=list(argv), prog="rsl-rl export")
    report = export_checkpoint(args.checkpoint, args.out_dir, args.task)
    meta = report.metadata
    print(
        f"wrote {report.onnx} and {report.torchscript} (obs {meta['observation']['dim']}, actions "
        f"{meta['action']['dim']}, task {meta['task']}); parity on {report.samples} observations: max |Δ| ONNX "
        f"{report.max_abs_diff_onnx:.2g}, TorchScript {report.max_abs_diff_torchscript:.2g}"
    )
    return 0


@dataclass
class DeploySimArgs:
    """Run an exported ONNX policy through the torch-free runtime (with its safety layer) in simulation."""

    policy: Path
    """The exported ONNX file."""
    task: str | None = None
    """Task (default: the one in the policy's metadata)."""
    episodes: int = 8
    """Episodes, one per parallel env."""
    seed: int = 0
    """Seed of the initial states."""
    rate_limit: float | None = None
    """Safety layer: largest change of an action entry per step."""
    max_steps: int | None = None
    """Stop every episode after this many steps (default: the task's episode length)."""


def deploy_sim(argv: Sequence[str]) -> int:
    from deploy.runtime import SafetyConfig
    from deploy.sim2sim import report_lines, run_sim2sim

    args = tyro.cli(DeploySimArgs, args=list(argv), prog="rsl-rl deploy-sim")
    if not args.policy.is_file():
        raise FileNotFoundError(f"policy file not found: {args.policy}")
    report = run_sim2sim(
        str(args.policy),
        args.task,
        args.episodes,
        args.seed,
        SafetyConfig(rate_limit=args.rate_limit),
        max_steps=args.max_steps,
    )
    for line in report_lines(report):
        print(line)
    return 0
