"""Jump-start RL: time to threshold on point-maze, ours (``rsl-rl train --jsrl curriculum``) vs the PyPI package
``jsrl`` 0.0.3 (Steven Tang's JSRL on Stable-Baselines3, TD3 + JSRL-curriculum as its README's examples train it).

    OMP_NUM_THREADS=2 .venv/bin/python bench/jsrl_vs_peer.py [--seeds 0 1] [--peer-budget-s 600] [--threads 2]
        [--our-max-iterations 600] [--peer-eval-every 1000]
    OMP_NUM_THREADS=1 .venv/bin/python bench/jsrl_vs_peer.py --seeds 0 --peer-budget-s 60 --our-max-iterations 10 \\
        --threads 1                                          (a smoke run: both sides start, train and report)

Protocol:

- Task: ``point-maze`` (U maze, sparse reward 1 on reaching the goal, which terminates; 500-step truncation), the same
  scripted imperfect guide ``point_maze_guide`` (~70 % success) on both sides, JSRL-curriculum with H = 100.
- Threshold, the same on both sides: the learner alone (no guide, deterministic actions) succeeds in >= 90 % of 64
  evaluation episodes (the task's ``stop_at_return``); training stops there.
- Ours: ``rsl-rl train --task point-maze --guide scripted --jsrl curriculum --jsrl.horizon 100`` (PPO on 256 mazes,
  evaluation every 10 iterations, at most ``--our-max-iterations``), one subprocess per seed. Time to threshold:
  ``summary.json``'s ``solved_at`` (env steps; ``wall_seconds`` = collect + update time, evaluation excluded).
- Peer: ``bench/jsrl_peer_worker.py`` in ``bench/.venv-jsrl`` (created here once: jsrl 0.0.3, stable-baselines3
  2.1.0 -- the newest the package runs with, see the worker --, our torch and tensordict versions). TD3 defaults,
  horizons ``arange(100, -1, -10)``, the package's gate defaults (tolerance 0, window 1, 20 evaluation episodes of
  the combined policy every 1000 steps, whose time counts); the worker evaluates the learner alone every
  ``--peer-eval-every`` env steps and stops at the threshold or once ``--peer-budget-s`` seconds of wall-clock have
  passed (a package evaluation under way finishes first: a few seconds over).
  Time to threshold: env steps, and seconds from before the env and model are built, its threshold evaluations
  excluded (as ours).
- The package's quirk (SB3's rollouts run with ``training=False``, and its ``predict`` drops the guide then unless
  ``jsrl_evaluation`` is set) was measured: the flag stays set between its evaluations, so the guide does act in
  training rollouts (51-59 % of the first 3000-4000 training steps, seed 0); the package runs as published, without a
  patched variant. The JSON keeps the worker's counters (``guide_calls_train``, ``guide_share_train``).
- Per seed, ours then the peer, one at a time, ``--threads`` torch threads each (``OMP_NUM_THREADS`` too). Each
  subprocess is also timed whole (start-up, imports, export included).

Prints a markdown table and ends with ``ratio=<median ours / median peer seconds to threshold>`` (lower is better for
ours). A peer run that does not reach the threshold counts with the seconds it ran (a lower bound: ``> budget``), and
the line reads ``ratio<=``; an unsolved run of ours makes it ``ratio>=``, and both ``ratio=nan``. The table's
``own-eval s`` is the time the package spent in its own (curriculum) evaluations, included in its seconds. Writes
``bench/results/jsrl_vs_peer.json``.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import tensordict
import torch
from peer_venv import peer_python

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
PEER_VENV = HERE / ".venv-jsrl"
PEER = "jsrl==0.0.3"
PEER_SB3 = "2.1.0"
"""jsrl 0.0.3 asks for ``stable-baselines3[extra]>=2.0.0`` but breaks from 2.2 on (``BaseCallback.logger``)."""
RESULTS = HERE / "results" / "jsrl_vs_peer.json"
OUR_HORIZON = 100


def jsrl_python() -> Path:
    """The peer venv's interpreter, with stable-baselines3 pinned to the version the package runs with."""
    sb3 = f"stable-baselines3[extra]=={PEER_SB3}"
    python = peer_python(PEER_VENV, PEER, (sb3, f"tensordict=={tensordict.__version__}"))
    # peer_python reuses a venv whose jsrl version matches; make sure its stable-baselines3 does too.
    if package_version(python, "stable_baselines3") != PEER_SB3:
        subprocess.run([str(python), "-m", "pip", "install", "--quiet", sb3], check=True)
    return python


