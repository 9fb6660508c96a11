"""Velocity-tracking error of trained legged policies: commanded vs achieved base velocity, with and without the
randomisation the policy was trained under; a distilled student next to its teacher.

    python bench/legged_tracking.py --checkpoint runs/go1-flat/<run> [--student runs/go1-flat/<run>_distill]

For every command (forward, backward, sideways, turning, and the training distribution) the policy runs
deterministically in ``--envs`` worlds for ``--seconds``; the first second of each episode is skipped. Reported:
mean ‖v_xy − v_cmd‖ (m/s), mean |ω_z − ω_cmd| (rad/s), the tracking-reward fraction (mean of both exp kernels, 1 =
perfect) and falls per env. "randomised" = the task's events (friction, payload, CoM, motor strength, PD gains, action
delay, pushes) and observation noise; "nominal" = all of them off.
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
from pathlib import Path
from typing import Any

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from rsl_rl.registry import get_task  # noqa: E402
from rsl_rl.runners.checkpoint import latest_checkpoint, load_checkpoint  # noqa: E402
from tasks.legged import no_randomization  # noqa: E402
from tasks.legged.config import VelocityCfg  # noqa: E402

COMMANDS: dict[str, tuple[float, float, float] | None] = {
    "forward 0.5": (0.5, 0.0, 0.0),
    "forward 1.0": (1.0, 0.0, 0.0),
    "backward 0.5": (-0.5, 0.0, 0.0),
    "sideways 0.5": (0.0, 0.5, 0.0),
    "turn 0.5": (0.0, 0.0, 0.5),
    "turn 1.0": (0.0, 0.0, 1.0),
    "training distribution": None,
}


def with_command(cfg: VelocityCfg, command: tuple[float, float, float] | None) -> VelocityCfg:
    if command is None:
        return cfg
    vx, vy, wz = command
    commands = dataclasses.replace(
        cfg.commands,
        lin_vel_x=(vx, vx),
        lin_vel_y=(vy, vy),
        ang_vel_z=(wz, wz),
        heading=False,
        standing_fraction=0.0,
        turn_fraction=0.0,
        min_speed=0.0,
        resample_s=1e9,
    )
    return dataclasses.replace(cfg, commands=commands)


def load_policy(path: Path, env: Any, device: torch.device) -> Any:
    """The deterministic policy of a PPO or a distillation checkpoint."""
    state = load_checkpoint(path, map_location=device)
    if (state.get("infos") or {}).get("algorithm") == "distillation":
        from rsl_rl.runners.distillation_runner import DistillationRunner, distillation_config_from_dict

        runner: Any = DistillationRunner(env, distillation_config_from_dict(state["config"]), None, device)
    else:
        from rsl_rl.runners.config import train_config_from_dict
        from rsl_rl.runners.on_policy_runner import OnPolicyRunner

        runner = OnPolicyRunner(env, train_config_from_dict(state["config"]), None, device, show_progress=False)
    runner.load(path, load_cfg={"actor": True}, strict=False)
    return runner.get_inference_policy()


@torch.inference_mode()
def measure(path: Path, task: str, cfg: VelocityCfg, seconds: float, device: torch.device) -> dict[str, float]:
    spec = get_task(task)
    env: Any = spec.build(cfg, device=device, seed=1)
    policy = load_policy(path, env, device)
    obs = env.reset()
    policy.reset()
    settle = round(1.0 / env.step_dt)
    lin_err, ang_err, kernel, count, falls = (torch.zeros((), dtype=torch.float64) for _ in range(5))
    for _ in range(round(seconds / env.step_dt)):
        obs, _, terminated, truncated, _ = env.step(policy(obs))
        policy.reset(terminated | truncated)
        falls += terminated.sum()
        # Envs in the first second of an episode (just reset, or settling) are left out.
        ok = (env.episode_length_buf >= settle).double()
        e_lin = (env.command[:, :2] - env.base_lin_vel[:, :2]).norm(dim=-1).double()
        e_ang = (env.command[:, 2] - env.base_ang_vel[:, 2]).abs().double()
        lin_err += (e_lin * ok).sum()
        ang_err += (e_ang * ok).sum()
        kernel += ((torch.exp(-e_lin.square() / 0.25) + torch.exp(-e_ang.square() / 0.25)) / 2 * ok).sum()
        count += ok.sum()
    env.close()
    return {
        "lin_err": (lin_err / count).item(),
        "ang_err": (ang_err / count).item(),
        "tracking": (kernel / count).item(),
        "falls_per_env": (falls / cfg.num_envs).item(),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--checkpoint", type=Path, required=True, help="PPO run directory or model_<it>.pt")
    parser.add_argument("--student", type=Path, default=None, help="distillation run directory or checkpoint")
    parser.add_argument("--task", default="go1-flat")
    parser.add_argument("--envs", type=int, default=64)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--backend", default="cpu", help="simulation backend: cpu or warp")
    parser.add_argument("--commands", nargs="*", default=list(COMMANDS), help=f"subset of {list(COMMANDS)}")
    parser.add_argument("--nominal-only", action="store_true", help="skip the randomised robot")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    device = torch.device("cpu")
    policies = {"teacher" if args.student else "policy": args.checkpoint}
    if args.student is not None:
        policies["student"] = args.student
    paths = {k: latest_checkpoint(v) if v.is_dir() else v for k, v in policies.items()}
    base = dataclasses.replace(get_task(args.task).env_cfg(), num_envs=args.envs)
    base.sim = dataclasses.replace(base.sim, backend=args.backend)
    robots = (
        [("nominal", no_randomization(base))]
        if args.nominal_only
        else [("randomised", base), ("nominal", no_randomization(base))]
    )
    header = f"{'policy':8} {'robot':10} {'command':22} {'|v err| m/s':>12} {'|w err| rad/s':>14}"
    print(f"{header} {'tracking':>9} {'falls':>6}")
    for name, path in paths.items():
        for robot, cfg in robots:
            for label in args.commands:
                command = COMMANDS[label]
                r = measure(path, args.task, with_command(cfg, command), args.seconds, device)
                print(
                    f"{name:8} {robot:10} {label:22} {r['lin_err']:12.3f} {r['ang_err']:14.3f} "
                    f"{r['tracking']:9.3f} {r['falls_per_env']:6.2f}",
                    flush=True,
                )


if __name__ == "__main__":
    main()
