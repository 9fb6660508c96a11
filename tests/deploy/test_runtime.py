"""The torch-free runtime and its safety layer."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from deploy.runtime import Fault, PolicyRuntime, SafetyConfig, main

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def policies(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    import torch

    from deploy.export import export_policy, policy_metadata
    from rsl_rl.modules import ActorConfig, MLPModel, RNNConfig, RNNModel

    torch.manual_seed(0)
    out: dict[str, str] = {}
    spec = {
        "observation": {"policy": [("joint_pos", 3), ("joint_vel", 3)]},
        "action": {"names": ["a", "b"], "default": [0.1, -0.1], "low": [-0.5, -1.0], "high": [0.5, 1.0]},
    }
    mlp = MLPModel(6, 2, ActorConfig(hidden_dims=(32, 32)))
    last = mlp.mlp[-1]
    assert isinstance(last, torch.nn.Linear)
    with torch.no_grad():
        last.weight.mul_(20.0)  # large outputs, so that clipping is exercised
    out["mlp"] = str(
        export_policy(mlp, tmp_path_factory.mktemp("mlp"), policy_metadata(mlp, ["policy"], spec, 0.02, 4)).onnx
    )
    rnn = RNNModel(6, 2, RNNConfig(rnn_type="lstm", rnn_hidden_dim=8, hidden_dims=(16,)))
    out["lstm"] = str(
        export_policy(rnn, tmp_path_factory.mktemp("rnn"), policy_metadata(rnn, ["policy"], spec, 0.02, 4)).onnx
    )
    return out


def test_runtime_imports_and_runs_without_torch(policies: dict[str, str]) -> None:
    code = (
        "import sys; sys.modules['torch'] = None\n"  # any `import torch` now raises ImportError
        "import numpy as np\n"
        "from deploy.runtime import PolicyRuntime\n"
        f"r = PolicyRuntime({policies['mlp']!r})\n"
        "res = r.step(np.zeros(6, np.float32))\n"
        "assert not res.safe and res.action.shape == (2,)\n"
        "assert 'torch' not in [m for m in sys.modules if sys.modules[m] is not None]\n"
        "print('ok')\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, timeout=60)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "ok"


def test_normal_step_and_joint_limits(policies: dict[str, str]) -> None:
    runtime = PolicyRuntime(policies["mlp"])
    rng = np.random.default_rng(0)
    for _ in range(200):
        result = runtime.step(rng.normal(0, 2, 6).astype(np.float32))
        assert result.fault == Fault.NONE and not result.safe
        assert np.all(result.action >= runtime.low) and np.all(result.action <= runtime.high)
    assert runtime.step(np.zeros((1, 6))).fault == Fault.NONE  # float64 and a batch-of-one shape are accepted


malformed = st.one_of(
    st.none(),
    st.integers(),
    st.text(max_size=5),
    st.lists(st.floats(), max_size=8),
    st.builds(lambda n: np.zeros(n, np.float32), st.integers(0, 12).filter(lambda n: n != 6)),
    st.builds(lambda: np.zeros(6, np.int64)),
    st.builds(lambda: np.zeros((2, 6), np.float32)),
    st.builds(lambda: np.zeros((6, 1), np.float32)),
    st.builds(
        lambda i, v: np.where(np.arange(6) == i, v, 0.0).astype(np.float32),
        st.integers(0, 5),
        st.sampled_from([np.nan, np.inf, -np.inf, 1e30]),
    ),
)


@settings(max_examples=10_000, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(observation=malformed)
def test_fuzz_malformed_observations_never_raise(policies: dict[str, str], observation: Any) -> None:
    runtime = _cached(policies["mlp"], max_abs_observation=1e6)
    result = runtime.step(observation)
    assert result.safe and result.fault != Fault.NONE
    assert np.all(result.action >= runtime.low) and np.all(result.action <= runtime.high)
    assert np.isfinite(result.action).all()


_RUNTIMES: dict[str, PolicyRuntime] = {}


def _cached(path: str, **safety: Any) -> PolicyRuntime:
    key = f"{path}{sorted(safety.items())}"
    if key not in _RUNTIMES:
        _RUNTIMES[key] = PolicyRuntime(path, SafetyConfig(**safety))
    return _RUNTIMES[key]


@settings(max_examples=300, deadline=None)
@given(
    steps=st.lists(
        st.one_of(
            st.lists(st.floats(-20, 20, width=32), min_size=6, max_size=6).map(lambda v: np.array(v, np.float32)),
            st.just(np.full(6, np.nan, np.float32)),  # fall-backs are rate limited too
        ),
        min_size=2,
        max_size=30,
    ),
    rate=st.floats(0.01, 0.5),
)
def test_rate_limit_bounds_every_change(policies: dict[str, str], steps: list[np.ndarray], rate: float) -> None:
    runtime = PolicyRuntime(policies["mlp"], SafetyConfig(rate_limit=rate))
    previous = runtime.last_action.copy()
    for observation in steps:
        action = runtime.step(observation).action
        assert np.all(np.abs(action - previous) <= rate + 1e-6)
        previous = action


class FakeClock:
    def __init__(self, per_call: float) -> None:
        self.now, self.per_call = 0.0, per_call

    def __call__(self) -> float:
        self.now += self.per_call
        return self.now


def test_watchdog_flags_overruns_and_latches(policies: dict[str, str]) -> None:
    # Every clock read advances 15 ms: a policy call appears to take 15 ms against the 20 ms period.
    runtime = PolicyRuntime(
        policies["mlp"], SafetyConfig(watchdog_s=0.010, max_consecutive_overruns=3), clock=FakeClock(0.015)
    )
    obs = np.zeros(6, np.float32)
    first, second, third = (runtime.step(obs) for _ in range(3))
    assert first.fault == Fault.OVERRUN and not first.safe  # late but valid: still used
    assert second.fault == Fault.OVERRUN
    assert Fault.LATCHED in third.fault and third.safe
    assert Fault.LATCHED in runtime.step(obs).fault  # stays latched
    runtime.reset()
    runtime.clock = FakeClock(0.001)
    assert runtime.step(obs).fault == Fault.NONE


def test_observation_faults_are_named(policies: dict[str, str]) -> None:
    runtime = PolicyRuntime(policies["mlp"], SafetyConfig(max_abs_observation=100.0))
    cases = {
        Fault.NON_FINITE: np.array([0, 0, np.inf, 0, 0, -np.inf], np.float32),
        Fault.OUT_OF_RANGE: np.full(6, 1e3, np.float32),
        Fault.BAD_SHAPE: np.zeros(7, np.float32),
        Fault.BAD_TYPE: np.zeros(6, np.int32),
        Fault.MISSING_SIGNAL: None,
    }
    for fault, observation in cases.items():
        result = runtime.step(observation)
        assert result.fault == fault and result.safe


def test_stale_observations(policies: dict[str, str]) -> None:
    clock = FakeClock(0.001)
    runtime = PolicyRuntime(policies["mlp"], SafetyConfig(max_observation_age_s=0.05), clock=clock)
    obs = np.zeros(6, np.float32)
    assert runtime.step(obs, timestamp=clock.now).fault == Fault.NONE
    assert runtime.step(obs, timestamp=clock.now - 1.0).fault == Fault.STALE
    assert runtime.step(obs).fault == Fault.STALE  # a timestamp is required when an age limit is set


def test_recurrent_state_advances_resets_and_ignores_rejected_steps(policies: dict[str, str]) -> None:
    runtime = PolicyRuntime(policies["lstm"])
    rng = np.random.default_rng(1)
    sequence = [rng.normal(size=6).astype(np.float32) for _ in range(5)]
    first = [runtime.step(o).action for o in sequence]
    runtime.reset()
    again = []
    for o in sequence:
        runtime.step(np.full(6, np.nan, np.float32))  # rejected: must not advance the state
        again.append(runtime.step(o).action)
    assert np.allclose(first, again)
    assert not np.allclose(first[0], first[1])  # the state changes the output


def test_observation_from_named_signals(policies: dict[str, str]) -> None:
    runtime = PolicyRuntime(policies["mlp"])
    obs = runtime.observation({"joint_pos": [1, 2, 3], "joint_vel": np.array([4.0, 5.0, 6.0])})
    assert obs is not None and obs.tolist() == [1, 2, 3, 4, 5, 6]
    assert runtime.observation({"joint_pos": [1, 2, 3]}) is None
    assert runtime.observation({"joint_pos": [1, 2], "joint_vel": [4, 5, 6]}) is None
    assert runtime.step(runtime.observation({"joint_pos": [1, 2, 3]})).fault == Fault.MISSING_SIGNAL


def test_fixed_rate_loop(policies: dict[str, str]) -> None:
    clock = FakeClock(0.001)  # every clock read: 1 ms later
    runtime = PolicyRuntime(policies["mlp"], clock=clock)
    sleeps: list[float] = []

    def sleep(seconds: float) -> None:
        sleeps.append(seconds)
        clock.now += seconds

    written: list[Any] = []
    count = runtime.run(
        lambda: ({"joint_pos": np.zeros(3), "joint_vel": np.zeros(3)}, None), written.append, steps=5, sleep=sleep
    )
    assert count == 5 and len(written) == 5 and all(not r.safe for r in written)
    # Each tick: 2 clock reads inside step (1 ms each) + 1 for the schedule, then sleep to the 20 ms period.
    assert sleeps == pytest.approx([0.017] * 5)


def test_replay_cli(policies: dict[str, str], tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    observations = np.random.default_rng(0).normal(size=(50, 6)).astype(np.float32)
    observations[10] = np.nan
    np.savez(tmp_path / "log.npz", observations=observations)
    out = tmp_path / "actions.npz"
    assert (
        main(["replay", "--policy", policies["mlp"], "--observations", str(tmp_path / "log.npz"), "--out", str(out)])
        == 0
    )
    assert "50 steps, 1 with faults" in capsys.readouterr().out
    result = np.load(out)
    assert result["actions"].shape == (50, 2) and result["safe"].sum() == 1
    assert main(["replay", "--policy", str(tmp_path / "missing.onnx"), "--observations", str(out)]) == 2


def test_bad_policy_files(tmp_path: Path) -> None:
    (tmp_path / "junk.onnx").write_bytes(b"not onnx")
    with pytest.raises(ValueError, match="not a loadable ONNX policy"):
        PolicyRuntime(str(tmp_path / "junk.onnx"))
