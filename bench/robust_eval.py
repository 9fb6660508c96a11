"""Worst-case evaluation over an RRLS grid: our batched ``evaluate_grid`` vs RRLS's protocol, same exported policy.

Ours: every grid point is one env of a single batched MuJoCo env (``ModifiedParams`` over the task's aliases), all
stepped at once (on the cpu backend only the worlds whose first episode still runs), the exported ONNX policy run on
the whole batch (``rsl-rl eval-robust``'s ``evaluate_grid``). RRLS's protocol (``rrls/evaluate.py``:
``generate_evaluation_set`` builds one env per grid point with its parameters written on the model,
``change_params``; the evaluation then runs the episodes one env at a time): one gymnasium ``<Task>-v5`` per grid
point, the same parameter writes (``model.geom_friction[floor, 0]``, ``model.body_mass[body]``), episodes one env at
a time through the same ONNX session, one observation per call, actions clipped to the action space (as our task
clips them). RRLS itself is not on the package registries: its published code is followed, not imported.
Both clocks include building the envs.

Then agreement: at a few grid points (the worst of ours, the nominal parameters and random points) both sides run
``--agree-episodes`` episodes from different initial states, the RRLS side twice: as RRLS writes the parameters, and
with ``mj_setConst`` after the writes (our simulation layer rederives the constants that depend on the masses, such as
the inverse weights that scale contact softness; RRLS does not, so a mass change there is not the model MuJoCo would
compile with that mass). The mean returns agree when they differ by less than
3 standard errors of the difference (plus 0.5 % of the return, for float32 vs float64 round-off that a deterministic
policy turns into small return changes).

    OMP_NUM_THREADS=1 .venv/bin/python bench/robust_eval.py --run RUN_DIR [--set 3d] [--points 10] [--threads 1]

The run directory is a trained run of hopper or walker2d (``rsl-rl train --task hopper``), with its
``exported/policy.onnx``. Ends with ``ratio=<RRLS protocol wall-clock / ours>`` (higher is better for us). Writes
``bench/results/robust_eval.json``.
"""

from __future__ import annotations

import argparse
import json
import math
import random
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from rsl_rl.cli.env_config import checkpoint_env_config  # noqa: E402
from rsl_rl.cli.eval_robust import evaluate_grid  # noqa: E402
from rsl_rl.cli.run_support import load_checkpoint_file  # noqa: E402
from rsl_rl.registry import get_task  # noqa: E402
from tasks.uncertainty import grid, uncertainty_set  # noqa: E402
from tasks.wrappers.base import unwrap  # noqa: E402
from tasks.wrappers.params import ModifiedParams  # noqa: E402

HERE = Path(__file__).parent
RESULTS = HERE / "results" / "robust_eval.json"
GYM_IDS = {"hopper": "Hopper-v5", "walker2d": "Walker2d-v5", "halfcheetah": "HalfCheetah-v5", "ant": "Ant-v5"}


def onnx_session(path: Path, threads: int) -> Any:
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


def ours(
    spec: Any, env_cfg: Any, session: Any, names: list[str], values: torch.Tensor, episodes: int, seed: int
) -> dict[str, Any]:
    """The grid as one batched env (plus the nominal row), the ONNX policy on the batch."""
    start = time.perf_counter()
    env_cfg.num_envs = (values.shape[0] + 1) * episodes
    env_cfg.sim.nthread = torch.get_num_threads()  # the physics threads (the training run's setting is stored)
    env = ModifiedParams(spec.build(env_cfg, device=torch.device("cpu"), seed=seed), names)

    def policy(obs: Any) -> torch.Tensor:
        return torch.from_numpy(session.run(None, {"obs": obs["policy"].numpy()})[0])

    result = evaluate_grid(env, policy, names, values, episodes, env.nominal_params())
    result["total_seconds"] = time.perf_counter() - start
    result["nominal_values"] = env.nominal_params()
    env.close()
    return result


