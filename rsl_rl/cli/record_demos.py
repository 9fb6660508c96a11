"""``rsl-rl record-demos``: record demonstrations from a task's scripted controller or a trained policy into a demo
file (``rsl_rl/storage/demos.py``), for RLPD (``--agent.algorithm.demos FILE``) and reward classifiers.

``num_envs`` envs run in parallel from a reset until ``episodes`` episodes have ended; the episodes still running
then are dropped, so every stored episode is complete from its reset. Episodes are stored in the order they ended
(ties by env index). A task that knows success reports ``extras["success"]`` (bool ``[N]``, per step) and it is
stored; otherwise success is False. An env or wrapper that overrides actions reports ``extras["intervention"]``
(and the applied ``extras["intervention_action"]``), stored as the ``intervention`` flag.
"""

from __future__ import annotations

import dataclasses
import datetime
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import tyro
from tensordict import TensorDict

from rsl_rl.cli.env_config import checkpoint_env_config, config_to_data
from rsl_rl.cli.run_support import (
    acting_runner,
    default_device,
    get_task_or_exit,
    load_checkpoint_file,
    resolve_device,
    seed_everything,
    set_config_field,
    task_from_run_dir,
)
from rsl_rl.env import Env
from rsl_rl.registry import TaskSpec
from rsl_rl.storage.demos import DemoData, save_demos

CHECK_EVERY = 8
"""Steps between two host reads of the number of finished episodes (the loop itself never waits for the device)."""


@dataclass
class RecordDemosArgs:
    """Record demonstrations of a task into a demo file (.npz) and print their success rate."""

    task: str | None = None
    """Registered task (default with a checkpoint: the one it was trained on)."""
    source: str = "scripted"
    """``scripted`` (the task's scripted controller) or a checkpoint file / run directory (PPO or SAC, acting
    deterministically)."""
    episodes: int = 10
    """Episodes to store."""
    num_envs: int = 8
    """Parallel envs."""
    out: Path | None = None
    """Output file (default: demos/<task>_<source>_<date_time>.npz)."""
    seed: int = 0
    """Seed of torch and of the env's initial states."""
    only_success: bool = False
    """Store only episodes in which the task reported success, until ``episodes`` of them (at most
    ``max_attempts`` episodes are run)."""
    max_attempts: int | None = None
    """With ``only_success``: give up after this many finished episodes (default: 10 × episodes)."""
    device: str = dataclasses.field(default_factory=default_device)
    """cpu, cuda or cuda:N."""
    env_set: tuple[str, ...] = ()
    """Env-config overrides ``FIELD.PATH=VALUE`` of a scripted recording, e.g. ``image_size=64`` (camera images for an
    image reward classifier)."""


