"""MuJoCo throughput: our simulation layer vs raw ``mujoco.rollout``, and our batched Ant vs gymnasium vector envs.

1. Physics: N worlds of a quadruped-class model (gymnasium's ``ant.xml``: 8 actuators, contacts) under random
   controls, decimation 4: our ``cpu`` backend (``mujoco.batch`` path and thread-pool path) vs ``mujoco.rollout``
   with a persistent ``Rollout`` on the same threads, feeding back each call's last state. ``ratio=`` is ours/rollout
   physics steps per second (higher is better; goal ≥ 0.9).
2. Task: our ``ant`` task (gymnasium Ant-v5 obs/reward/termination, auto-reset) with N envs vs gymnasium's
   ``SyncVectorEnv`` and ``AsyncVectorEnv`` of ``Ant-v5`` with 8 envs, random actions: env-steps per second
   (goal ≥ 2.5x the better gymnasium vector env).
3. The same task on the ``warp`` backend (Warp's CPU device here: single-threaded; CUDA when available).

Medians of repeats, ``torch.set_num_threads(threads)``, nothing else running.

    python bench/mujoco_throughput.py [--threads 2] [--worlds 1024] [--repeats 5] [--skip-warp | --warp-only]
"""

# pyright: reportAttributeAccessIssue=false
# (mujoco's compiled modules are re-exported with `import *`, which pyright cannot follow)

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable

import gymnasium as gym
import mujoco
import numpy as np
import torch
from mujoco import rollout

from tasks.mujoco.sim import SimConfig, Simulator, load_model
from tasks.mujoco.task import gymnasium_asset
from tasks.rrls.ant import AntCfg, AntEnv


def interleaved(candidates: dict[str, tuple[Callable[[], None], float]], repeats: int) -> dict[str, float]:
    """Rates (work per second) of each candidate ``name -> (run, work per run)``, medians over ``repeats`` rounds.

    Every round runs each candidate once, in a rotating order, so that drifts of the shared machine hit all alike.
    """
    for run, _ in candidates.values():
        run()  # warm-up
    times: dict[str, list[float]] = {name: [] for name in candidates}
    names = list(candidates)
    for r in range(repeats):
        for name in names[r % len(names) :] + names[: r % len(names)]:
            start = time.perf_counter()
            candidates[name][0]()
            times[name].append(time.perf_counter() - start)
    return {name: candidates[name][1] / statistics.median(times[name]) for name in names}


def physics(args: argparse.Namespace) -> None:
    model = load_model(gymnasium_asset("ant.xml"))
    n, k, calls = args.worlds, 4, 5  # worlds, decimation, env steps per timed run
    rng = np.random.default_rng(0)
    ctrl = rng.uniform(-1.0, 1.0, (n, model.nu))
    candidates: dict[str, tuple[Callable[[], None], float]] = {}
    sims = []
    for label, fields in (("ours cpu (mujoco.batch)", ()), ("ours cpu (thread pool)", ("cfrc_ext",))):
        sim = Simulator(model, n, "cpu", k, fields, (), SimConfig(backend="cpu", nthread=args.threads))
        sim.ctrl[:] = torch.from_numpy(ctrl)
        sims.append(sim)

        def run(sim: Simulator = sim) -> None:
            for _ in range(calls):
                sim.step()

        candidates[label] = (run, n * k * calls)

    runner = rollout.Rollout(nthread=args.threads)
    datas = [mujoco.MjData(model) for _ in range(args.threads)]
    spec = mujoco.mjtState.mjSTATE_FULLPHYSICS
    state = np.zeros((n, mujoco.mj_stateSize(model, spec)))
    mujoco.mj_getState(model, mujoco.MjData(model), state[0], spec)
    state[:] = state[0]
    controls = np.repeat(ctrl[:, None, :], k, axis=1)
    out = np.zeros((n, k, state.shape[1]))

    def run_rollout() -> None:
        for _ in range(calls):
            runner.rollout(model, datas, state, controls, state=out)
            state[:] = out[:, -1]

    candidates["raw mujoco.rollout"] = (run_rollout, n * k * calls)
    rates = interleaved(candidates, args.repeats)
    runner.close()
    for sim in sims:
        sim.close()
    print(
        f"physics: ant.xml, {n} worlds, decimation {k}, {args.threads} threads "
        f"(physics steps/s, median of {args.repeats})"
    )
    for label, rate in rates.items():
        print(f"  {label:28s} {rate:12,.0f}")
    print(f"  thread-pool path / rollout: {rates['ours cpu (thread pool)'] / rates['raw mujoco.rollout']:.3f}")
    print(f"physics ratio={rates['ours cpu (mujoco.batch)'] / rates['raw mujoco.rollout']:.3f}")