def gym_writes(aliases: dict[str, str], names: list[str]) -> list[tuple[str, str, str, int]]:
    """Per parameter, RRLS's write on the gymnasium model: ``(field, element type, element name, column)`` from the
    task's alias (``"geom_friction:floor:0"`` → ``model.geom_friction[floor, 0]``, as RRLS's ``change_params``)."""
    writes = []
    for name in names:
        field, element, *column = aliases[name].split(":")
        kind = field.split("_", 1)[0]  # body_mass → body, geom_friction → geom
        writes.append((field, kind, element, int(column[0]) if column else -1))
    return writes


def rrls_protocol(
    gym_id: str,
    writes: list[tuple[str, str, str, int]],
    session: Any,
    values: np.ndarray,
    episodes: int,
    seed: int,
    set_const: bool = False,
) -> dict[str, Any]:
    """One gymnasium env per grid point with its parameters set on the model, episodes one env at a time.
    ``set_const``: also rederive the model's constants from the new masses (``mj_setConst``: subtree masses, the
    inverse weights that scale contact softness), as our simulation layer does and RRLS does not."""
    import gymnasium as gym
    import mujoco

    start = time.perf_counter()
    envs = []
    for row in values:  # rrls/evaluate.py: generate_evaluation_set → modified_env(**params) per point
        env = gym.make(gym_id)
        model = env.unwrapped.model  # pyright: ignore[reportAttributeAccessIssue]
        for (field, kind, element, column), value in zip(writes, row, strict=True):
            index = (model.body if kind == "body" else model.geom)(element).id
            array = getattr(model, field)
            if column >= 0:
                array[index, column] = value
            else:
                array[index] = value
        if set_const:
            mujoco.mj_setConst(model, env.unwrapped.data)  # pyright: ignore[reportAttributeAccessIssue]
        envs.append(env)
    built = time.perf_counter() - start
    returns = np.zeros((len(envs), episodes))
    steps = 0
    for i, env in enumerate(envs):
        low, high = env.action_space.low, env.action_space.high  # pyright: ignore[reportAttributeAccessIssue]
        for k in range(episodes):
            obs, _ = env.reset(seed=seed + i * episodes + k)
            done, total = False, 0.0
            while not done:
                action = session.run(None, {"obs": obs[None].astype(np.float32)})[0][0]
                obs, reward, terminated, truncated, _ = env.step(np.clip(action, low, high))
                total += float(reward)
                steps += 1
                done = terminated or truncated
            returns[i, k] = total
        env.close()
    return {"returns": returns, "build_seconds": built, "total_seconds": time.perf_counter() - start, "steps": steps}


