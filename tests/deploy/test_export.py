"""Deployment export: metadata, parity for MLP and recurrent policies, refusal of a failing file."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import onnxruntime as ort
import pytest
import torch

from deploy.export import (
    ExportParityError,
    export_checkpoint,
    export_policy,
    file_sha256,
    policy_metadata,
    read_metadata,
)
from rsl_rl.cli.main import main
from rsl_rl.models import MLPModel, RNNModel
from rsl_rl.modules import ActorConfig, RNNConfig


@pytest.fixture(scope="module")
def pendulum_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    run = tmp_path_factory.mktemp("run")
    assert (
        main(["train", "--task", "pendulum", "--run-dir", str(run), "--max-iterations", "3", "--logger", "none"]) == 0
    )
    return run


def test_checkpoint_export_carries_metadata(pendulum_run: Path, tmp_path: Path) -> None:
    checkpoint = pendulum_run / "model_2.pt"
    report = export_checkpoint(checkpoint, tmp_path)
    assert report.samples >= 10_000 and max(report.max_abs_diff_onnx, report.max_abs_diff_torchscript) <= 1e-5
    meta = read_metadata(report.onnx)
    assert meta == report.metadata  # round trip through the ONNX file
    assert meta["task"] == "pendulum" and meta["schema"] == 2 and meta["library"] == "rsl-rl-forge"
    assert [t["name"] for t in meta["observation"]["terms"]] == ["cos_theta", "sin_theta", "theta_dot"]
    assert meta["observation"]["dim"] == 3 and meta["inputs"] == ["obs"] and meta["outputs"] == ["actions"]
    assert meta["action"]["names"] == ["torque"] and meta["action"]["low"] == [-2.0] and meta["action"]["high"] == [2.0]
    assert meta["action"]["command"] == "actuator" and meta["action"]["limit"] == "clip"
    assert meta["action"]["last_action"] is None and meta["history"] is None
    assert meta["control"]["period_s"] == pytest.approx(0.05)
    assert meta["training"]["iteration"] == 3 and meta["training"]["checkpoint"] == "model_2.pt"
    assert meta["training"]["checkpoint_sha256"] == file_sha256(checkpoint)
    extra: dict[str, Any] = {"metadata.json": ""}
    torch.jit.load(str(report.torchscript), _extra_files=extra)
    assert json.loads(extra["metadata.json"]) == meta


@pytest.mark.parametrize("rnn_type", ["gru", "lstm"])
def test_recurrent_export_parity_with_explicit_state(rnn_type: str, tmp_path: Path) -> None:
    torch.manual_seed(0)
    actor = RNNModel.from_config(
        5, 2, RNNConfig(rnn_type=rnn_type, rnn_hidden_dim=16, hidden_dims=(32,), obs_normalization=True)
    )
    actor.update_normalization(torch.randn(500, 5) * 3 + 1)  # a trained normaliser is baked in
    report = export_policy(actor, tmp_path, policy_metadata(actor, ["policy"]))
    assert report.max_abs_diff_onnx <= 1e-5 and report.max_abs_diff_torchscript <= 1e-5
    session = ort.InferenceSession(str(report.onnx))
    names = [i.name for i in session.get_inputs()]
    assert names == (["obs", "h_in"] if rnn_type == "gru" else ["obs", "h_in", "c_in"])
    assert report.metadata["recurrent"]["type"] == rnn_type
    # The state matters: the same observation after a different history gives a different action.
    state = [np.zeros((1, 1, 16), np.float32) for _ in names[1:]]
    obs = np.ones((1, 5), np.float32)
    first, *state = session.run(None, {"obs": obs, **dict(zip(names[1:], state, strict=True))})
    second, *_ = session.run(None, {"obs": obs, **dict(zip(names[1:], state, strict=True))})
    assert not np.allclose(np.asarray(first), np.asarray(second))


def test_a_file_that_fails_parity_is_not_written(tmp_path: Path) -> None:
    actor = MLPModel.from_config(4, 2, ActorConfig(hidden_dims=(16,)))
    with pytest.raises(ExportParityError, match="no file written"):
        export_policy(actor, tmp_path, policy_metadata(actor, ["policy"]), tolerance=0.0)
    assert not list(tmp_path.iterdir())  # neither the files nor the staging directory remain


def test_metadata_must_match_the_policy() -> None:
    actor = MLPModel.from_config(4, 2, ActorConfig(hidden_dims=(16,)))
    with pytest.raises(ValueError, match="add up to 3 but the policy reads 4"):
        policy_metadata(actor, ["policy"], {"observation": {"policy": [("a", 1), ("b", 2)]}})
    with pytest.raises(ValueError, match="action.low has 1 entries; the policy outputs 2"):
        policy_metadata(actor, ["policy"], {"action": {"low": [0.0]}})
    # The exporter refuses what the runtime would refuse: NaN bounds, inverted limits; infinite bounds become null.
    with pytest.raises(ValueError, match=r"action.low\[1\] is nan"):
        policy_metadata(actor, ["policy"], {"action": {"low": [0.0, float("nan")]}})
    with pytest.raises(ValueError, match=r"action.low\[0\] = 1.0 > action.high\[0\] = 0.5 \(inverted limits\)"):
        policy_metadata(actor, ["policy"], {"action": {"low": [1.0, 0.0], "high": [0.5, 1.0]}})
    meta = policy_metadata(actor, ["policy"], {"action": {"low": [-float("inf"), 0.0], "high": [float("inf"), 1.0]}})
    assert meta["action"]["low"] == [None, 0.0] and meta["action"]["high"] == [None, 1.0]
    with pytest.raises(ValueError, match="history=3: the policy's 4 inputs are not a whole number of steps"):
        policy_metadata(actor, ["policy"], history=3)


def test_cli_export(pendulum_run: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["export", "--checkpoint", str(pendulum_run), "--out-dir", str(tmp_path)]) == 0
    assert "parity on" in capsys.readouterr().out
    assert read_metadata(tmp_path / "policy.onnx")["task"] == "pendulum"


def test_parity_tolerance_is_relative_for_large_actions(tmp_path: Path) -> None:
    """A PPO Hopper policy after 15 min (Gaussian means up to 42) failed the old absolute 1e-5 check with 1.9e-5 from
    float32 rounding alone; the check is |Δ| ≤ 1e-5 · max(1, max |a| of the dimension)."""
    torch.manual_seed(0)
    actor = MLPModel.from_config(11, 3, ActorConfig(hidden_dims=(256, 256), obs_normalization=True))
    actor.update_normalization(torch.randn(1000, 11) * 5)
    with torch.no_grad():
        last = actor.mlp[-1]
        assert isinstance(last, torch.nn.Linear)
        last.weight.mul_(100.0)  # actions up to ~100: ONNX differs by ~6e-5
    report = export_policy(actor, tmp_path, policy_metadata(actor, ["policy"]))
    assert max(report.max_abs_diff_onnx, report.max_abs_diff_torchscript) <= 1e-5 * 200
    # A wrong export is still refused at that scale: the same actor with a tolerance of 0.
    with pytest.raises(ExportParityError, match="no file written"):
        export_policy(actor, tmp_path / "strict", policy_metadata(actor, ["policy"]), tolerance=0.0)