def task_run(env: AntEnv, steps: int) -> tuple[Callable[[], None], float]:
    def run() -> None:
        with torch.inference_mode():
            for _ in range(steps):
                env.step(torch.rand(env.num_envs, env.num_actions) * 2.0 - 1.0)

    return run, env.num_envs * steps


def gym_run(vector: gym.vector.VectorEnv, steps: int) -> tuple[Callable[[], None], float]:
    vector.reset(seed=0)

    def run() -> None:
        for _ in range(steps):
            vector.step(vector.action_space.sample())

    return run, vector.num_envs * steps


def task(args: argparse.Namespace) -> None:
    candidates: dict[str, tuple[Callable[[], None], float]] = {}
    envs = []
    for n in (64, 256, 1024):
        env = AntEnv(AntCfg(num_envs=n, sim=SimConfig(backend="cpu", nthread=args.threads)))
        envs.append(env)
        candidates[f"ours ant, cpu, {n} envs"] = task_run(env, 5120 // n)  # ~5k env steps per run
    sync = gym.vector.SyncVectorEnv([lambda: gym.make("Ant-v5") for _ in range(8)])
    asynchronous = gym.vector.AsyncVectorEnv([lambda: gym.make("Ant-v5") for _ in range(8)])
    candidates["gymnasium SyncVectorEnv x8"] = gym_run(sync, 300)
    candidates["gymnasium AsyncVectorEnv x8"] = gym_run(asynchronous, 300)
    rates = interleaved(candidates, args.repeats)
    sync.close()
    asynchronous.close()
    for env in envs:
        env.close()
    print(f"task: Ant-v5, random actions, auto-reset, {args.threads} threads (env-steps/s, median of {args.repeats})")
    for label, rate in rates.items():
        print(f"  {label:30s} {rate:12,.0f}")
    ours = max(v for k, v in rates.items() if k.startswith("ours"))
    peer = max(v for k, v in rates.items() if k.startswith("gymnasium"))
    print(f"task ratio={ours / peer:.2f}")


def warp(args: argparse.Namespace) -> None:
    device = "cuda" if torch.cuda.is_available() else "cpu"
    sizes = (4096, 8192) if device == "cuda" else (256,)
    print(f"warp backend on {device} (env-steps/s of the ant task; first build includes kernel compilation)")
    for n in sizes:
        start = time.perf_counter()
        env = AntEnv(AntCfg(num_envs=n, sim=SimConfig(backend="warp")), device=device)
        built = time.perf_counter() - start
        rate = interleaved({"warp": task_run(env, 10)}, args.repeats)["warp"]
        print(f"  {n:6d} envs: {rate:12,.0f}  (build {built:.1f} s)")
        env.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--worlds", type=int, default=1024)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--skip-warp", action="store_true")
    parser.add_argument("--warp-only", action="store_true", help="only part 3 (e.g. on a GPU machine)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    if not args.warp_only:
        physics(args)
        task(args)
    if not args.skip_warp:
        warp(args)


if __name__ == "__main__":
    main()