def package_version(python: Path, name: str) -> str:
    """``name``'s installed version in the interpreter ``python``'s environment ('' if absent)."""
    code = f"import importlib.metadata as m; print(m.version({name!r}))"
    return subprocess.run([str(python), "-c", code], capture_output=True, text=True).stdout.strip()


def child_env(threads: int) -> dict[str, str]:
    return {**os.environ, "OMP_NUM_THREADS": str(threads), "MKL_NUM_THREADS": str(threads)}


def run_ours(seed: int, threads: int, max_iterations: int) -> dict[str, Any]:
    """One seed of ``rsl-rl train`` with JSRL in its own process; its ``summary.json`` and the process's wall-clock."""
    cli = Path(sys.executable).parent / "rsl-rl"
    tmp = Path(tempfile.mkdtemp(prefix="jsrl_vs_peer_"))
    run_dir = tmp / "run"
    cmd = [
        str(cli),
        "train",
        "--task", "point-maze",
        "--seed", str(seed),
        "--threads", str(threads),
        "--run-dir", str(run_dir),
        "--guide", "scripted",
        "--jsrl", "curriculum",
        "--jsrl.horizon", str(OUR_HORIZON),
        "--logger", "none",
        "--max-iterations", str(max_iterations),
    ]  # fmt: skip
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT, env=child_env(threads))
    process_seconds = time.perf_counter() - t0
    if proc.returncode != 0:
        raise RuntimeError(f"ours (seed {seed}) failed:\n{proc.stderr[-3000:]}")
    summary = json.loads((run_dir / "summary.json").read_text())
    shutil.rmtree(tmp, ignore_errors=True)
    solved = summary.get("solved_at")
    return {
        "seed": seed,
        "solved": solved is not None,
        "env_steps": solved["env_steps"] if solved else None,
        "seconds": solved["wall_seconds"] if solved else None,
        "iterations": solved["iteration"] if solved else None,
        "ran_env_steps": summary["env_steps"],
        "ran_seconds": summary["wall_seconds"],
        "ran_iterations": summary["iterations"],
        "eval_mean_return": summary.get("eval_mean_return"),
        "jsrl_stage": summary.get("jsrl", {}).get("stage"),
        "env_steps_per_second": summary.get("env_steps_per_second"),
        "process_seconds": process_seconds,
        "command": " ".join(cmd),
    }


def run_peer(python: Path, seed: int, threads: int, budget_s: float, eval_every: int) -> dict[str, Any]:
    """One seed of the peer in its venv; the worker's JSON line and the process's wall-clock."""
    cmd = [
        str(python),
        str(HERE / "jsrl_peer_worker.py"),
        "--seed", str(seed),
        "--threads", str(threads),
        "--budget-s", str(budget_s),
        "--eval-every", str(eval_every),
    ]  # fmt: skip
    t0 = time.perf_counter()
    # The budget bounds training; start-up and the last update or evaluation come on top.
    proc = subprocess.run(cmd, capture_output=True, text=True, cwd=HERE, env=child_env(threads), timeout=budget_s + 600)
    process_seconds = time.perf_counter() - t0
    if proc.returncode != 0:
        raise RuntimeError(f"peer (seed {seed}) failed:\n{proc.stderr[-3000:]}")
    return {**json.loads(proc.stdout.strip().splitlines()[-1]), "process_seconds": process_seconds}


def to_threshold(run: dict[str, Any]) -> tuple[float, bool]:
    """Seconds to the threshold, and whether that is exact (False: it did not get there, so a lower bound)."""
    return (run["seconds"], True) if run["solved"] else (run["ran_seconds"], False)


