"""Time to solve Pendulum (deterministic evaluation ≥ −200) with SAC for one seed; runs ours or Stable-Baselines3.

    python sac_worker.py ours SEED THREADS [MAX_STEPS]      (in this library's venv)
    python sac_worker.py sb3 SEED THREADS [MAX_STEPS]       (in bench/.venv-sb3)

Protocol (reference/measurements.md): the clock starts before the env and the model are built and stops at the first
evaluation that reaches −200, evaluation included. Ours trains with the pendulum task's SAC config
(``spec.agent_cfg("sac")``) and evaluates on ``eval_episodes`` parallel envs seeded ``seed + 10000``; SB3 runs
``SAC("MlpPolicy")`` with its defaults and learning rate 1e-3 on ``Pendulum-v1``, evaluating 10 deterministic episodes
every 1000 steps, for at most 20,000 steps. ``MAX_STEPS`` (tiny checks) caps the env steps of either side. Prints one
JSON line; an unsolved run reports NaN seconds and env steps.
"""

# pyright: reportMissingImports=false
# (stable_baselines3 lives in bench/.venv-sb3, not in this library's environment)
from __future__ import annotations

import json
import sys
import time

START = time.perf_counter()

import torch  # noqa: E402

THRESHOLD = -200.0
"""Mean deterministic evaluation return that counts as solved."""
SB3_TOTAL_TIMESTEPS = 20_000
"""SB3's training budget (reference: it solves in 3,000–4,000 steps)."""


def ours(seed: int, max_steps: int | None) -> dict[str, float]:
    import dataclasses

    from rsl_rl.cli.run_support import seed_everything
    from rsl_rl.registry import get_task
    from rsl_rl.runners import make_runner

    imported = time.perf_counter()
    spec = get_task("pendulum")
    seed_everything(seed)
    env_cfg, cfg = spec.env_cfg_for("sac"), spec.agent_cfg("sac")  # as `rsl-rl train --algo sac` uses them
    cfg.logger = "none"
    cfg.stop_at_return = THRESHOLD  # the protocol's threshold (the task config may already say so)
    if max_steps is not None:
        per_iteration = env_cfg.num_envs * cfg.num_steps_per_env
        cfg.max_iterations = min(cfg.max_iterations, max(1, max_steps // per_iteration))
    t0 = time.perf_counter()
    env = spec.build(env_cfg, seed=seed)
    eval_env = spec.build(dataclasses.replace(env_cfg, num_envs=cfg.eval_episodes), seed=seed + 10_000)
    runner = make_runner(env, cfg, None, "cpu", eval_env=eval_env, show_progress=False)
    runner.learn(init_at_random_ep_len=True)
    seconds = time.perf_counter() - t0
    solved = runner.solved_at
    return {
        "seconds": seconds if solved else float("nan"),
        "env_steps": float(solved["env_steps"]) if solved else float("nan"),
        "train_seconds": float(solved["wall_seconds"]) if solved else float("nan"),
        "import_seconds": imported - START,
        "ran_seconds": seconds,
        "ran_env_steps": float(runner.env_steps),
        "best_eval_return": max((r for _, r in runner.eval_history), default=float("nan")),
    }


def sb3(seed: int, max_steps: int | None) -> dict[str, float]:
    from stable_baselines3 import SAC
    from stable_baselines3.common.callbacks import EvalCallback, StopTrainingOnRewardThreshold
    from stable_baselines3.common.env_util import make_vec_env

    imported = time.perf_counter()
    t0 = time.perf_counter()
    env = make_vec_env("Pendulum-v1", n_envs=1, seed=seed)
    eval_env = make_vec_env("Pendulum-v1", n_envs=1, seed=seed + 10_000)
    model = SAC("MlpPolicy", env, learning_rate=1e-3, seed=seed, device="cpu")
    stop = StopTrainingOnRewardThreshold(reward_threshold=THRESHOLD, verbose=0)
    callback = EvalCallback(eval_env, eval_freq=1000, n_eval_episodes=10, callback_on_new_best=stop, verbose=0)
    total = SB3_TOTAL_TIMESTEPS if max_steps is None else min(SB3_TOTAL_TIMESTEPS, max_steps)
    model.learn(total_timesteps=total, callback=callback)
    seconds = time.perf_counter() - t0
    solved = callback.best_mean_reward >= THRESHOLD
    return {
        "seconds": seconds if solved else float("nan"),
        "env_steps": float(model.num_timesteps) if solved else float("nan"),
        "import_seconds": imported - START,
        "ran_seconds": seconds,
        "ran_env_steps": float(model.num_timesteps),
        "best_eval_return": float(callback.best_mean_reward),
    }


if __name__ == "__main__":
    which, seed, threads = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
    max_steps = int(sys.argv[4]) if len(sys.argv) > 4 else None
    torch.set_num_threads(threads)
    result = ours(seed, max_steps) if which == "ours" else sb3(seed, max_steps)
    print(json.dumps({"library": which, "seed": seed, "threads": threads, **result}))
