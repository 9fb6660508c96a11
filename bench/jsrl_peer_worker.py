"""One seed of the peer JSRL (PyPI ``jsrl`` 0.0.3: TD3 + JSRL-curriculum on Stable-Baselines3) on our point-maze task.

    bench/.venv-jsrl/bin/python bench/jsrl_peer_worker.py --seed S [--threads T] [--budget-s B] [--eval-every N]
        [--max-steps M]

Runs inside ``bench/.venv-jsrl`` (made by ``bench/jsrl_vs_peer.py``: jsrl 0.0.3 with stable-baselines3 2.1.0, the
newest it runs with -- it asks for ``>=2.0.0``, but from 2.2 on ``BaseCallback.logger`` is a read-only property and
its ``JSRLAfterEvalCallback.__init__`` fails assigning it), imports our task with the repository root on ``sys.path``
and prints one JSON line. Protocol:

- Env: :class:`MazeGymEnv`, a single-env ``gymnasium.Env`` around our batched ``PointMazeEnv`` (``num_envs=1``), so
  the dynamics, start and goal draws, sparse reward, termination on success and 500-step truncation are ours; in a
  ``Monitor`` in a ``DummyVecEnv`` (the package reads ``env.buf_dones``).
- Guide: our scripted ``point_maze_guide`` (~70 % success) as an SB3-style object (:class:`ScriptedGuide`).
- Algorithm: ``get_jsrl_algorithm(TD3)("MlpPolicy", ...)`` as the package's example ``train_jsrl_curriculum.py`` uses
  it: TD3's defaults (no action noise; the package forces ``learning_starts=0``), curriculum strategy, horizons
  ``arange(100, -1, -10)`` (H = 100, the guide's typical episode length, n = 10 steps down to 0) and the package's
  defaults for the gate: tolerance 0, window 1, its own evaluation of 20 deterministic combined-policy episodes every
  1000 steps, on the training env itself (as the package wires it). That evaluation is part of the algorithm (it moves
  the curriculum), so its time counts; it is reported apart (``package_eval_seconds``, ``env_steps_package_eval``).
- Threshold (the same as ours): the learner alone -- TD3's actor, deterministic, no guide (horizon 0) -- succeeds in
  >= 90 % of 64 episodes (64 parallel mazes of a separate env seeded ``seed + 10000``), evaluated by this worker every
  ``--eval-every`` env steps (default 1000; a 64-episode evaluation costs <= 0.6 s, ~5 % of the training time of
  1000 steps at the ~60-100 steps/s measured on a loaded 2-core machine). Training stops there, or once the clock
  passes ``--budget-s`` (checked every env step; a package evaluation under way finishes first).
- Clock: starts before the env and the model are built. ``seconds`` excludes this worker's threshold evaluations
  (ours excludes its evaluations too: ``summary.json``'s ``wall_seconds`` is collect + update time) and includes the
  package's; ``seconds_total`` includes both; the budget applies to ``seconds_total``. ``env_steps`` counts training
  steps only (SB3's ``num_timesteps``), as ours does.

The package's quirk, and what the counters show: SB3's off-policy ``collect_rollouts`` calls
``policy.set_training_mode(False)``, and the package's ``JSRLPolicy.predict`` uses horizon 0 (no guide) when ``not
self.training and not self.jsrl_evaluation``. The guide still acts in training rollouts, because
``JSRLEvalCallback._on_step`` sets ``jsrl_evaluation = True`` on *every* env step and only the after-evaluation
callback sets it back to False -- for the one step after each package evaluation. Measured (seed 0, 3000 steps):
1771 guide calls in 3000 training steps (59 %), 5618 in the package's evaluations; so the published package is run as
is, without a patched variant. Other quirks, left as published: the package evaluates on the training env, so the
transition stored right after each evaluation starts from the pre-evaluation observation; its per-env step counter
is not reset by the evaluation's ``reset()`` and restarts one step late after an episode ends (the guide acts on steps
1..h+1 of an episode, and on step 0 only if the previous episode lasted <= h steps).
"""

# pyright: reportMissingImports=false
# (stable_baselines3 and jsrl live in bench/.venv-jsrl, not in this library's environment)
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

START = time.perf_counter()
ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import gymnasium  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402
from tensordict import TensorDict  # noqa: E402

from tasks.classic.point_maze import PointMazeCfg, PointMazeEnv, point_maze_guide  # noqa: E402