def record_demos(argv: Sequence[str]) -> int:
    args = tyro.cli(RecordDemosArgs, args=list(argv), prog="rsl-rl record-demos")
    if args.episodes < 1 or args.num_envs < 1:
        raise ValueError(f"--episodes and --num-envs must be >= 1, got {args.episodes}, {args.num_envs}")
    device = resolve_device(args.device)
    seed_everything(args.seed)
    if args.source == "scripted":
        if args.task is None:
            raise ValueError("--source scripted needs --task NAME")
        spec = get_task_or_exit(args.task)
        if spec.scripted_policy is None:
            raise ValueError(f"task '{spec.name}' has no scripted controller; pass --source CHECKPOINT")
        env_cfg = spec.env_cfg()
        env_cfg.num_envs = args.num_envs
        for assignment in args.env_set:
            set_config_field(env_cfg, assignment)
        env = spec.build(env_cfg, device=device, seed=args.seed)
        policy = ScriptedPolicy(spec.scripted_policy(env))
        source = "scripted"
    else:
        spec, env, env_cfg, policy, source = _checkpoint_policy(Path(args.source), args, device)
    max_attempts = args.max_attempts or (10 * args.episodes if args.only_success else args.episodes)
    data, attempted = record(env, policy, args.episodes, args.only_success, max_attempts)
    bounds = env.action_bounds()
    env.close()
    if data.num_episodes == 0:
        print(f"error: none of {attempted['episodes']} episodes succeeded; no file written", file=sys.stderr)
        return 1
    data.metadata = {
        "task": spec.name,
        "source": source,
        "seed": args.seed,
        "num_envs": env.num_envs,
        "step_dt": getattr(env, "step_dt", None),
        **({"action_low": bounds[0].tolist(), "action_high": bounds[1].tolist()} if bounds is not None else {}),
        "only_success": args.only_success,
        "episodes_attempted": attempted["episodes"],
        "success_rate_attempted": attempted["successes"] / max(attempted["episodes"], 1),
        "env_cfg": config_to_data(env_cfg),
    }
    stamp = datetime.datetime.now().strftime("%Y-%m-%d_%H-%M-%S")
    name = "scripted" if source == "scripted" else "policy"
    path = save_demos(args.out or Path("demos") / f"{spec.name}_{name}_{stamp}.npz", data)
    success = data.episode_success
    returns = torch.zeros(data.num_episodes).index_add_(0, data.episode, data.rewards.float())
    print(
        f"{spec.name}: {data.num_episodes} episodes, {data.num_steps:,} steps from {source}; success rate "
        f"{success.float().mean():.1%} ({int(success.sum())}/{data.num_episodes}) stored, "
        f"{attempted['successes']}/{attempted['episodes']} of the episodes run; mean return {returns.mean():.1f}; "
        f"wrote {path}"
    )
    return 0


class ScriptedPolicy:
    """A scripted controller with the inference policy's interface (``policy(obs)``, ``reset(dones)``)."""

    def __init__(self, controller: Callable[[TensorDict], torch.Tensor]) -> None:
        self.controller = controller

    def __call__(self, obs: TensorDict) -> torch.Tensor:
        return self.controller(obs)

    def reset(self, dones: torch.Tensor) -> None:
        """Stateless."""


def _checkpoint_policy(path: Path, args: RecordDemosArgs, device: torch.device) -> tuple[TaskSpec, Env, Any, Any, str]:
    """The task, env (in the checkpoint's env config), deterministic policy and source name of a checkpoint."""
    if not path.exists():
        raise FileNotFoundError(f"--source {path}: neither 'scripted' nor an existing checkpoint or run directory")
    path, state = load_checkpoint_file(path)
    recorded = (state.get("infos") or {}).get("task") or task_from_run_dir(path)
    task = args.task or recorded
    if task is None:
        raise ValueError("the checkpoint does not record its task; pass --task NAME")
    if args.task is not None and recorded is not None and args.task != recorded:
        raise ValueError(f"--task {args.task} but the checkpoint was trained on '{recorded}'")
    spec = get_task_or_exit(task)
    env_cfg = checkpoint_env_config(spec, state)
    env_cfg.num_envs = args.num_envs
    env = spec.build(env_cfg, device=device, seed=args.seed)
    runner = acting_runner(env, spec, state, path, device)
    return spec, env, env_cfg, runner.get_inference_policy(), str(path)