def cell(run: dict[str, Any], budget: str) -> tuple[str, str, str]:
    """Table cells: env steps, seconds to threshold, process seconds."""
    if run["solved"]:
        return f"{run['env_steps']:,}", f"{run['seconds']:.1f}", f"{run['process_seconds']:.1f}"
    return f"> {run['ran_env_steps']:,}", f"> {budget} ({run['ran_seconds']:.1f})", f"{run['process_seconds']:.1f}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--peer-budget-s", type=float, default=600.0, help="wall-clock cap of each peer run (s)")
    parser.add_argument("--peer-eval-every", type=int, default=1000, help="peer env steps between threshold checks")
    parser.add_argument("--our-max-iterations", type=int, default=600, help="ours: --max-iterations")
    args = parser.parse_args()
    python = jsrl_python()
    peer_versions = {name: package_version(python, name) for name in ("jsrl", "stable_baselines3", "torch")}
    print(f"peer venv {PEER_VENV}: {peer_versions}", file=sys.stderr)
    ours: list[dict[str, Any]] = []
    peer: list[dict[str, Any]] = []
    for seed in args.seeds:
        ours.append(run_ours(seed, args.threads, args.our_max_iterations))
        print(f"seed {seed} ours: {json.dumps({k: v for k, v in ours[-1].items() if k != 'command'})}", flush=True)
        peer.append(run_peer(python, seed, args.threads, args.peer_budget_s, args.peer_eval_every))
        brief = {k: v for k, v in peer[-1].items() if k not in ("history", "versions")}
        print(f"seed {seed} peer: {json.dumps(brief)}", flush=True)

    our_budget = f"{args.our_max_iterations} it"
    peer_budget = f"{args.peer_budget_s:g} s"
    print()
    header = ["seed", "ours: env steps", "ours: s to threshold", "ours: process s", "jsrl: env steps"]
    header += ["jsrl: s to threshold", "jsrl: process s", "jsrl: steps/s", "jsrl: own-eval s"]
    print("| " + " | ".join(header) + " |")
    print("|" + "---:|" * len(header))
    for o, p in zip(ours, peer, strict=True):
        rates = [f"{p['env_steps_per_second']:.0f}", f"{p['package_eval_seconds']:.1f}"]
        row = [str(o["seed"]), *cell(o, our_budget), *cell(p, peer_budget), *rates]
        print("| " + " | ".join(row) + " |")
    our_times, our_exact = zip(*(to_threshold(r) for r in ours), strict=True)
    peer_times, peer_exact = zip(*(to_threshold(r) for r in peer), strict=True)
    our_median, peer_median = statistics.median(our_times), statistics.median(peer_times)
    relation = "=" if all(our_exact) == all(peer_exact) else ("<=" if all(our_exact) else ">=")
    # Two lower bounds bound nothing.
    ratio = our_median / peer_median if all(our_exact) or all(peer_exact) else float("nan")
    print()
    print(f"median seconds to threshold: ours {our_median:.1f}{'' if all(our_exact) else ' (lower bound)'}, "
          f"jsrl {peer_median:.1f}{'' if all(peer_exact) else ' (lower bound)'}")  # fmt: skip
    if not all(our_exact) and not all(peer_exact):
        print("neither side reached the threshold in every seed: no ratio (nan)")
    guide_calls = [(p["guide_calls_train"], p["ran_env_steps"], p["guide_calls_package_eval"]) for p in peer]
    print(f"peer guide calls (training steps guided / training steps, package-evaluation calls): {guide_calls}")
    record = {
        "benchmark": "jsrl_vs_peer",
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "machine": {"platform": platform.platform(), "cpus": os.cpu_count(), "processor": platform.processor()},
        "command": " ".join([Path(sys.executable).name, *sys.argv]),
        "protocol": "point-maze (U), scripted guide, JSRL-curriculum H=100; threshold: learner alone, deterministic, "
        "success >= 0.9 over 64 episodes; seconds = training time to threshold, threshold evaluations excluded; "
        "ours: rsl-rl train --jsrl curriculum (PPO, 256 envs); peer: jsrl 0.0.3 TD3 (SB3 defaults, package gate "
        "defaults, its evaluations counted), learner evaluated every peer_eval_every steps, budget peer_budget_s",
        "args": vars(args),
        "versions": {"ours_torch": torch.__version__, "peer": peer_versions},
        "ours": ours,
        "peer": peer,
        "summary": {
            "ours_median_seconds": our_median,
            "ours_all_solved": all(our_exact),
            "peer_median_seconds": peer_median,
            "peer_all_solved": all(peer_exact),
        },
        "ratio": ratio,
        "ratio_relation": relation,
    }
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(record, indent=2) + "\n")
    print(f"wrote {RESULTS.relative_to(ROOT)}")
    print(f"ratio{relation}{ratio:.3f}")


if __name__ == "__main__":
    main()
