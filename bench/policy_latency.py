"""Control-step latency at batch 1 on 1 thread: our torch-free runtime vs torch inference of the same policy.

Policy: MLP 48-512-256-128-12 (ELU) with a trained-looking observation normaliser, exported by ``deploy.export`` (ONNX
with metadata, parity-checked). Measured per call, 20,000 calls each after warm-up, in interleaved blocks:

* ours: one full runtime step -- observation assembly from 4 named signals, safety checks, the ONNX policy through
  onnxruntime, joint-limit clipping and rate limiting;
* torch eager inference of the actor (``torch.inference_mode``), and TorchScript inference of the exported module;
* onnxruntime ``session.run`` alone, for reference.

Ends with ``ratio=<ours runtime step / torch eager inference>`` from medians (lower is better).

    python bench/policy_latency.py [--calls 20000]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from collections.abc import Callable

import numpy as np
import onnxruntime as ort
import torch

from deploy.export import export_policy, policy_metadata
from deploy.runtime import PolicyRuntime, SafetyConfig
from rsl_rl.models import MLPModel
from rsl_rl.modules import ActorConfig


def measure(calls: dict[str, Callable[[], object]], total: int, block: int = 1000) -> dict[str, np.ndarray]:
    """Per-call microseconds of each candidate, run in rotating interleaved blocks."""
    for fn in calls.values():
        for _ in range(500):
            fn()
    samples: dict[str, list[float]] = {name: [] for name in calls}
    names = list(calls)
    clock = time.perf_counter_ns
    for b in range(total // block):
        for name in names[b % len(names) :] + names[: b % len(names)]:
            fn, out = calls[name], samples[name]
            for _ in range(block):
                start = clock()
                fn()
                out.append((clock() - start) / 1e3)
    return {name: np.asarray(v) for name, v in samples.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--calls", type=int, default=20_000)
    args = parser.parse_args()
    torch.set_num_threads(1)
    torch.manual_seed(0)
    actor = MLPModel.from_config(
        48, 12, ActorConfig(hidden_dims=(512, 256, 128), activation="elu", obs_normalization=True)
    )
    actor.update_normalization(torch.randn(4096, 48) * 2.0 + 0.5)
    actor.eval()
    spec = {
        "observation": {
            "policy": [("base_ang_vel", 3), ("projected_gravity", 3), ("joint_pos", 21), ("joint_vel", 21)]
        },
        "action": {"low": [-1.0] * 12, "high": [1.0] * 12},
    }
    out_dir = tempfile.mkdtemp(prefix="policy_latency_")
    report = export_policy(actor, out_dir, policy_metadata(actor, ["policy"], spec, control_period=0.02, decimation=4))
    runtime = PolicyRuntime(str(report.onnx), SafetyConfig(rate_limit=0.5), threads=1)
    rng = np.random.default_rng(0)
    signals = {
        "base_ang_vel": rng.normal(size=3),
        "projected_gravity": rng.normal(size=3),
        "joint_pos": rng.normal(size=21),
        "joint_vel": rng.normal(size=21),
    }
    obs_np = runtime.observation(signals)
    assert obs_np is not None

    def runtime_step() -> object:
        return runtime.step(runtime.observation(signals))

    obs_t = torch.from_numpy(obs_np).unsqueeze(0)
    scripted = torch.jit.load(str(report.torchscript))
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    session = ort.InferenceSession(str(report.onnx), options, providers=["CPUExecutionProvider"])
    feed = {"obs": obs_np[None]}

    def eager() -> object:
        with torch.inference_mode():
            return actor(obs_t)

    def torchscript() -> object:
        with torch.inference_mode():
            return scripted(obs_t)

    results = measure(
        {
            "ours: runtime step (assembly + safety + policy)": runtime_step,
            "torch eager inference": eager,
            "TorchScript inference": torchscript,
            "onnxruntime session.run alone": lambda: session.run(None, feed),
        },
        args.calls,
    )
    print(f"MLP 48-512-256-128-12 ELU, batch 1, 1 thread, {args.calls} calls each (µs)")
    for name, values in results.items():
        print(f"  {name:48s} median {statistics.median(values):7.1f}   p99 {np.percentile(values, 99):7.1f}")
    ours = statistics.median(results["ours: runtime step (assembly + safety + policy)"])
    print(f"ratio={ours / statistics.median(results['torch eager inference']):.3f}")


if __name__ == "__main__":
    main()
