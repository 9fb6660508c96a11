"""``rsl-rl distill``: distil a PPO teacher checkpoint into a deployable student (DAgger: the student acts, the teacher
labels), then export the student. Shares the train command's helpers in ``run_support.py``.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import torch
import tyro

from rsl_rl.cli.env_config import checkpoint_env_config, config_to_data
from rsl_rl.cli.run_support import (
    default_device,
    export_actor,
    export_record,
    finish_run,
    get_task_or_exit,
    load_checkpoint_file,
    make_run_dir,
    resolve_device,
    seed_everything,
    set_backend,
)
from rsl_rl.runners.checkpoint import checkpoint_name
from rsl_rl.runners.config import TrainConfig, train_config_from_dict


@dataclass
class DistillArgs:
    """Distil a PPO teacher checkpoint into a deployable student (DAgger: the student acts, the teacher labels)."""

    task: str
    """Registered task name (see ``rsl-rl list-tasks``)."""
    teacher: Path
    """The teacher's PPO checkpoint (model_<it>.pt), or its run directory (latest checkpoint)."""
    run_dir: Path | None = None
    """Run directory (default: runs/<task>/<date_time>_distill)."""
    seed: int = 0
    """Seed of torch, numpy, python and the env."""
    device: str = dataclasses.field(default_factory=default_device)
    """cpu, cuda or cuda:N."""
    num_envs: int | None = None
    """Parallel envs (overrides the task's env.num_envs)."""
    max_iterations: int | None = None
    """Distillation iterations (default: the task's distill_cfg, else 100)."""
    loss: str | None = None
    """mse, huber, kl_forward, kl_reverse or kl_adaptive (default: mse)."""
    student_rnn: str = "none"
    """Recurrent student: gru, lstm, or none (an MLP)."""
    history_length: int | None = None
    """MLP student: stack the last k student observations."""
    threads: int | None = None
    """torch CPU threads (default: torch's choice)."""
    logger: str | None = None
    """tensorboard, wandb or none."""
    backend: str | None = None
    """Simulation backend of MuJoCo tasks: cpu or warp."""


def distill(argv: Sequence[str]) -> int:
    from rsl_rl.modules.rnn import RNNConfig
    from rsl_rl.runners.distillation_runner import DistillationRunner, DistillationTrainConfig

    args = tyro.cli(DistillArgs, args=list(argv), prog="rsl-rl distill")
    if args.student_rnn not in ("none", "gru", "lstm"):
        raise ValueError(f"--student-rnn {args.student_rnn!r}; allowed: gru, lstm, none")
    spec = get_task_or_exit(args.task)
    teacher_path, state = load_checkpoint_file(args.teacher)
    task_cfg = spec.train_cfg()
    teacher_cfg = train_config_from_dict(state["config"]) if "config" in state else task_cfg
    if not isinstance(teacher_cfg, TrainConfig):  # the DAgger labels come from a PPO actor's distribution
        raise ValueError(
            f"--teacher {teacher_path}: distillation needs a PPO teacher, got {type(teacher_cfg).__name__}"
        )
    teacher_actor = teacher_cfg.actor
    cfg = getattr(task_cfg, "distill_cfg", None)
    if not isinstance(cfg, DistillationTrainConfig):
        cfg = DistillationTrainConfig(
            num_steps_per_env=task_cfg.num_steps_per_env,
            max_iterations=100,
            save_interval=task_cfg.save_interval,
            eval_interval=task_cfg.eval_interval,
            eval_episodes=task_cfg.eval_episodes,
            logger=task_cfg.logger,
            student=dataclasses.replace(teacher_actor) if not isinstance(teacher_actor, RNNConfig) else task_cfg.actor,
        )
    cfg.teacher_checkpoint = str(teacher_path)
    if args.student_rnn != "none":
        base = cfg.student
        cfg.student = RNNConfig(
            rnn_type=args.student_rnn,
            rnn_hidden_dim=64,
            hidden_dims=base.hidden_dims,
            activation=base.activation,
            obs_normalization=base.obs_normalization,
            distribution_cfg=base.distribution_cfg,
        )
    if args.max_iterations is not None:
        cfg.max_iterations = args.max_iterations
    if args.logger is not None:
        cfg.logger = args.logger
    if args.loss is not None:
        cfg.algorithm.loss = args.loss
    if args.history_length is not None:
        cfg.algorithm.history_length = args.history_length
    cfg.algorithm.__post_init__()
    cfg.__post_init__()
    if args.threads:
        torch.set_num_threads(args.threads)
    device = resolve_device(args.device)
    seed_everything(args.seed)
    # The student learns in the env the teacher was trained in (its --env.* overrides: action scale, gains ...).
    env_cfg = checkpoint_env_config(spec, state)
    if args.num_envs is not None:
        env_cfg.num_envs = args.num_envs
    set_backend(env_cfg, args.backend, spec.name)
    run_dir = make_run_dir(spec.name, "distill", args.run_dir)
    env = spec.build(env_cfg, device=device, seed=args.seed)
    eval_env = spec.build(dataclasses.replace(env_cfg, num_envs=cfg.eval_episodes), device=device, seed=args.seed + 1)
    runner = DistillationRunner(env, cfg, run_dir, device, eval_env=eval_env)
    runner.add_git_repo_to_log(__file__)
    env_data = config_to_data(env_cfg)
    runner.checkpoint_infos = {
        "task": spec.name,
        "algorithm": "distillation",
        "teacher": str(teacher_path),
        "env_cfg": env_data,
    }
    runner.logger.config.update({"task": spec.name, "seed": args.seed, "env": env_data})
    runner.learn(cfg.max_iterations)
    checkpoint = run_dir / checkpoint_name(runner.current_learning_iteration)
    report = export_actor(runner, spec, checkpoint, run_dir / "exported", env_cfg, cfg.algorithm.history_length)
    teacher_return = float(runner.teacher_returns(eval_env).mean())
    summary = runner.summary(spec.name)
    summary.update(
        {
            "seed": args.seed,
            "device": str(device),
            "num_envs": env.num_envs,
            "teacher": str(teacher_path),
            "teacher_mean_return": teacher_return,
            "exported": export_record(report),
        }
    )
    finish_run(runner, summary, f"{spec.name}: distillation ({cfg.algorithm.loss}), {env.num_envs} envs", env, eval_env)
    print(
        f"{spec.name}: distilled {summary['iterations']} iterations; student return "
        f"{summary['final_mean_return']:.1f} ({summary['final_mean_return_source']}), teacher {teacher_return:.1f}; "
        f"run directory: {run_dir}"
    )
    return 0
