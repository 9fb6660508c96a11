"""PPO on InvertedPendulum: our native MuJoCo task vs gymnasium's InvertedPendulum-v5 through the adapter.

Same PPO config, same budget (at most 100 iterations of 16 envs × 64 steps), same stopping rule (deterministic
evaluation on 8 envs every 5 iterations reaching the maximum return, 1000), per seed. Reports the env steps and the
wall-clock to solve and the final check return on 16 fresh episodes. Run with nothing beside it:

    OMP_NUM_THREADS=1 .venv/bin/python bench/gymnasium_adapter.py [SEEDS]

Ends with ``ratio=<native wall-clock to solve / adapter wall-clock to solve>`` (median over seeds; lower is better
for the native task).
"""

from __future__ import annotations

import statistics
import sys
import time
from pathlib import Path
from typing import Any

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from rsl_rl.runners import make_runner  # noqa: E402
from tasks.adapters import GymnasiumEnv  # noqa: E402
from tasks.rrls.inverted_pendulum import InvertedPendulumCfg, InvertedPendulumEnv  # noqa: E402

NUM_ENVS, STEPS, MAX_ITERATIONS = 16, 64, 100


def config() -> dict[str, Any]:
    """The adapter test's rsl-rl-lib style config (tests/tasks/test_adapters.py)."""
    return {
        "num_steps_per_env": STEPS,
        "max_iterations": MAX_ITERATIONS,
        "save_interval": 1000,
        "obs_groups": {"actor": ["policy"], "critic": ["policy"]},
        "logger": "none",
        "eval_interval": 5,
        "eval_episodes": 8,
        "stop_at_return": 1000.0,
        "algorithm": {
            "class_name": "PPO",
            "num_learning_epochs": 10,
            "num_mini_batches": 4,
            "learning_rate": 1e-3,
            "entropy_coef": 0.0,
        },
        "actor": {
            "class_name": "MLPModel",
            "hidden_dims": [64, 64],
            "activation": "tanh",
            "distribution_cfg": {"class_name": "GaussianDistribution", "init_std": 1.0, "std_type": "log"},
        },
        "critic": {"class_name": "MLPModel", "hidden_dims": [64, 64], "activation": "tanh"},
    }


def make(kind: str, num_envs: int, seed: int) -> Any:
    if kind == "adapter":
        return GymnasiumEnv("InvertedPendulum-v5", num_envs, seed=seed)
    return InvertedPendulumEnv(InvertedPendulumCfg(num_envs=num_envs), seed=seed)


def run(kind: str, seed: int) -> dict[str, float]:
    torch.manual_seed(seed)
    env, eval_env = make(kind, NUM_ENVS, seed), make(kind, 8, seed + 1000)
    runner = make_runner(env, config(), None, "cpu", eval_env=eval_env, show_progress=False)
    start = time.perf_counter()
    runner.learn()
    elapsed = time.perf_counter() - start
    check = float(runner.evaluate(make(kind, 16, seed + 5000)).mean())
    solved = runner.solved_at or {}
    return {
        "solved": float(bool(solved)),
        "env_steps": float(solved.get("env_steps", runner.env_steps)),
        "seconds": float(solved.get("wall_seconds", elapsed)),
        "check_return": check,
    }


def main() -> None:
    torch.set_num_threads(1)
    seeds = [int(s) for s in sys.argv[1].split(",")] if len(sys.argv) > 1 else [0, 1, 2]
    results: dict[str, list[dict[str, float]]] = {"native": [], "adapter": []}
    for seed in seeds:
        for kind in ("native", "adapter"):  # alternating, as every benchmark here
            r = run(kind, seed)
            results[kind].append(r)
            print(f"{kind:8s} seed {seed}: solved={bool(r['solved'])} env_steps={r['env_steps']:.0f} "
                  f"seconds={r['seconds']:.1f} check_return={r['check_return']:.1f}", flush=True)  # fmt: skip
    for kind, rs in results.items():
        print(f"{kind:8s} median env_steps={statistics.median(r['env_steps'] for r in rs):.0f} "
              f"median seconds={statistics.median(r['seconds'] for r in rs):.1f} "
              f"solved {sum(int(r['solved']) for r in rs)}/{len(rs)}")  # fmt: skip
    native = statistics.median(r["seconds"] for r in results["native"])
    adapter = statistics.median(r["seconds"] for r in results["adapter"])
    print(f"ratio={native / adapter:.3f}")


if __name__ == "__main__":
    main()