@torch.inference_mode()
def record(
    env: Env, policy: Any, episodes: int, only_success: bool = False, max_attempts: int | None = None
) -> tuple[DemoData, dict[str, int]]:
    """Run ``policy`` (``policy(obs) -> actions``, ``policy.reset(dones)``) on every env of ``env`` from a reset until
    ``episodes`` episodes (successful ones with ``only_success``; at most ``max_attempts`` finished episodes) ended.

    Returns the stored episodes, in the order they ended, and ``{"episodes", "successes"}`` over the finished
    episodes that were considered.
    """
    n, device = env.num_envs, env.device
    bounds = env.action_bounds()
    max_attempts = max_attempts or episodes
    obs = env.reset()
    policy.reset(torch.ones(n, dtype=torch.bool, device=device))
    steps: list[dict[str, Any]] = []
    in_success = torch.zeros(n, dtype=torch.bool, device=device)
    finished = torch.zeros((), dtype=torch.long, device=device)
    finished_success = torch.zeros((), dtype=torch.long, device=device)
    # Enough steps for every env to finish its share of the attempts (a guard against envs that never end).
    step_limit = (max_attempts // n + 2) * env.max_episode_length if env.max_episode_length > 0 else 1_000_000
    while len(steps) < step_limit:
        actions = policy(obs).to(device)
        if bounds is not None:  # store the action that acts: the env clips to its bounds
            actions = torch.minimum(torch.maximum(actions, bounds[0]), bounds[1])
        next_obs, rewards, terminated, truncated, extras = env.step(actions)
        done = terminated | truncated
        final = extras.get("final_obs")
        reached = next_obs if final is None else _rows(done, final, next_obs)
        success = extras.get("success")
        success = torch.zeros_like(done) if success is None else success.to(device, torch.bool)
        intervention = extras.get("intervention")
        if intervention is not None:
            applied = extras.get("intervention_action")
            if applied is not None:
                actions = torch.where(intervention.unsqueeze(-1), applied.to(actions.dtype), actions)
        steps.append(
            {
                **{f"obs/{group}": value.clone() for group, value in obs.items()},
                **{f"next_obs/{group}": value.clone() for group, value in reached.items()},
                "actions": actions.float().clone(),
                "rewards": rewards.float().clone(),
                "terminated": terminated.clone(),
                "truncated": truncated.clone(),
                "success": success.clone(),
                "intervention": torch.zeros_like(done) if intervention is None else intervention.to(torch.bool),
            }
        )
        policy.reset(done)
        in_success |= success
        finished += done.sum()
        finished_success += (done & in_success).sum()
        in_success &= ~done
        obs = next_obs
        if len(steps) % CHECK_EVERY == 0:
            count = int(finished_success if only_success else finished)
            if count >= episodes or int(finished) >= max_attempts:
                break
    return _episodes(steps, episodes, only_success, max_attempts)


def _rows(mask: torch.Tensor, a: TensorDict, b: TensorDict) -> TensorDict:
    """Per env: the groups of ``a`` where ``mask``, else those of ``b``."""
    return a.apply(lambda x, y: torch.where(mask.view(-1, *([1] * (x.dim() - 1))), x, y), b)


def _episodes(
    steps: list[dict[str, Any]], episodes: int, only_success: bool, max_attempts: int
) -> tuple[DemoData, dict[str, int]]:
    """Cut the recorded ``[S, N]`` steps into the first finished episodes and lay them out one after another."""
    stacked = {key: torch.stack([s[key] for s in steps]).cpu() for key in steps[0]}
    done = stacked["terminated"] | stacked["truncated"]
    ends = sorted((int(t), int(e)) for t, e in done.nonzero().tolist())  # (step, env) in the order they ended
    start = [0] * done.shape[1]
    chosen: list[tuple[int, int, int]] = []  # (env, first step, last step)
    attempted = {"episodes": 0, "successes": 0}
    for t, e in ends:
        first, start[e] = start[e], t + 1
        if len(chosen) >= episodes or attempted["episodes"] >= max_attempts:
            break
        succeeded = bool(stacked["success"][first : t + 1, e].any())
        attempted["episodes"] += 1
        attempted["successes"] += int(succeeded)
        if succeeded or not only_success:
            chosen.append((e, first, t))
    columns = {
        key: torch.cat([value[:0, 0]] + [value[first : last + 1, e] for e, first, last in chosen])
        for key, value in stacked.items()
    }
    lengths = torch.tensor([last + 1 - first for _, first, last in chosen], dtype=torch.long)
    groups = [key.removeprefix("obs/") for key in stacked if key.startswith("obs/")]
    data = DemoData(
        obs={g: columns[f"obs/{g}"] for g in groups},
        next_obs={g: columns[f"next_obs/{g}"] for g in groups},
        actions=columns["actions"],
        rewards=columns["rewards"],
        terminated=columns["terminated"],
        truncated=columns["truncated"],
        success=columns["success"],
        intervention=columns["intervention"],
        episode=torch.repeat_interleave(torch.arange(len(chosen)), lengths),
    )
    return data, attempted
