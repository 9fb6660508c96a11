"""``rsl-rl``: train, distill, play, export, deploy-sim, list tasks; the one place composing tasks, algorithms, deploy.

    rsl-rl train --task NAME [--algo ppo|sac] [--run-dir DIR] [--seed N] [--device cpu|cuda] [--num-envs N]
                 [--max-iterations N] [--deterministic] [--recurrent gru|lstm] [--env.FIELD VALUE ...]
                 [--agent.FIELD VALUE ...]
                 [--guide CHECKPOINT|RUN_DIR|POLICY.onnx|scripted --jsrl curriculum|random [--jsrl.FIELD VALUE ...]]
    rsl-rl distill --task NAME --teacher CHECKPOINT [--loss mse|huber|kl_forward|kl_reverse|kl_adaptive]
                   [--student-rnn gru|lstm|none] [--history-length K] [--num-envs N] [--max-iterations N]
                   [--run-dir DIR] [--seed N] [--threads N]
    rsl-rl train-classifier --task NAME --data DEMOS.npz [--group G] [--out PATH] [--steps N] [--seed N]
    rsl-rl bc --task NAME --data DEMOS.npz [--out DIR] [--steps N] [--hidden-dims 64 64] [--seed N]
    rsl-rl play --checkpoint RUN_DIR_OR_FILE [--num-envs N] [--video out.mp4] [--env-set FIELD=VALUE ...]
                [--jsrl-combined]
    rsl-rl export --checkpoint RUN_DIR_OR_FILE [--out-dir DIR] [--task NAME]
    rsl-rl deploy-sim --policy policy.onnx [--episodes N] [--max-steps N]
    rsl-rl record-demos --task NAME [--source scripted|CHECKPOINT] [--episodes N] [--num-envs M] [--out FILE]
                        [--seed S] [--only-success]
    rsl-rl train-adversarial --task NAME --adversary force|params [--mode alternating|simultaneous] [...]
    rsl-rl eval-robust --task NAME --checkpoint RUN_DIR_OR_FILE --set 1d|2d|3d [--points 10] [--inclusive]
    rsl-rl list-tasks
    rsl-rl provide-rsl-rl-lib [--version 5.5.1] [--site-dir DIR]

Each subcommand is a tyro dataclass; ``train`` builds its dataclass after reading ``--task``, so the task's own env and
training configs are the defaults and every field of them can be overridden from the command line.

Jump-start RL (``train --guide ... --jsrl ...``, issue 15): the guide acts for the first h steps of every episode, then
the learner; ``--jsrl MODE`` is short for ``--jsrl.mode MODE``. The run's checkpoints record the guide and the
curriculum, ``--resume`` continues both (``rsl_rl/cli/jsrl_support.py``), and the exported policy is the learner alone
(what gets deployed); ``play --jsrl-combined`` runs guide then learner.
"""

from __future__ import annotations

import dataclasses
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

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
from rsl_rl.cli.train_options import TrainOptions, apply_recurrent, expand_jsrl_flag, train_args_type
from rsl_rl.registry import TaskSpec, get_task, task_names

USAGE = """usage: rsl-rl COMMAND [OPTIONS]

commands:
  train        train a policy:            rsl-rl train --task pendulum [--algo sac]
               with a guide (jump-start RL): rsl-rl train --task pendulum --guide scripted --jsrl curriculum
  distill      teacher -> student:        rsl-rl distill --task pendulum --teacher runs/pendulum/<run>/model_N.pt
  train-classifier   reward classifier (SERL) from demos: rsl-rl train-classifier --task pendulum --data demos.npz
  bc           behaviour cloning of an MLP actor on demos (a JSRL guide): rsl-rl bc --task pendulum --data demos.npz
  play         run a trained policy:      rsl-rl play --checkpoint runs/pendulum/<run>
  export       ONNX + TorchScript with metadata and a parity check: rsl-rl export --checkpoint runs/pendulum/<run>
  deploy-sim   run an exported policy through the robot runtime in simulation: rsl-rl deploy-sim --policy p.onnx
  record-demos record demonstrations (scripted or a checkpoint) into a demo file: rsl-rl record-demos --task pendulum
  train-adversarial  two-player robust training (RARL): rsl-rl train-adversarial --task hopper --adversary force
  eval-robust  worst-case/average return over an uncertainty set's grid: rsl-rl eval-robust --task hopper
               --checkpoint runs/hopper/<run> --set 3d
  list-tasks   show the registered tasks
  provide-rsl-rl-lib   record that this library provides rsl-rl-lib (for frameworks' version checks and pip)

`rsl-rl COMMAND --help` shows a command's options (`rsl-rl train --task NAME --help` includes the task's config)."""


