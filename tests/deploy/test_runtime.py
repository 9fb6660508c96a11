"""The torch-free runtime and its safety layer."""

from __future__ import annotations

import json
import math
import subprocess
import sys
from collections.abc import Callable
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
    from rsl_rl.models import MLPModel, RNNModel
    from rsl_rl.modules import ActorConfig, RNNConfig

    torch.manual_seed(0)
    out: dict[str, str] = {}
    spec = {
        "observation": {"policy": [("joint_pos", 3), ("joint_vel", 3)]},
        "action": {"names": ["a", "b"], "default": [0.1, -0.1], "low": [-0.5, -1.0], "high": [0.5, 1.0]},
    }
    mlp = MLPModel.from_config(6, 2, ActorConfig(hidden_dims=(32, 32)))
    last = mlp.mlp[-1]
    assert isinstance(last, torch.nn.Linear)
    with torch.no_grad():
        last.weight.mul_(20.0)  # large outputs, so that clipping is exercised
    out["mlp"] = str(
        export_policy(mlp, tmp_path_factory.mktemp("mlp"), policy_metadata(mlp, ["policy"], spec, 0.02, 4)).onnx
    )
    rnn = RNNModel.from_config(6, 2, RNNConfig(rnn_type="lstm", rnn_hidden_dim=8, hidden_dims=(16,)))
    out["lstm"] = str(
        export_policy(rnn, tmp_path_factory.mktemp("rnn"), policy_metadata(rnn, ["policy"], spec, 0.02, 4)).onnx
    )
    # A joint-position policy that observes its own last action (as the legged tasks do).
    legged = {
        "observation": {"policy": [("joint_pos", 2), ("last_action", 2)]},
        "action": {
            "names": ["a", "b"],
            "default": [0.1, -0.1],
            "scale": [0.5, 0.5],
            "low": [-0.5, -1.0],
            "high": [0.5, 1.0],
            "command": "joint_position",
            "limit": "clip",
            "last_action": "clipped",
        },
    }
    mlp4 = MLPModel.from_config(4, 2, ActorConfig(hidden_dims=(16,)))
    last4 = mlp4.mlp[-1]
    assert isinstance(last4, torch.nn.Linear)
    with torch.no_grad():
        last4.weight.mul_(5.0)
    out["legged"] = str(
        export_policy(mlp4, tmp_path_factory.mktemp("legged"), policy_metadata(mlp4, ["policy"], legged, 0.02)).onnx
    )
    return out


def _rewrite_metadata(path: str, out: Path, edit: Callable[[dict[str, Any]], None]) -> str:
    """A copy of an exported policy whose metadata ``edit`` changed (bypassing the exporter's checks)."""
    import onnx

    from deploy.metadata import METADATA_KEY

    model = onnx.load(path)
    entry = next(e for e in model.metadata_props if e.key == METADATA_KEY)
    meta = json.loads(entry.value)
    edit(meta)
    entry.value = json.dumps(meta)
    onnx.save(model, str(out))
    return str(out)


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


# --- validation at construction (issue 10, item 6) --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"rate_limit": math.nan}, "rate_limit=nan; allowed: a finite number > 0 or None"),
        ({"rate_limit": -0.1}, "rate_limit=-0.1; allowed: a finite number > 0 or None"),
        ({"rate_limit": 0.0}, "rate_limit=0.0; allowed"),
        ({"rate_limit": "0.1"}, "rate_limit='0.1'; allowed"),
        ({"max_observation_age_s": -1.0}, "max_observation_age_s=-1.0; allowed"),
        ({"max_observation_age_s": "soon"}, "max_observation_age_s='soon'; allowed"),
        ({"watchdog_s": math.inf}, "watchdog_s=inf; allowed"),
        ({"max_abs_observation": math.nan}, "max_abs_observation=nan; allowed"),
        ({"max_consecutive_overruns": 0}, "max_consecutive_overruns=0; allowed: an integer >= 1"),
        ({"max_consecutive_overruns": 2.5}, "max_consecutive_overruns=2.5; allowed"),
    ],
)
def test_safety_config_is_validated(fields: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message.replace("(", r"\(").replace(")", r"\)")):
        SafetyConfig(**fields)


