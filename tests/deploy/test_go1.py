"""Deployment of the go1 quadruped: a trained checkpoint's export metadata (with a command-line override), sim-to-sim
through the torch-free runtime against the torch policy, and the task's action pipeline against the runtime's."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

import tasks.legged  # noqa: F401 -- registers go1-flat
from deploy.export import export_policy, policy_metadata, read_metadata, rebuild_actor
from deploy.runtime import PolicyRuntime
from deploy.sim2sim import run_sim2sim
from rsl_rl.cli.main import main
from rsl_rl.models import MLPModel
from rsl_rl.modules import ActorConfig
from rsl_rl.registry import get_task
from rsl_rl.runners.checkpoint import latest_checkpoint, load_checkpoint
from tasks.legged.robot import RobotCfg, build_model
from tasks.legged.velocity import VelocityTask

JOINTS = [f"{leg}_{j}_joint" for leg in ("FR", "FL", "RR", "RL") for j in ("hip", "thigh", "calf")]
# The standing pose of RobotCfg by hand: right hips −0.1, left hips 0.1, thighs 0.9, calves −1.8.
STANDING = [-0.1, 0.9, -1.8, 0.1, 0.9, -1.8, -0.1, 0.9, -1.8, 0.1, 0.9, -1.8]
TERMS = [("base_lin_vel", 3), ("base_ang_vel", 3), ("projected_gravity", 3), ("velocity_command", 3),
         ("joint_pos_rel", 12), ("joint_vel", 12), ("last_action", 12)]  # fmt: skip


@pytest.fixture(scope="module")
def go1_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Two tiny PPO iterations of go1-flat with the action scale overridden to 0.5 (default 0.25)."""
    run = tmp_path_factory.mktemp("go1")
    argv = ["train", "--task", "go1-flat", "--run-dir", str(run), "--num-envs", "4", "--max-iterations", "2",
            "--logger", "none", "--threads", "1", "--agent.eval-episodes", "2", "--env.max-episode-steps", "50",
            "--env.robot.action-scale", "0.5"]  # fmt: skip
    assert main(argv) == 0
    return run


def test_go1_export_metadata(go1_run: Path) -> None:
    meta = read_metadata(go1_run / "exported" / "policy.onnx")
    action = meta["action"]
    assert meta["task"] == "go1-flat" and action["dim"] == 12 and action["names"] == JOINTS
    assert action["default"] == pytest.approx(STANDING)
    assert action["scale"] == [0.5] * 12  # the --env override, not the task's default 0.25
    assert meta["env_config"]["robot"]["action_scale"] == 0.5
    # Bounds: the joint ranges of go1.xml in action units, (limit − standing pose) / scale.
    model = build_model(RobotCfg())
    ranges = np.array([model.joint(name).range for name in JOINTS])
    assert action["low"] == pytest.approx(((ranges[:, 0] - STANDING) / 0.5).tolist(), abs=1e-6)
    assert action["high"] == pytest.approx(((ranges[:, 1] - STANDING) / 0.5).tolist(), abs=1e-6)
    assert action["kp"] == [35.0] * 12 and action["kd"] == [0.5] * 12
    assert action["command"] == "joint_position" and action["limit"] == "clip" and action["last_action"] == "clipped"
    observation = meta["observation"]
    assert observation["groups"] == ["policy"] and observation["dim"] == 48
    assert [(t["name"], t["size"]) for t in observation["terms"]] == TERMS
    assert meta["control"] == {"period_s": pytest.approx(0.02), "decimation": 4}  # 50 Hz policy, 200 Hz physics
    assert meta["history"] is None and meta["recurrent"] is None and meta["inputs"] == ["obs"]