# --- train ----------------------------------------------------------------------------------------------------------


def train(argv: Sequence[str]) -> int:
    task = task_from_argv(argv)
    if task is None:
        if any(a in ("-h", "--help") for a in argv):
            tyro.cli(TrainOptions, args=list(argv), prog="rsl-rl train")
        print(f"error: --task is required; valid tasks: {', '.join(task_names())}", file=sys.stderr)
        return 2
    spec = get_task_or_exit(task)
    args_type = train_args_type(spec, task_from_argv(argv, "--resume"), task_from_argv(argv, "--algo"))
    # AvoidSubcommands: the optional dict fields (rnd_cfg, symmetry_cfg, cnn_cfg) stay config-file settings; as tyro
    # subcommands they broke its error message for any mistyped flag ("dict ... requires a default value").
    argv = expand_jsrl_flag(argv)  # --jsrl MODE is --jsrl.mode MODE
    args: Any = tyro.cli(args_type, args=argv, prog="rsl-rl train", config=(tyro.conf.AvoidSubcommands,))
    return run_training(spec, args)


def run_training(spec: TaskSpec, args: Any) -> int:
    """Train ``spec`` with the parsed ``args``; writes the run directory and returns an exit code."""
    from rsl_rl.cli.jsrl_support import jsrl_plan, jsrl_summary, make_guided_runner
    from rsl_rl.runners import make_runner

    plan = jsrl_plan(args.guide, args.jsrl, args.resume)  # None: no guide; checked before anything is built
    env_cfg, agent = args.env, args.agent
    if args.num_envs is not None:
        env_cfg.num_envs = args.num_envs
    if args.max_iterations is not None:
        agent.max_iterations = args.max_iterations
    if args.logger is not None:
        agent.logger = args.logger
    set_backend(env_cfg, args.backend, spec.name)
    apply_recurrent(args)  # --recurrent gru|lstm, or a resumed recurrent run's own layer
    agent.__post_init__()  # re-validate after command-line edits
    if args.threads:
        torch.set_num_threads(args.threads)
    device = resolve_device(args.device)
    seed_everything(args.seed, args.deterministic)
    run_dir = make_run_dir(spec.name, agent.run_name, args.run_dir)
    env = spec.build(env_cfg, device=device, seed=args.seed)
    if args.reward_classifier is not None:
        env = _with_learned_reward(env, args.reward_classifier, device)
    if args.domain_randomization is None and args.domain_randomization_nominal != 0.0:
        raise ValueError("--domain-randomization-nominal needs --domain-randomization SET")
    if args.domain_randomization is not None:
        env = _with_domain_randomization(
            env, spec.name, args.domain_randomization, args.seed, args.domain_randomization_nominal
        )
    eval_cfg = dataclasses.replace(env_cfg, num_envs=agent.eval_episodes)
    eval_env = spec.build(eval_cfg, device=device, seed=args.seed + 10_000)
    if plan is None:
        runner, jsrl = make_runner(env, agent, run_dir, device, eval_env=eval_env), None
    else:  # jsrl: what the checkpoints record of the guide and the config
        runner, jsrl = make_guided_runner(plan, spec, env, agent, run_dir, device, eval_env)
    runner.add_git_repo_to_log(__file__)
    # The resolved env config, as plain data: export, play and deploy-sim rebuild the task from it (config.json
    # holds the same data).
    env_data = config_to_data(env_cfg)
    runner.checkpoint_infos = {"task": spec.name, "env_cfg": env_data}
    if args.reward_classifier is not None:
        runner.checkpoint_infos["reward_classifier"] = str(args.reward_classifier)
    if args.domain_randomization is not None:
        runner.checkpoint_infos["domain_randomization"] = args.domain_randomization
        runner.checkpoint_infos["domain_randomization_nominal"] = args.domain_randomization_nominal
    if jsrl is not None:
        runner.checkpoint_infos["jsrl"] = jsrl
    runner.logger.config.update({"task": spec.name, "seed": args.seed, "env": env_data})
    report = learn_and_export(runner, spec, args, env_cfg, run_dir)
    summary = runner.summary(spec.name)
    summary.update(
        {
            "seed": args.seed,
            "device": str(device),
            "num_envs": env.num_envs,
            "exported": export_record(report),
        }
    )
    algorithm = agent.algorithm.class_name
    summary["algorithm"] = algorithm
    if jsrl is not None:  # the exported policy is the learner alone: what gets deployed
        summary["jsrl"].update(jsrl_summary(runner, jsrl))
        algorithm += f" + JSRL-{jsrl['config']['mode']} ({jsrl['guide']['kind']} guide)"
    finish_run(runner, summary, f"{spec.name}: {algorithm}, {env.num_envs} envs", env, eval_env)
    print(
        f"{spec.name}: {summary['iterations']} iterations, {summary['env_steps']:,} env steps in "
        f"{summary['wall_seconds']:.1f} s ({summary['env_steps_per_second']:,.0f} steps/s); final mean return "
        f"{summary['final_mean_return']:.1f} ({summary['final_mean_return_source']}); run directory: {run_dir}"
    )
    return 0