def test_a_nan_rate_limit_no_longer_reaches_the_actions(policies: dict[str, str]) -> None:
    safety = SafetyConfig()
    safety.rate_limit = math.nan  # edited after construction: the runtime checks again
    with pytest.raises(ValueError, match="rate_limit=nan"):
        PolicyRuntime(policies["mlp"], safety)


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (lambda m: m["action"]["low"].__setitem__(0, math.nan), "action.low[0] is nan"),
        (lambda m: m["action"]["high"].__setitem__(1, math.inf), "action.high[1] is inf"),
        (lambda m: m["action"]["low"].__setitem__(1, "x"), "action.low[1] is 'x'"),
        (lambda m: m["action"].update(low=[0.6, -1.0]), "action.low[0] = 0.6 > action.high[0] = 0.5 (inverted limits)"),
        (lambda m: m["action"].update(limit="squash"), "action.limit='squash'; allowed: 'clip'"),
        (lambda m: m["action"].update(command="torque"), "action.command='torque'; allowed"),
        (lambda m: m["action"]["scale"].__setitem__(0, math.nan), "action.scale[0] is nan"),
        (
            lambda m: m["observation"]["terms"][0].update(size=4),
            "observation terms add up to 7 but observation.dim is 6",
        ),
        (
            lambda m: m.update(history={"length": 2, "order": "oldest_first"}),
            "the ONNX policy reads an observation 6 wide; the metadata describes 6 values per step × history 2",
        ),
    ],
)
def test_bad_metadata_is_refused_at_construction(
    policies: dict[str, str], tmp_path: Path, edit: Callable[[dict[str, Any]], None], message: str
) -> None:
    path = _rewrite_metadata(policies["mlp"], tmp_path / "bad.onnx", edit)
    with pytest.raises(ValueError, match=message.replace("(", r"\(").replace(")", r"\)").replace("[", r"\[")):
        PolicyRuntime(path)


def test_unbounded_actions_are_null_in_the_metadata(policies: dict[str, str], tmp_path: Path) -> None:
    path = _rewrite_metadata(policies["mlp"], tmp_path / "free.onnx", lambda m: m["action"].update(low=[None, -1.0]))
    runtime = PolicyRuntime(path)
    assert runtime.low.tolist() == [-math.inf, -1.0]
    assert np.isfinite(runtime.step(np.full(6, 5.0, np.float32)).action).all()


def test_a_clock_that_gives_no_number_is_refused(policies: dict[str, str]) -> None:
    with pytest.raises(ValueError, match="clock\\(\\) returned 'now'; allowed: a finite number of seconds"):
        PolicyRuntime(policies["mlp"], clock=lambda: "now")  # type: ignore[arg-type, return-value]


def test_non_numeric_timestamps_are_flagged_never_raised(policies: dict[str, str]) -> None:
    clock = FakeClock(0.001)
    runtime = PolicyRuntime(policies["mlp"], SafetyConfig(max_observation_age_s=0.05), clock=clock)
    obs = np.zeros(6, np.float32)
    for bad in ("yesterday", [1.0], object(), math.nan, b"1"):
        result = runtime.step(obs, timestamp=bad)  # type: ignore[arg-type]
        assert result.fault == Fault.STALE and result.safe
    assert runtime.step(obs, timestamp=np.float32(clock.now)).fault == Fault.NONE  # numpy scalars are numbers


def test_observation_flags_non_numeric_signals(policies: dict[str, str]) -> None:
    runtime = PolicyRuntime(policies["mlp"])
    good = {"joint_pos": [1.0, 2.0, 3.0], "joint_vel": np.zeros(3)}
    for bad in ("abc", ["a", "b", "c"], np.array(["x", "y", "z"]), object(), {"x": 1}, np.zeros(3, complex)):
        obs = runtime.observation({**good, "joint_vel": bad})
        assert obs is None
        result = runtime.step(obs)
        assert result.fault == Fault.BAD_TYPE and result.safe
        # The next good assembly is accepted: the flag belongs to one call only.
        assert runtime.step(runtime.observation(good)).fault == Fault.NONE
    assert runtime.step(runtime.observation({"joint_pos": [1.0, 2.0, 3.0]})).fault == Fault.MISSING_SIGNAL


# --- actions as in training: safe pose, last action, rate limiter seeding --------------------------------------------


def test_the_safe_action_holds_the_default_pose(policies: dict[str, str]) -> None:
    # target = default + scale * action: the default pose is action 0, whatever the default angles are.
    runtime = PolicyRuntime(policies["legged"])
    for _ in range(3):
        result = runtime.step(np.full(4, np.nan, np.float32))
        assert result.safe and result.action.tolist() == [0.0, 0.0]


