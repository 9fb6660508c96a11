"""PPO iteration time: this library vs rsl-rl-lib 5.5.1, same task, same settings, same machine, alternating.

Creates (once) ``bench/.venv-rsl_rl`` with rsl-rl-lib 5.5.1 and the same torch version as ours (rsl-rl-lib also imports
as ``rsl_rl``, so it cannot share our environment). Both sides run ``bench/ppo_worker.py`` with the identical rsl_rl
5.x ``train_cfg`` dict on the identical pure-torch env (``bench/point_mass_env.py``): 4096 envs × 24 steps, actor and
critic MLP 512-256-128 ELU, 5 epochs × 4 mini-batches, ``torch.set_num_threads(2)``. The two worker processes take
turns, one iteration each, so they never compete for the cores. Prints per-iteration collection and learning seconds
of both and ends with ``ratio=<ours / rsl-rl-lib seconds per iteration>`` (lower is better), from medians.

    python bench/ppo_vs_rsl_rl.py [--rounds 6] [--threads 2] [--num-envs 4096]
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import subprocess
import sys
from pathlib import Path
from typing import IO, Any

import torch
from peer_venv import peer_python

HERE = Path(__file__).parent
PEER_VENV = HERE / ".venv-rsl_rl"
PEER = "rsl-rl-lib==5.5.1"


def rsl_rl_python() -> Path:
    return peer_python(PEER_VENV, PEER)


class Worker:
    def __init__(self, name: str, python: Path, threads: int, num_envs: int, seed: int) -> None:
        self.name = name
        cmd = [str(python), str(HERE / "ppo_worker.py"), str(threads), str(num_envs), str(seed)]
        self.proc = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, cwd=HERE)
        self.library = self._read()["library"]

    def _read(self) -> dict[str, Any]:
        stdout: IO[str] = self.proc.stdout  # type: ignore[assignment]
        while True:
            line = stdout.readline()
            if not line:
                raise RuntimeError(f"{self.name} worker exited (code {self.proc.wait()})")
            if line.startswith("@@bench "):
                return json.loads(line.removeprefix("@@bench "))

    def run(self, iterations: int) -> list[tuple[float, float]]:
        stdin: IO[str] = self.proc.stdin  # type: ignore[assignment]
        stdin.write(f"run {iterations}\n")
        stdin.flush()
        return [tuple(t) for t in self._read()["iterations"]]  # type: ignore[misc]

    def close(self) -> None:
        if self.proc.stdin:
            self.proc.stdin.close()
        self.proc.wait(timeout=60)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=6, help="measured iterations per library (after 1 warm-up)")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--num-envs", type=int, default=4096)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    peer = Worker("rsl-rl-lib", rsl_rl_python(), args.threads, args.num_envs, args.seed)
    ours = Worker("ours", Path(sys.executable), args.threads, args.num_envs, args.seed)
    print(f"machine: {platform.processor() or platform.machine()}, torch {torch.__version__}, {args.threads} threads")
    print(f"ours: {ours.library}\npeer: {peer.library} ({PEER})")
    for worker in (ours, peer):  # warm-up iteration, not counted
        worker.run(1)
    results: dict[str, list[tuple[float, float]]] = {"ours": [], "rsl-rl-lib": []}
    for r in range(args.rounds):
        order = (ours, peer) if r % 2 == 0 else (peer, ours)  # alternate who goes first
        for worker in order:
            (collect, learn), *_ = worker.run(1)
            results[worker.name].append((collect, learn))
            print(
                f"round {r}: {worker.name:10s} collection {collect:6.3f} s  learning {learn:6.3f} s  "
                f"total {collect + learn:6.3f} s",
                flush=True,
            )
    ours.close()
    peer.close()

    def median(name: str, index: int | None) -> float:
        values = [c + lr if index is None else (c, lr)[index] for c, lr in results[name]]
        return statistics.median(values)

    for name in results:
        print(
            f"median {name:10s}: collection {median(name, 0):.3f} s, learning {median(name, 1):.3f} s, "
            f"iteration {median(name, None):.3f} s"
        )
    print(f"ratio={median('ours', None) / median('rsl-rl-lib', None):.3f}")


if __name__ == "__main__":
    main()