def agree(a: np.ndarray, b: np.ndarray) -> dict[str, Any]:
    """Means, the standard error of their difference and whether they agree (module docstring)."""
    se = math.sqrt(a.var(ddof=1) / len(a) + b.var(ddof=1) / len(b)) if len(a) > 1 else 0.0
    diff = float(a.mean() - b.mean())
    tolerance = 3 * se + 0.005 * max(abs(float(a.mean())), abs(float(b.mean())))
    return {"ours": float(a.mean()), "rrls": float(b.mean()), "diff": diff, "se": se, "agree": abs(diff) <= tolerance}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--run", type=Path, required=True, help="run directory (its exported/policy.onnx)")
    parser.add_argument("--set", default="3d")
    parser.add_argument("--points", type=int, default=10)
    parser.add_argument("--threads", type=int, default=1, help="torch, onnxruntime and (ours) MuJoCo threads")
    parser.add_argument("--agree-points", type=int, default=4)
    parser.add_argument("--agree-episodes", type=int, default=10)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    path, state = load_checkpoint_file(args.run)
    task = str((state.get("infos") or {}).get("task"))
    if task not in GYM_IDS:
        raise SystemExit(f"error: run of task {task!r}; this benchmark covers {sorted(GYM_IDS)}")
    spec = get_task(task)
    session = onnx_session(path.parent / "exported" / "policy.onnx", args.threads)
    names, values = grid(uncertainty_set(task, args.set), args.points)
    probe_cfg = checkpoint_env_config(spec, state)
    probe_cfg.num_envs = 1
    probe = spec.build(probe_cfg, device=torch.device("cpu"), seed=0)
    writes = gym_writes(dict(unwrap(probe).param_aliases), names)
    probe.close()

    mine = ours(spec, checkpoint_env_config(spec, state), session, names, values, 1, args.seed)
    theirs = rrls_protocol(GYM_IDS[task], writes, session, values.numpy(), 1, args.seed)
    ratio = theirs["total_seconds"] / mine["total_seconds"]
    grid_mean_ours = mine["mean"].numpy()
    grid_mean_rrls = theirs["returns"][:, 0]
    print(f"{task} {args.set}: {len(values)} grid points, 1 episode each")
    print(f"  ours:  {mine['total_seconds']:7.1f} s ({int(mine['lengths'].sum()):,} env steps in episodes, batched)"
          f"  worst {mine['worst']:8.1f}  average {mine['average']:8.1f}")  # fmt: skip
    print(
        f"  RRLS:  {theirs['total_seconds']:7.1f} s ({theirs['steps']:,} env steps, envs built in "
        f"{theirs['build_seconds']:.1f} s)  worst {grid_mean_rrls.min():8.1f}  average {grid_mean_rrls.mean():8.1f}"
    )

    # Agreement at a few points, with several episodes from different initial states on each side.
    rng = random.Random(args.seed)
    picks = [int(mine["worst_index"])] + rng.sample(range(len(values)), max(args.agree_points - 2, 0))
    rows = torch.cat([values[picks], torch.tensor([[mine["nominal_values"][n] for n in names]], dtype=torch.float64)])
    e = args.agree_episodes
    mine_a = ours(spec, checkpoint_env_config(spec, state), session, names, rows, e, args.seed + 1)
    agreement: dict[str, list[dict[str, Any]]] = {}
    for variant, set_const in (("rrls", False), ("rrls_set_const", True)):
        theirs_a = rrls_protocol(GYM_IDS[task], writes, session, rows.numpy(), e, args.seed + 1, set_const)
        print(f"  agreement, {e} episodes per point, vs {variant}:")
        agreement[variant] = []
        for r in range(len(rows)):
            entry = {n: float(v) for n, v in zip(names, rows[r], strict=True)}
            entry.update(agree(mine_a["returns"][r].numpy(), theirs_a["returns"][r]))
            agreement[variant].append(entry)
            print(f"    {', '.join(f'{n}={float(v):.3g}' for n, v in zip(names, rows[r], strict=True))}: "
                  f"ours {entry['ours']:8.1f}  {variant} {entry['rrls']:8.1f}  diff {entry['diff']:+7.1f} "
                  f"(3 SE {3 * entry['se']:.1f})  {'agree' if entry['agree'] else 'DIFFER'}")  # fmt: skip
    result = {
        "task": task,
        "set": args.set,
        "run": str(path),
        "points": len(values),
        "threads": args.threads,
        "ours_seconds": mine["total_seconds"],
        "rrls_seconds": theirs["total_seconds"],
        "rrls_build_seconds": theirs["build_seconds"],
        "ours_env_steps": int(mine["lengths"].sum()),  # the cpu backend steps only the worlds still running
        "rrls_env_steps": theirs["steps"],
        "ours": {"worst": mine["worst"], "average": mine["average"], "nominal": mine["nominal_return"]},
        "rrls": {"worst": float(grid_mean_rrls.min()), "average": float(grid_mean_rrls.mean())},
        "grid_median_abs_diff": statistics.median(np.abs(grid_mean_ours - grid_mean_rrls).tolist()),
        "agreement": agreement,
        "ratio": ratio,
    }
    RESULTS.parent.mkdir(exist_ok=True)
    RESULTS.write_text(json.dumps(result, indent=2))
    print(f"ratio={ratio:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