def test_the_runtime_feeds_last_action_as_training_does(policies: dict[str, str]) -> None:
    runtime = PolicyRuntime(policies["legged"], SafetyConfig(rate_limit=0.3))
    assert runtime.metadata["action"]["last_action"] == "clipped"
    rng = np.random.default_rng(3)
    for _episode in range(3):
        runtime.reset()
        previous = np.zeros(2, np.float32)  # training zeroes the action buffer at every episode start
        for step in range(6):
            joint_pos = rng.normal(size=2).astype(np.float32)
            obs = runtime.observation({"joint_pos": joint_pos})
            assert obs is not None and obs.tolist() == [*joint_pos.tolist(), *previous.tolist()]
            result = runtime.step(obs if step != 3 else None)  # a fault: the safe action is what was sent
            assert np.all(result.action >= runtime.low) and np.all(result.action <= runtime.high)
            previous = result.action
    # A caller that measures the last action itself still can pass it.
    obs = runtime.observation({"joint_pos": [0.0, 0.0], "last_action": [0.25, -0.5]})
    assert obs is not None and obs.tolist() == [0.0, 0.0, 0.25, -0.5]


def test_reset_seeds_the_rate_limiter_from_measured_joints(policies: dict[str, str]) -> None:
    runtime = PolicyRuntime(policies["legged"], SafetyConfig(rate_limit=0.05))
    for joint_pos in ([0.3, -0.5], [-0.1, 0.4], [0.35, -0.9]):
        runtime.reset(joint_pos=np.asarray(joint_pos))
        seed = np.clip((np.asarray(joint_pos) - [0.1, -0.1]) / 0.5, runtime.low, runtime.high)
        obs = runtime.observation({"joint_pos": joint_pos})
        assert obs is not None and obs[2:].tolist() == [0.0, 0.0]  # the observation still starts from zero
        action = runtime.step(obs).action
        assert np.all(np.abs(action - seed) <= 0.05 + 1e-6)  # the first command moves from the measured pose
    with pytest.raises(ValueError, match="joint_pos has 3 values; the policy commands 2 joints"):
        runtime.reset(joint_pos=np.zeros(3))
    with pytest.raises(ValueError, match="joint_pos must be finite"):
        runtime.reset(joint_pos=np.array([0.0, np.nan]))
    with pytest.raises(ValueError, match="action.command is 'actuator'"):
        PolicyRuntime(policies["mlp"]).reset(joint_pos=np.zeros(2))


# --- observation history (MLP-history students) -----------------------------------------------------------------------


def test_history_policy_keeps_its_own_history(tmp_path: Path) -> None:
    import torch

    from deploy.export import export_policy, policy_metadata
    from rsl_rl.models import MLPModel
    from rsl_rl.modules import ActorConfig
    from rsl_rl.runners.distillation_runner import HistoryInferencePolicy

    torch.manual_seed(1)
    frame, length = 3, 4
    actor = MLPModel.from_config(frame * length, 2, ActorConfig(hidden_dims=(16,), obs_normalization=True))
    actor.update_normalization(torch.randn(200, frame * length))
    spec = {"observation": {"policy": [("a", 2), ("b", 1)]}}
    meta = policy_metadata(actor, ["policy"], spec, 0.02, history=length)
    assert meta["observation"]["dim"] == frame and [t["name"] for t in meta["observation"]["terms"]] == ["a", "b"]
    assert meta["history"] == {"length": length, "order": "oldest_first", "episode_start": "repeat_first"}
    runtime = PolicyRuntime(str(export_policy(actor, tmp_path, meta).onnx))
    reference = HistoryInferencePolicy(actor.eval(), ["policy"], length)
    rng = np.random.default_rng(0)
    for episode in range(3):
        runtime.reset()
        reference.reset(torch.ones(1, dtype=torch.bool) if episode else None)
        for step in range(7):
            x = rng.normal(size=frame).astype(np.float32)
            if step == 2:  # a rejected frame never enters the history
                assert runtime.step(np.full(frame, np.nan, np.float32)).safe
            with torch.no_grad():
                expected = reference(torch.from_numpy(x)[None]).numpy()[0]
            np.testing.assert_allclose(runtime.step(x).action, expected, atol=1e-5)
    with pytest.raises(
        ValueError,
        match="the ONNX policy reads an observation 12 wide; the metadata describes 3 values per step × history 1",
    ):
        PolicyRuntime(_rewrite_metadata(str(tmp_path / "policy.onnx"), tmp_path / "h.onnx", lambda m: m.pop("history")))