def _with_learned_reward(env: Any, path: Path, device: torch.device) -> Any:
    """``env`` with its reward replaced by the success of the reward classifier at ``path``."""
    from rsl_rl.modules.reward_classifier import RewardClassifier
    from tasks.wrappers.reward_classifier import RewardClassifierWrapper

    if not path.is_file():
        raise SystemExit(f"error: --reward-classifier {path}: no such file (rsl-rl train-classifier writes one)")
    return RewardClassifierWrapper(env, RewardClassifier.load(path, device=device))


def _with_domain_randomization(env: Any, task: str, set_name: str, seed: int, nominal_fraction: float = 0.0) -> Any:
    """``env`` with the parameters of the task's uncertainty set ``set_name`` drawn uniformly at every reset (kept
    nominal with probability ``nominal_fraction``)."""
    from tasks.uncertainty import uncertainty_set
    from tasks.wrappers import DomainRandomization

    bounds = uncertainty_set(task, set_name).bounds
    return DomainRandomization(env, bounds, seed=seed, nominal_fraction=nominal_fraction)


# --- distill --------------------------------------------------------------------------------------------------------


def distill(argv: Sequence[str]) -> int:
    from rsl_rl.cli.distill import distill as run_distillation

    return run_distillation(argv)


def bc(argv: Sequence[str]) -> int:
    from rsl_rl.cli.bc import bc as run_bc

    return run_bc(argv)


def train_classifier(argv: Sequence[str]) -> int:
    from rsl_rl.cli.train_classifier import train_classifier as run_train_classifier

    return run_train_classifier(argv)


# --- play / export / deploy-sim (rsl_rl/cli/play.py) ----------------------------------------------------------------


def play(argv: Sequence[str]) -> int:
    from rsl_rl.cli.play import play as run_play

    return run_play(argv)


def export(argv: Sequence[str]) -> int:
    from rsl_rl.cli.play import export as run_export

    return run_export(argv)


def deploy_sim(argv: Sequence[str]) -> int:
    from rsl_rl.cli.play import deploy_sim as run_deploy_sim

    return run_deploy_sim(argv)


def record_demos(argv: Sequence[str]) -> int:
    from rsl_rl.cli.record_demos import record_demos as run_record_demos

    return run_record_demos(argv)


def list_tasks(argv: Sequence[str]) -> int:
    if argv:
        print(f"error: list-tasks takes no arguments, got {list(argv)}", file=sys.stderr)
        return 2
    for name in task_names():
        print(f"{name:24s} {get_task(name).description}")
    return 0


def eval_robust(argv: Sequence[str]) -> int:
    from rsl_rl.cli.eval_robust import eval_robust as run_eval_robust

    return run_eval_robust(argv)


def train_adversarial(argv: Sequence[str]) -> int:
    from rsl_rl.cli.train_adversarial import train_adversarial as run_train_adversarial

    return run_train_adversarial(argv)


def provide_rsl_rl_lib(argv: Sequence[str]) -> int:
    from rsl_rl.cli.provide import main as run_provide

    return run_provide(argv)


COMMANDS: dict[str, Callable[[Sequence[str]], int]] = {
    "train": train,
    "play": play,
    "export": export,
    "deploy-sim": deploy_sim,
    "list-tasks": list_tasks,
    "record-demos": record_demos,
    "distill": distill,
    "train-classifier": train_classifier,
    "bc": bc,
    "train-adversarial": train_adversarial,
    "eval-robust": eval_robust,
    "provide-rsl-rl-lib": provide_rsl_rl_lib,
}


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in ("-h", "--help"):
        print(USAGE)
        return 0 if argv else 2
    command = COMMANDS.get(argv[0])
    if command is None:
        print(f"error: unknown command {argv[0]!r}; valid commands: {', '.join(COMMANDS)}\n\n{USAGE}", file=sys.stderr)
        return 2
    try:
        return command(argv[1:])
    except (FileNotFoundError, ValueError, KeyError, NotImplementedError) as err:
        message = err.args[0] if err.args else str(err)
        print(f"error: {message}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