THRESHOLD = 0.9
"""Success rate of the learner alone that counts as solved (the task's ``stop_at_return``)."""
EVAL_EPISODES = 64
"""Episodes per threshold evaluation, as ours."""
MAX_HORIZON = 100
"""H: the guide's typical episode length (~96 steps in the U), as our ``--jsrl.horizon 100``."""
STAGES = 10
"""n: the package's curriculum is ``arange(H, -1, -H // n)``, H down to 0."""

PHASE = {"package_eval": False}
"""Whether the package's own evaluation (SB3's ``evaluate_policy`` inside ``JSRLEvalCallback``) is running."""
COUNTS = {
    "guide_calls_train": 0,
    "guide_calls_package_eval": 0,
    "env_steps_package_eval": 0,
    "package_evals": 0,
}
TIMES = {"package_eval": 0.0}


class MazeGymEnv(gymnasium.Env):
    """Our ``PointMazeEnv`` with one maze as a gymnasium env: numpy in and out, the same dynamics and episodes."""

    def __init__(self, seed: int) -> None:
        self.task = PointMazeEnv(PointMazeCfg(num_envs=1), seed=seed)
        self.observation_space = gymnasium.spaces.Box(-np.inf, np.inf, (6,), np.float32)
        self.action_space = gymnasium.spaces.Box(-1.0, 1.0, (2,), np.float32)

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None) -> tuple[np.ndarray, dict]:
        super().reset(seed=seed)
        if seed is not None:
            self.task.generator.manual_seed(seed)
        return self.task.reset()["policy"][0].numpy(), {}

    def step(self, action: np.ndarray) -> tuple[np.ndarray, float, bool, bool, dict]:
        if PHASE["package_eval"]:
            COUNTS["env_steps_package_eval"] += 1
        obs, reward, terminated, truncated, extras = self.task.step(torch.as_tensor(action).view(1, 2))
        done = bool(terminated[0] or truncated[0])
        # On the last step, the observation the maze reached (the task has already reset itself; so will SB3).
        row = (extras["final_obs"] if done else obs)["policy"][0].numpy()
        info = {"is_success": bool(terminated[0])}
        return row, float(reward[0]), bool(terminated[0]), bool(truncated[0]), info


class ScriptedGuide:
    """``point_maze_guide`` with SB3's ``predict`` signature on numpy batches; counts its calls by phase."""

    def __init__(self, task: PointMazeEnv) -> None:
        self.act = point_maze_guide(task)

    def predict(
        self,
        observation: np.ndarray,
        state: Any = None,
        episode_start: np.ndarray | None = None,
        deterministic: bool = False,
    ) -> tuple[np.ndarray, None]:
        COUNTS["guide_calls_package_eval" if PHASE["package_eval"] else "guide_calls_train"] += 1
        obs = torch.as_tensor(observation, dtype=torch.float32).view(-1, 6)
        actions = self.act(TensorDict({"policy": obs}, batch_size=[obs.shape[0]]))
        return actions.numpy().astype(np.float32), None


def instrument_package_eval() -> None:
    """Mark, count and time the package's own evaluations: wraps the ``evaluate_policy`` that SB3's ``EvalCallback``
    (and so ``JSRLEvalCallback``) calls. Measurement only; what it evaluates and returns is unchanged."""
    from stable_baselines3.common import callbacks

    inner = callbacks.evaluate_policy

    def evaluate_policy(*args: Any, **kwargs: Any) -> Any:
        PHASE["package_eval"] = True
        COUNTS["package_evals"] += 1
        t0 = time.perf_counter()
        try:
            return inner(*args, **kwargs)
        finally:
            TIMES["package_eval"] += time.perf_counter() - t0
            PHASE["package_eval"] = False

    callbacks.evaluate_policy = evaluate_policy


@torch.no_grad()
def learner_success(model: Any, task: PointMazeEnv) -> float:
    """Success rate of the learner alone (TD3's actor, deterministic, no guide) over one episode in each of the
    ``task``'s mazes; batched, like our evaluation."""
    obs = task.reset()["policy"]
    done = torch.zeros(task.num_envs, dtype=torch.bool)
    success = torch.zeros(task.num_envs, dtype=torch.bool)
    low = torch.as_tensor(model.action_space.low)
    high = torch.as_tensor(model.action_space.high)
    while not bool(done.all()):
        scaled = model.actor(obs)  # tanh-squashed in [-1, 1]: SB3's predict unscales it to the action space
        actions = low + 0.5 * (scaled + 1.0) * (high - low)
        next_obs, _, terminated, truncated, _ = task.step(actions)
        obs = next_obs["policy"]
        success |= terminated & ~done
        done |= terminated | truncated
    return float(success.float().mean())


