"""``rsl-rl train-adversarial``: two-player robust training (RARL) of a PPO protagonist against a PPO or SAC adversary.

    rsl-rl train-adversarial --task hopper --adversary force|params [--set NAME] [--mode alternating|simultaneous]
        [--adversary-algo ppo|sac] [--protagonist-iterations N] [--adversary-iterations N] [--max-iterations N]
        [--run-dir DIR] [--seed N] [--num-envs N] [--threads N] [--device cpu|cuda] [--backend cpu|warp]
        [--env.FIELD VALUE ...] [--agent.FIELD VALUE ...] [--adversary-agent.FIELD VALUE ...]

The adversary acts through a wrapper of the task (``tasks/wrappers/adversary.py``): ``force`` pushes the bodies of the
task's RARL force set (``--set force``, RRLS's ±3 N on x and y), ``params`` sets the physical parameters of an RRLS
uncertainty set every step (``--set 1d|2d|3d``, default ``3d``). ``--agent.*`` edits the protagonist's PPO config (the
task's), ``--adversary-agent.*`` the adversary's (the task's PPO or SAC config; an iteration collects the protagonist's
``num_steps_per_env``: a SAC adversary keeps its ``num_updates`` per its ``num_steps_per_env``, a PPO adversary's
``num_steps_per_env`` is the protagonist's). ``--max-iterations`` counts every iteration, whichever player updates in
it: alternating ``N_p``/``N_a`` gives the protagonist ``N_p/(N_p+N_a)`` of them. The protagonist is evaluated alone on
the nominal task (no adversary). The run directory is ``rsl-rl train``'s: config, checkpoints (the protagonist where
``rsl-rl play``/``export`` read it, plus the adversary), the exported protagonist, ``summary.json`` with the
protagonist's final return, curves and logs.
"""

from __future__ import annotations

import dataclasses
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

import torch
import tyro

from rsl_rl.cli.env_config import config_to_data
from rsl_rl.cli.run_support import (
    export_record,
    finish_run,
    get_task_or_exit,
    learn_and_export,
    make_run_dir,
    resolve_device,
    seed_everything,
    set_backend,
    task_from_argv,
)
from rsl_rl.cli.train_options import apply_recurrent, train_args_type
from rsl_rl.registry import TaskSpec, task_names
from rsl_rl.runners.adversarial import AdversarialConfig, AdversarialRunner


@dataclass
class AdversarialOptions:
    """What ``train-adversarial`` adds to ``train``'s options."""

    adversary: Literal["force", "params"] = "force"
    """force: RARL forces on the bodies of the task's force set; params: physical parameters of an uncertainty set."""
    set: str | None = None
    """The set the adversary acts within (default: force for --adversary force, 3d for params)."""
    mode: Literal["alternating", "simultaneous"] = "alternating"
    """alternating (RARL: the players take turns, the other frozen) or simultaneous (both update every iteration)."""
    adversary_algo: Literal["ppo", "sac"] = "ppo"
    """The adversary's algorithm (the task's config for it is ``--adversary-agent``'s default)."""
    protagonist_iterations: int = 1
    """Alternating: iterations of each protagonist phase."""
    adversary_iterations: int = 1
    """Alternating: iterations of each adversary phase."""


def _args_type(spec: TaskSpec, resume: str | None, adversary_algo: str) -> type:
    """``train``'s options with the task's env and PPO config (``train_args_type``), the adversarial options and the
    adversary's training config (``adversary_agent``)."""
    adversary_cfg = spec.agent_cfg(adversary_algo)
    return dataclasses.make_dataclass(
        "TrainAdversarialArgs",
        [("adversary_agent", type(adversary_cfg), dataclasses.field(default_factory=lambda: adversary_cfg))],
        bases=(AdversarialOptions, train_args_type(spec, resume, "ppo")),
    )


def train_adversarial(argv: Sequence[str]) -> int:
    task = task_from_argv(argv)
    if task is None:
        if any(a in ("-h", "--help") for a in argv):
            tyro.cli(AdversarialOptions, args=list(argv), prog="rsl-rl train-adversarial")
        print(f"error: --task is required; valid tasks: {', '.join(task_names())}", file=sys.stderr)
        return 2
    spec = get_task_or_exit(task)
    adversary_algo = task_from_argv(argv, "--adversary-algo") or "ppo"
    if adversary_algo not in ("ppo", "sac"):
        print(f"error: --adversary-algo {adversary_algo!r}; allowed: ppo, sac", file=sys.stderr)
        return 2
    args_type = _args_type(spec, task_from_argv(argv, "--resume"), adversary_algo)
    # AvoidSubcommands: as ``rsl-rl train`` (optional dict fields stay config-file settings).
    prog = "rsl-rl train-adversarial"
    args: Any = tyro.cli(args_type, args=list(argv), prog=prog, config=(tyro.conf.AvoidSubcommands,))
    return run_adversarial_training(spec, args)