def test_go1_sim2sim_runtime_equals_torch_policy(go1_run: Path, capsys: pytest.CaptureFixture[str]) -> None:
    policy = go1_run / "exported" / "policy.onnx"
    report = run_sim2sim(str(policy), episodes=2, seed=1, max_steps=40, record=True)
    assert report.task == "go1-flat" and report.faults == {} and report.safe_steps == 0
    assert [len(a) for a in report.actions] == [len(o) for o in report.observations] and len(report.actions) == 2
    actor, groups, history = rebuild_actor(load_checkpoint(latest_checkpoint(go1_run)))
    assert groups == ["policy"] and history == 1
    meta = read_metadata(policy)
    low, high = np.array(meta["action"]["low"]), np.array(meta["action"]["high"])
    for observations, actions in zip(report.observations, report.actions, strict=True):
        with torch.no_grad():
            expected = actor(torch.from_numpy(observations)).numpy()
        np.testing.assert_allclose(actions, np.clip(expected, low, high), atol=1e-5)
    # The CLI: a short run on the stored env config.
    assert main(["deploy-sim", "--policy", str(policy), "--episodes", "1", "--max-steps", "5"]) == 0
    assert "go1-flat: mean return" in capsys.readouterr().out


def test_sim2sim_refuses_a_task_that_differs_from_the_metadata(go1_run: Path, tmp_path: Path) -> None:
    import json

    import onnx

    from deploy.metadata import METADATA_KEY

    model = onnx.load(str(go1_run / "exported" / "policy.onnx"))
    entry = next(e for e in model.metadata_props if e.key == METADATA_KEY)
    meta = json.loads(entry.value)
    meta["env_config"] = None  # the task would be rebuilt from its defaults: action scale 0.25, not 0.5
    entry.value = json.dumps(meta)
    onnx.save(model, str(tmp_path / "p.onnx"))
    with pytest.raises(ValueError, match=r"differs from the policy's metadata in action.scale \(task: \[0.25"):
        run_sim2sim(str(tmp_path / "p.onnx"), episodes=1, max_steps=2)


def _signals(runtime: PolicyRuntime, x: np.ndarray) -> dict[str, Any]:
    """The named terms of an observation vector, without ``last_action`` (the runtime feeds that itself)."""
    out, start = {}, 0
    for name, size, _ in runtime.terms:
        if name != "last_action":
            out[name] = x[start : start + size]
        start += size
    return out


def test_go1_task_and_runtime_limit_actions_the_same_way(tmp_path: Path) -> None:
    spec = get_task("go1-flat")
    cfg = spec.env_cfg()
    cfg.num_envs, cfg.max_episode_steps, cfg.sim.backend = 1, 12, "cpu"
    env = spec.build(cfg, seed=0)
    assert isinstance(env, VelocityTask)
    torch.manual_seed(0)
    actor = MLPModel.from_config(48, 12, ActorConfig(hidden_dims=(32,)))
    last = actor.mlp[-1]
    assert isinstance(last, torch.nn.Linear)
    with torch.no_grad():
        last.weight.mul_(30.0)  # outputs far beyond the joint-limit bounds: the clip decides the action
    meta = policy_metadata(actor, ["policy"], env.deployment_spec(), env.step_dt, cfg.decimation)
    runtime = PolicyRuntime(str(export_policy(actor, tmp_path, meta).onnx))
    obs = env.reset()
    episodes, clipped = 0, 0
    for _ in range(40):
        x = obs["policy"][0].numpy()
        assembled = runtime.observation(_signals(runtime, x))
        assert assembled is not None
        np.testing.assert_allclose(assembled, x, rtol=1e-5, atol=1e-5)  # last_action fed as the task observes it
        result = runtime.step(assembled)
        with torch.no_grad():
            raw = actor(obs["policy"])
        obs, _, terminated, truncated, extras = env.step(raw)
        done = bool(terminated[0] | truncated[0])
        # The action that acted, as the task observes it (last_action: the final observation's if the episode ended).
        acted = (extras["final_obs"] if done else obs)["policy"][0, -12:].double().numpy()
        if not done:
            assert np.array_equal(acted, env.action[0].float().double().numpy())
        np.testing.assert_allclose(
            result.action, acted, rtol=1e-5, atol=1e-5
        )  # the same clip in training and on the robot
        clipped += int((raw[0].double().numpy() != acted).sum())
        if done:
            runtime.reset()
            episodes += 1
    assert episodes >= 3 and clipped > 0
    env.close()
