"""One side of bench/ppo_vs_rsl_rl.py: builds an OnPolicyRunner from an rsl_rl 5.x dict and runs iterations on command.

Runs under whichever ``rsl_rl`` its interpreter has (rsl-rl-lib 5.5.1 in bench/.venv-rsl_rl, or this library).
Protocol: reads ``run N`` lines on stdin, answers one ``@@bench <json>`` line per command with the per-iteration
timings.
"""

from __future__ import annotations

import inspect
import json
import sys
from pathlib import Path
from typing import Any

import torch

sys.path.insert(0, str(Path(__file__).parent))
from point_mass_env import PointMassEnv  # noqa: E402

from rsl_rl.runners import OnPolicyRunner  # noqa: E402

MARKER = "@@bench "


def train_cfg() -> dict[str, Any]:
    """The issue's settings: 4096 envs × 24 steps, MLP 512-256-128 ELU, 5 epochs × 4 mini-batches."""
    mlp = {"hidden_dims": [512, 256, 128], "activation": "elu", "obs_normalization": False}
    return {
        "num_steps_per_env": 24,
        "save_interval": 10_000,
        "obs_groups": {"actor": ["policy"], "critic": ["policy"]},
        "logger": "tensorboard",
        "algorithm": {
            "class_name": "PPO",
            "num_learning_epochs": 5,
            "num_mini_batches": 4,
            "clip_param": 0.2,
            "gamma": 0.99,
            "lam": 0.95,
            "value_loss_coef": 1.0,
            "entropy_coef": 0.01,
            "learning_rate": 1e-3,
            "max_grad_norm": 1.0,
            "use_clipped_value_loss": True,
            "schedule": "adaptive",
            "desired_kl": 0.01,
        },
        "actor": {
            "class_name": "MLPModel",
            **mlp,
            "distribution_cfg": {"class_name": "GaussianDistribution", "init_std": 1.0, "std_type": "scalar"},
        },
        "critic": {"class_name": "MLPModel", **mlp},
    }


def reply(message: dict[str, Any]) -> None:
    """Answer the driver; the marker separates answers from whatever the libraries print."""
    print(MARKER + json.dumps(message), flush=True)


def main() -> None:
    threads, num_envs, seed = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])
    torch.set_num_threads(threads)
    torch.manual_seed(seed)
    env = PointMassEnv(num_envs=num_envs, seed=seed)
    kwargs: dict[str, Any] = {}
    if "show_progress" in inspect.signature(OnPolicyRunner.__init__).parameters:
        kwargs["show_progress"] = False
    runner = OnPolicyRunner(env, train_cfg(), log_dir=None, device="cpu", **kwargs)
    times: list[tuple[float, float]] = []
    if hasattr(runner.logger, "history"):  # this library: the runner records each iteration itself

        def read() -> list[tuple[float, float]]:
            return [(r["collection_time"], r["learning_time"]) for r in runner.logger.history]
    else:  # rsl-rl-lib: capture the timings its runner hands to its logger
        original_log = getattr(runner.logger, "log")  # noqa: B009 -- rsl-rl-lib's Logger.log

        def log(**kw: Any) -> None:
            times.append((kw["collect_time"], kw["learn_time"]))
            original_log(**kw)

        setattr(runner.logger, "log", log)  # noqa: B010 -- rsl-rl-lib's Logger.log

        def read() -> list[tuple[float, float]]:
            return times

    first = True
    reply({"ready": True, "library": getattr(sys.modules["rsl_rl"], "__file__", "")})
    for line in sys.stdin:
        command, count = line.split()
        if command != "run":
            break
        done = len(read())
        runner.learn(int(count), init_at_random_ep_len=first)
        first = False
        reply({"iterations": read()[done:]})


if __name__ == "__main__":
    main()