def train(seed: int, budget_s: float, eval_every: int, max_steps: int | None) -> dict[str, Any]:
    import stable_baselines3
    from jsrl import get_jsrl_algorithm
    from stable_baselines3 import TD3
    from stable_baselines3.common.callbacks import BaseCallback
    from stable_baselines3.common.monitor import Monitor
    from stable_baselines3.common.vec_env import DummyVecEnv

    instrument_package_eval()
    imported = time.perf_counter()
    t0 = time.perf_counter()
    maze = MazeGymEnv(seed)
    env = DummyVecEnv([lambda: Monitor(maze)])
    eval_task = PointMazeEnv(PointMazeCfg(num_envs=EVAL_EPISODES), seed=seed + 10_000)
    guide = ScriptedGuide(maze.task)
    model = get_jsrl_algorithm(TD3)(
        "MlpPolicy",
        env,
        policy_kwargs={
            "guide_policy": guide,
            "max_horizon": MAX_HORIZON,
            "horizons": np.arange(MAX_HORIZON, -1, -MAX_HORIZON // STAGES),
        },
        seed=seed,
        device="cpu",
        verbose=0,
    )
    history: list[dict[str, float]] = []
    state = {"eval_seconds": 0.0, "solved": None}

    class Threshold(BaseCallback):
        """Every ``eval_every`` env steps: the learner alone on 64 episodes; stop at the threshold or the budget."""

        def _on_step(self) -> bool:
            steps = self.model.num_timesteps
            if steps % eval_every == 0:
                e0 = time.perf_counter()
                rate = learner_success(self.model, eval_task)
                e1 = time.perf_counter()
                state["eval_seconds"] += e1 - e0
                now = e1 - t0
                history.append(
                    {
                        "env_steps": steps,
                        "success": rate,
                        "seconds": now - state["eval_seconds"],
                        "horizon": float(self.model.policy.horizon),
                        "guide_calls_train": COUNTS["guide_calls_train"],
                    }
                )
                if rate >= THRESHOLD:
                    state["solved"] = {"env_steps": steps, "seconds": now - state["eval_seconds"], "seconds_total": now}
                    return False
            if max_steps is not None and steps >= max_steps:
                return False
            return time.perf_counter() - t0 < budget_s

    model.learn(total_timesteps=10**9, callback=Threshold())
    ran_total = time.perf_counter() - t0
    solved = state["solved"]
    steps = int(model.num_timesteps)
    return {
        "solved": solved is not None,
        "env_steps": solved["env_steps"] if solved else None,
        "seconds": solved["seconds"] if solved else None,
        "seconds_total": solved["seconds_total"] if solved else None,
        "ran_env_steps": steps,
        "ran_seconds": ran_total - state["eval_seconds"],
        "ran_seconds_total": ran_total,
        "threshold_eval_seconds": state["eval_seconds"],
        "threshold_eval_every": eval_every,
        "package_eval_seconds": TIMES["package_eval"],
        "import_seconds": imported - START,
        "env_steps_per_second": steps / (ran_total - state["eval_seconds"]),
        "final_horizon": int(model.policy.horizon),
        "best_success": max((h["success"] for h in history), default=None),
        "guide_share_train": COUNTS["guide_calls_train"] / max(steps, 1),
        **COUNTS,
        "history": history,
        "versions": {
            "stable_baselines3": stable_baselines3.__version__,
            "jsrl": _version("jsrl"),
            "torch": torch.__version__,
            "gymnasium": gymnasium.__version__,
        },
    }


def _version(name: str) -> str:
    import importlib.metadata

    return importlib.metadata.version(name)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--budget-s", type=float, default=600.0, help="wall-clock cap of the run (s)")
    parser.add_argument("--eval-every", type=int, default=1000, help="env steps between threshold evaluations")
    parser.add_argument("--max-steps", type=int, default=None, help="cap of env steps (checks; default none)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    result = train(args.seed, args.budget_s, args.eval_every, args.max_steps)
    print(json.dumps({"library": "jsrl", "seed": args.seed, "threads": args.threads, **result}))


if __name__ == "__main__":
    main()
