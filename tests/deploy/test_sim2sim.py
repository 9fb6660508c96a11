"""Sim-to-sim: the exported file, run by the torch-free runtime, reproduces the trained policy's return."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from deploy.export import export_checkpoint, export_policy, policy_metadata, read_metadata, rebuild_actor
from deploy.runtime import PolicyRuntime
from deploy.sim2sim import run_sim2sim
from rsl_rl.cli.main import main
from rsl_rl.models import MLPModel
from rsl_rl.modules import ActorConfig
from rsl_rl.registry import get_task
from rsl_rl.runners import OnPolicyRunner, train_config_from_dict
from rsl_rl.runners.checkpoint import latest_checkpoint, load_checkpoint
from rsl_rl.runners.distillation_runner import HistoryInferencePolicy
from tasks.mujoco.task import MujocoTask


@pytest.mark.slow
def test_sim2sim_reproduces_training_return(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    run = tmp_path / "run"
    assert main(["train", "--task", "pendulum", "--run-dir", str(run), "--logger", "none", "--seed", "3"]) == 0
    summary = json.loads((run / "summary.json").read_text())
    assert summary["final_mean_return"] >= -200.0

    # The torch policy on 16 episodes of a seeded env ...
    spec = get_task("pendulum")
    cfg = spec.env_cfg()
    cfg.num_envs = 16
    env = spec.build(cfg, seed=7)
    state = load_checkpoint(latest_checkpoint(run))
    runner = OnPolicyRunner(env, train_config_from_dict(state["config"]), None, "cpu", show_progress=False)
    runner.load(latest_checkpoint(run), load_cfg={"actor": True})
    torch_return = float(runner.evaluate(env).mean())

    # ... and the exported ONNX file through the runtime and its safety layer, on the same initial states.
    report = run_sim2sim(str(run / "exported" / "policy.onnx"), episodes=16, seed=7)
    assert report.task == "pendulum" and report.faults == {} and report.safe_steps == 0
    assert report.mean_return == pytest.approx(torch_return, abs=0.5)

    assert main(["deploy-sim", "--policy", str(run / "exported" / "policy.onnx"), "--episodes", "4"]) == 0
    assert "mean return" in capsys.readouterr().out


def test_history_student_runs_with_real_history(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """An MLP-history student from `rsl-rl distill`: the metadata says how many steps it reads, the runtime keeps that
    history itself, and deploy-sim's actions equal the torch student's over whole episodes."""
    teacher, student = tmp_path / "teacher", tmp_path / "student"
    common = ["--num-envs", "16", "--logger", "none", "--max-iterations", "2"]
    argv = ["train", "--task", "pendulum", "--run-dir", str(teacher), "--env.max-episode-steps", "40", *common]
    assert main(argv) == 0
    argv = ["distill", "--task", "pendulum", "--teacher", str(teacher), "--run-dir", str(student)]
    assert main([*argv, "--history-length", "3", *common]) == 0
    for policy in (student / "exported" / "policy.onnx", tmp_path / "re" / "policy.onnx"):
        if not policy.exists():
            export_checkpoint(student, policy.parent)  # `rsl-rl export` of the distillation checkpoint
        meta = read_metadata(policy)
        assert meta["history"] == {"length": 3, "order": "oldest_first", "episode_start": "repeat_first"}
        assert meta["observation"]["dim"] == 3 and meta["observation"]["groups"] == ["policy"]
        assert [t["name"] for t in meta["observation"]["terms"]] == ["cos_theta", "sin_theta", "theta_dot"]
        assert meta["env_config"]["max_episode_steps"] == 40  # the student learnt in the teacher's env
    report = run_sim2sim(str(student / "exported" / "policy.onnx"), episodes=3, seed=5, record=True)
    assert report.faults == {} and len(report.observations) == 3 and report.mean_length == 40
    actor, groups, history = rebuild_actor(load_checkpoint(latest_checkpoint(student)))
    assert isinstance(actor, MLPModel) and history == 3 and actor.obs_dim == 9
    for frames, actions in zip(report.observations, report.actions, strict=True):
        reference = HistoryInferencePolicy(actor, groups, history)  # a fresh history per episode
        with torch.no_grad():
            expected = torch.cat([reference(torch.from_numpy(f)[None]) for f in frames]).numpy()
        np.testing.assert_allclose(actions, np.clip(expected, -2.0, 2.0), atol=1e-5)
    # The stacked copies of one frame would give other actions: the history is real.
    with torch.no_grad():
        frames = report.observations[0]
        repeated = actor(torch.from_numpy(np.tile(frames, (1, 3)))).numpy()
    assert not np.allclose(report.actions[0], np.clip(repeated, -2.0, 2.0), atol=1e-3)


def test_mujoco_task_and_runtime_limit_actions_the_same_way(tmp_path: Path) -> None:
    """hopper: process_action clips to the actuators' control range, the runtime to the exported bounds."""
    spec = get_task("hopper")
    cfg = spec.env_cfg()
    cfg.num_envs, cfg.sim.backend = 1, "cpu"
    env = spec.build(cfg, seed=0)
    assert isinstance(env, MujocoTask)
    meta_spec = env.deployment_spec()
    assert meta_spec["action"]["low"] == [-1.0] * 3 and meta_spec["action"]["high"] == [1.0] * 3
    torch.manual_seed(0)
    obs_dim = env.get_observations()["policy"].shape[-1]
    actor = MLPModel.from_config(obs_dim, 3, ActorConfig(hidden_dims=(16,)))
    last = actor.mlp[-1]
    assert isinstance(last, torch.nn.Linear)
    with torch.no_grad():
        last.weight.mul_(10.0)
    runtime = PolicyRuntime(str(export_policy(actor, tmp_path, policy_metadata(actor, ["policy"], meta_spec)).onnx))
    obs, clipped = env.reset(), 0
    for _ in range(30):
        result = runtime.step(obs["policy"][0].numpy())
        with torch.no_grad():
            raw = actor(obs["policy"])
        obs, *_ = env.step(raw)
        np.testing.assert_allclose(result.action, env.action[0].numpy(), rtol=1e-5, atol=1e-5)
        clipped += int((raw != env.action).sum())
    assert clipped > 0
    env.close()
