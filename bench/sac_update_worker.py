"""One side of bench/sac_update_throughput.py: times SAC gradient steps (critic + actor + temperature) of ours or of
Stable-Baselines3 on random replay data, in its own process.

    python sac_update_worker.py ours BATCH UPDATES THREADS      (in this library's venv)
    python sac_update_worker.py sb3 BATCH UPDATES THREADS       (in bench/.venv-sb3)

Same networks on both sides: actor and two critics MLP 256-256 ReLU, no LayerNorm, obs dim 48, action dim 12 (a
legged-robot shape), actions in [−1, 1], Adam, learned α, one actor/α step and one Polyak update per critic step,
1-step targets. The replay holds ``REPLAY`` random transitions. One call of ``UPDATES`` gradient steps warms up, a
second one is timed. Prints one JSON line.
"""

# pyright: reportMissingImports=false
# (stable_baselines3 and gymnasium live in bench/.venv-sb3, not in this library's environment)
from __future__ import annotations

import json
import sys
import time
from typing import Any

import torch

OBS_DIM = 48
ACTION_DIM = 12
HIDDEN = (256, 256)
NUM_ENVS = 256
"""Parallel envs that fill our replay (one column each)."""
ROWS = 256
"""Replay rows per env: ours holds NUM_ENVS × ROWS transitions, SB3's buffer as many."""
REPLAY = NUM_ENVS * ROWS
END_PROBABILITY = 0.005
"""Chance that a random transition ends an episode (half terminations, half time-outs)."""


def ours(batch: int, updates: int, mixed_precision: bool = False) -> dict[str, Any]:
    from tensordict import TensorDict

    from rsl_rl.algorithms.sac import SAC, SACConfig
    from rsl_rl.modules.sac_models import QEnsemble, SACActorConfig, SACCriticConfig, SquashedGaussianActor

    t0 = time.perf_counter()
    ones = torch.ones(ACTION_DIM)
    actor = SquashedGaussianActor(
        OBS_DIM, ACTION_DIM, SACActorConfig(hidden_dims=HIDDEN, activation="relu"), low=-ones, high=ones
    )
    critic = QEnsemble(OBS_DIM, ACTION_DIM, SACCriticConfig(hidden_dims=HIDDEN, activation="relu", layer_norm=False))
    cfg = SACConfig(
        batch_size=batch,
        num_updates=updates,
        policy_delay=1,
        n_step=1,
        replay_capacity=ROWS,
        use_mixed_precision=mixed_precision,
    )
    obs_groups = {"actor": ["policy"], "critic": ["policy"]}
    sac = SAC(actor, critic, cfg, obs_groups, NUM_ENVS, "cpu")
    with torch.inference_mode():
        for _ in range(ROWS):
            sac.act(TensorDict({"policy": torch.randn(NUM_ENVS, OBS_DIM)}, batch_size=[NUM_ENVS]))
            ended = torch.rand(NUM_ENVS) < END_PROBABILITY
            terminated = ended & (torch.rand(NUM_ENVS) < 0.5)
            final_obs = TensorDict({"policy": torch.randn(NUM_ENVS, OBS_DIM)}, batch_size=[NUM_ENVS])
            next_obs = TensorDict({"policy": torch.randn(NUM_ENVS, OBS_DIM)}, batch_size=[NUM_ENVS])
            extras = {"final_obs": final_obs, "time_outs": ended & ~terminated}
            sac.process_env_step(next_obs, torch.randn(NUM_ENVS), ended, extras)
    assert sac.storage.size * NUM_ENVS == REPLAY and sac.ready()
    setup = time.perf_counter() - t0
    sac.train_mode()
    t1 = time.perf_counter()
    stats = sac.update()  # warm-up
    warmup = time.perf_counter() - t1
    assert float(stats["gradient_steps"]) == updates
    t2 = time.perf_counter()
    stats = sac.update()
    seconds = time.perf_counter() - t2
    return {"seconds": seconds, "warmup_seconds": warmup, "setup_seconds": setup, "steps": sac.num_gradient_steps}


def sb3(batch: int, updates: int) -> dict[str, Any]:
    import gymnasium as gym
    import numpy as np
    from stable_baselines3 import SAC

    class RandomEnv(gym.Env):
        """Box observations (48,) and actions (12,) in [−1, 1]; never stepped (the replay is filled directly)."""

        observation_space = gym.spaces.Box(-np.inf, np.inf, (OBS_DIM,), np.float32)
        action_space = gym.spaces.Box(-1.0, 1.0, (ACTION_DIM,), np.float32)

        def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None) -> tuple[Any, dict]:
            super().reset(seed=seed)
            return np.zeros(OBS_DIM, np.float32), {}

        def step(self, action: Any) -> tuple[Any, float, bool, bool, dict]:
            return np.random.randn(OBS_DIM).astype(np.float32), float(np.random.randn()), False, False, {}

    t0 = time.perf_counter()
    model = SAC(
        "MlpPolicy",
        RandomEnv(),
        policy_kwargs={"net_arch": list(HIDDEN)},
        batch_size=batch,
        buffer_size=REPLAY,
        device="cpu",
    )
    model._setup_learn(total_timesteps=2 * updates)  # logger and learning-rate schedule, as learn() sets them up
    rng = np.random.default_rng(0)
    buffer = model.replay_buffer
    assert buffer is not None
    for _ in range(REPLAY):
        ended = rng.random() < END_PROBABILITY
        timeout = bool(ended and rng.random() < 0.5)
        buffer.add(
            rng.standard_normal((1, OBS_DIM), dtype=np.float32),
            rng.standard_normal((1, OBS_DIM), dtype=np.float32),
            rng.uniform(-1.0, 1.0, (1, ACTION_DIM)).astype(np.float32),
            rng.standard_normal(1, dtype=np.float32),
            np.array([ended]),
            [{"TimeLimit.truncated": timeout}],
        )
    assert buffer.full
    setup = time.perf_counter() - t0
    t1 = time.perf_counter()
    model.train(gradient_steps=updates, batch_size=batch)  # warm-up
    warmup = time.perf_counter() - t1
    t2 = time.perf_counter()
    model.train(gradient_steps=updates, batch_size=batch)
    seconds = time.perf_counter() - t2
    return {"seconds": seconds, "warmup_seconds": warmup, "setup_seconds": setup, "steps": model._n_updates}


if __name__ == "__main__":
    which, batch, updates, threads = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
    torch.set_num_threads(threads)
    torch.manual_seed(0)
    result = sb3(batch, updates) if which == "sb3" else ours(batch, updates, mixed_precision=which == "ours-bf16")
    steps_per_second = updates / result["seconds"]
    record = {"library": which, "batch": batch, "updates": updates, "threads": threads}
    print(json.dumps({**record, "steps_per_second": steps_per_second, **result}))
