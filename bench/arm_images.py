"""Throughput of ``arm-peg`` with and without camera images, and the share of a step spent rendering.

    python bench/arm_images.py [--envs 64 256] [--steps 20] [--size 64] [--threads 1]

Random actions within the bounds; each configuration is warmed up for 2 steps, then timed over ``--steps`` steps.
The rendering share is the time inside ``render_images`` over the step time (with images). Prints one line per
configuration and ends with ``ratio=`` the throughput with images / without at the largest env count (higher is
better; there is no peer library with a batched arm-peg task to compare with).
"""

from __future__ import annotations

import argparse
import time
from typing import Any

import torch

import tasks  # noqa: F401 -- selects EGL before mujoco is imported
from rsl_rl.registry import get_task


def measure(num_envs: int, image_size: int, steps: int) -> tuple[float, float]:
    """(env steps per second, share of the step time spent in ``render_images``)."""
    spec = get_task("arm-peg")
    cfg = spec.env_cfg_for("sac")
    cfg.num_envs, cfg.image_size = num_envs, image_size
    env: Any = spec.build(cfg, device="cpu", seed=0)  # an ArmTask: render_images is its own method
    rendering = [0.0]
    if image_size:
        original = env.render_images

        def timed() -> torch.Tensor:
            start = time.perf_counter()
            out = original()
            rendering[0] += time.perf_counter() - start
            return out

        env.render_images = timed
    low, high = env.action_bounds()  # ±1: the arm tasks declare their bounds
    generator = torch.Generator().manual_seed(0)

    def act() -> torch.Tensor:
        return low + (high - low) * torch.rand(num_envs, env.num_actions, generator=generator)

    env.reset()
    for _ in range(2):
        env.step(act())
    rendering[0] = 0.0
    start = time.perf_counter()
    for _ in range(steps):
        env.step(act())
    elapsed = time.perf_counter() - start
    return num_envs * steps / elapsed, rendering[0] / elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description="arm-peg throughput with and without camera images")
    parser.add_argument("--envs", type=int, nargs="+", default=[64, 256])
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--size", type=int, default=64)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    results = {}
    for num_envs in args.envs:
        for size in (0, args.size):
            rate, share = measure(num_envs, size, args.steps)
            results[num_envs, size] = rate
            what = f"{size} px images" if size else "no images"
            print(f"arm-peg {num_envs} envs, {what}: {rate:,.0f} env steps/s, rendering {100 * share:.0f} % of a step")
    largest = max(args.envs)
    print(f"ratio={results[largest, args.size] / results[largest, 0]:.3f}")


if __name__ == "__main__":
    main()
