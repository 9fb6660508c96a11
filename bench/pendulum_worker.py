"""Time to solve Pendulum (deterministic evaluation ≥ −200) for one seed; runs ours or Stable-Baselines3.

    python pendulum_worker.py ours SEED THREADS      (in this library's venv)
    python pendulum_worker.py sb3 SEED THREADS       (in bench/.venv-sb3)

Protocol (reference/measurements.md): the clock starts before the env and the model are built and stops at the first
evaluation that reaches −200, evaluation included. Prints one JSON line.
"""

# pyright: reportMissingImports=false
# (stable_baselines3 lives in bench/.venv-sb3, not in this library's environment)
from __future__ import annotations

import json
import sys
import time

START = time.perf_counter()

import torch  # noqa: E402


def ours(seed: int) -> dict[str, float]:
    import dataclasses

    from rsl_rl.cli.run_support import seed_everything
    from rsl_rl.registry import get_task
    from rsl_rl.runners import OnPolicyRunner

    imported = time.perf_counter()
    spec = get_task("pendulum")
    seed_everything(seed)
    env_cfg, cfg = spec.env_cfg(), spec.train_cfg()  # the task's default config, as `rsl-rl train` uses it
    cfg.logger = "none"
    t0 = time.perf_counter()
    env = spec.build(env_cfg, seed=seed)
    eval_env = spec.build(dataclasses.replace(env_cfg, num_envs=cfg.eval_episodes), seed=seed + 10_000)
    runner = OnPolicyRunner(env, cfg, None, "cpu", eval_env=eval_env, show_progress=False)
    runner.learn(init_at_random_ep_len=True)
    seconds = time.perf_counter() - t0
    solved = runner.solved_at
    return {
        "seconds": seconds if solved else float("nan"),
        "env_steps": solved["env_steps"] if solved else float("nan"),
        "train_seconds": solved["wall_seconds"] if solved else float("nan"),
        "import_seconds": imported - START,
    }


def sb3(seed: int) -> dict[str, float]:
    from stable_baselines3 import PPO
    from stable_baselines3.common.callbacks import EvalCallback, StopTrainingOnRewardThreshold
    from stable_baselines3.common.env_util import make_vec_env

    imported = time.perf_counter()
    t0 = time.perf_counter()
    env = make_vec_env("Pendulum-v1", n_envs=4, seed=seed)
    eval_env = make_vec_env("Pendulum-v1", n_envs=1, seed=seed + 10_000)
    # rl-baselines3-zoo's tuned Pendulum-v1 hyperparameters (hyperparams/ppo.yml).
    model = PPO(
        "MlpPolicy",
        env,
        n_steps=1024,
        gae_lambda=0.95,
        gamma=0.9,
        n_epochs=10,
        ent_coef=0.0,
        learning_rate=1e-3,
        clip_range=0.2,
        use_sde=True,
        sde_sample_freq=4,
        seed=seed,
        device="cpu",
    )
    stop = StopTrainingOnRewardThreshold(reward_threshold=-200, verbose=0)
    callback = EvalCallback(eval_env, eval_freq=250, n_eval_episodes=10, callback_on_new_best=stop, verbose=0)
    model.learn(total_timesteps=100_000, callback=callback)
    seconds = time.perf_counter() - t0
    solved = callback.best_mean_reward >= -200
    return {
        "seconds": seconds if solved else float("nan"),
        "env_steps": float(model.num_timesteps) if solved else float("nan"),
        "import_seconds": imported - START,
    }


if __name__ == "__main__":
    which, seed, threads = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
    torch.set_num_threads(threads)
    print(json.dumps({"library": which, "seed": seed, **(ours(seed) if which == "ours" else sb3(seed))}))