def with_adversary(env: Any, task: str, kind: str, set_name: str | None) -> tuple[Any, dict[str, Any]]:
    """``env`` wrapped in the adversary of ``kind`` over the task's set, and the record of it (checkpoint infos)."""
    from tasks.uncertainty import force_set, uncertainty_set
    from tasks.wrappers.adversary import DynamicAdversary, ForceAdversary

    if kind == "force":
        forces = force_set(task, set_name or "force")
        record = {"kind": kind, "set": forces.name, "bodies": list(forces.bodies), "max_force": forces.max_force}
        return ForceAdversary(env, forces.bodies, forces.max_force), record
    params = uncertainty_set(task, set_name or "3d")
    bounds = {name: [float(lo), float(hi)] for name, (lo, hi) in params.bounds.items()}
    return DynamicAdversary(env, params.bounds), {"kind": kind, "set": params.name, "bounds": bounds}


def run_adversarial_training(spec: TaskSpec, args: Any) -> int:
    """Train ``spec``'s protagonist against the adversary ``args`` describe; writes the run directory."""
    if args.algo != "ppo":
        raise ValueError("--algo: the protagonist trains with PPO; the adversary's algorithm is --adversary-algo")
    if args.reward_classifier is not None:
        raise ValueError("--reward-classifier is not supported by train-adversarial")
    if args.guide is not None or args.jsrl.mode:
        raise ValueError("--guide/--jsrl (jump-start RL) are not supported by train-adversarial")
    env_cfg, agent, adversary_cfg = args.env, args.agent, args.adversary_agent
    if args.num_envs is not None:
        env_cfg.num_envs = args.num_envs
    if args.max_iterations is not None:
        agent.max_iterations = args.max_iterations
    if args.logger is not None:
        agent.logger = args.logger
    set_backend(env_cfg, args.backend, spec.name)
    apply_recurrent(args)  # the protagonist's actor and critic (--recurrent), or a resumed run's
    agent.__post_init__()  # re-validate after command-line edits
    adversary_cfg.__post_init__()
    schedule = AdversarialConfig(args.mode, args.protagonist_iterations, args.adversary_iterations)
    if args.threads:
        torch.set_num_threads(args.threads)
    device = resolve_device(args.device)
    seed_everything(args.seed, args.deterministic)
    run_dir = make_run_dir(spec.name, agent.run_name, args.run_dir)
    task_env = spec.build(env_cfg, device=device, seed=args.seed)
    env, adversary = with_adversary(task_env, spec.name, args.adversary, args.set)
    # The protagonist is evaluated alone, on the nominal task.
    eval_cfg = dataclasses.replace(env_cfg, num_envs=agent.eval_episodes)
    eval_env = spec.build(eval_cfg, device=device, seed=args.seed + 10_000)
    runner = AdversarialRunner(env, agent, adversary_cfg, run_dir, device, eval_env=eval_env, schedule=schedule)
    runner.add_git_repo_to_log(__file__)
    env_data = config_to_data(env_cfg)  # the task's config: play, export and deploy-sim rebuild the nominal task
    runner.checkpoint_infos = {"task": spec.name, "env_cfg": env_data, "adversary": adversary}
    runner.logger.config.update({"task": spec.name, "seed": args.seed, "env": env_data})
    runner.logger.config["adversary"].update(adversary)
    report = learn_and_export(runner, spec, args, env_cfg, run_dir)
    summary = runner.summary(spec.name)
    summary["adversary"].update(adversary)
    summary.update(
        {"seed": args.seed, "device": str(device), "num_envs": env.num_envs, "exported": export_record(report)}
    )
    summary["algorithm"] = f"{agent.algorithm.class_name} vs {summary['adversary']['algorithm']} adversary"
    title = f"{spec.name}: adversarial ({args.mode}, {args.adversary}), {env.num_envs} envs"
    finish_run(runner, summary, title, env, eval_env)
    print(
        f"{spec.name}: {summary['iterations']} iterations ({runner.updates['protagonist']} protagonist and "
        f"{runner.updates['adversary']} adversary updates), {summary['env_steps']:,} env steps in "
        f"{summary['wall_seconds']:.1f} s; protagonist's final mean return {summary['final_mean_return']:.1f} "
        f"({summary['final_mean_return_source']}); run directory: {run_dir}"
    )
    return 0
