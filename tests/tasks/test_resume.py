"""Exact resume of MuJoCo tasks: simulator state (every backend path), task state, and ``rsl-rl train --resume``."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from worlds import initial_state, make, rollout, smooth_actions

from rsl_rl.cli.main import main
from tasks.mujoco.sim import SimConfig
from tasks.mujoco.warp_backend import warp_available
from tasks.rrls.hopper import HopperCfg, HopperEnv

PATHS = [("cpu", ()), ("cpu", ("cfrc_ext",)), ("warp", ())]  # mujoco.batch, thread pool, warp


@pytest.mark.parametrize(("backend", "fields"), PATHS)
def test_simulator_state_round_trip_continues_exactly(backend: str, fields: tuple[str, ...]) -> None:
    """A fresh simulator loaded with another's state (integration state with warm-start and time, the fields tasks
    read, per-world parameters) continues bit for bit as the original -- with contacts and a per-world mass."""
    if backend == "warp" and not warp_available():
        pytest.skip("mujoco-warp is not installed")
    n = 4
    fields = (*fields, "xpos", "sensordata")
    original = make(backend, n, fields, ("body_mass",))
    original.reset(torch.ones(n, dtype=torch.bool), *initial_state(original))
    mass = original.params["body_mass"].clone()
    mass[:, 1] *= torch.tensor([1.0, 1.5, 2.0, 0.7], dtype=mass.dtype).view(n)
    original.set_params("body_mass", mass)
    actions = smooth_actions(50, n, original.model.nu)
    rollout(original, actions[:20])
    state = original.state_dict()

    restored = make(backend, n, fields, ("body_mass",))  # fresh worlds at the model's defaults
    restored.load_state_dict(state)
    for name, tensor in original.data.items():
        assert torch.equal(restored.data[name], tensor), name
    assert torch.equal(restored.params["body_mass"], original.params["body_mass"])
    assert torch.equal(rollout(restored, actions[20:]), rollout(original, actions[20:]))


def test_simulator_state_errors_name_the_mismatch() -> None:
    state = make("cpu", 4).state_dict()
    with pytest.raises(ValueError, match=r"'time' has shape \(4,\), this simulator's is \(3,\)"):
        make("cpu", 3).load_state_dict(state)
    with pytest.raises(ValueError, match="missing 'qvel'"):
        make("cpu", 4).load_state_dict({**state, "state": {k: v for k, v in state["state"].items() if k != "qvel"}})


def test_hopper_task_state_round_trip() -> None:
    """The task (worlds, episode counters, reward sums, last action, its RNG) resumes exactly: same observations,
    rewards, terminations and resets as the uninterrupted env, across episode ends."""
    cfg = HopperCfg(num_envs=4, max_episode_steps=15, sim=SimConfig(backend="cpu", nthread=2))
    a = HopperEnv(cfg, seed=1)
    g = torch.Generator().manual_seed(0)
    actions = torch.rand(60, 4, a.num_actions, generator=g) * 2 - 1
    for u in actions[:25]:
        a.step(u)
    b = HopperEnv(cfg, seed=7)
    b.load_state_dict(a.state_dict())
    assert torch.equal(a.get_observations()["policy"], b.get_observations()["policy"])
    resets = 0
    for u in actions[25:]:
        obs_a, reward_a, term_a, trunc_a, _ = a.step(u)
        obs_b, reward_b, term_b, trunc_b, _ = b.step(u)
        assert torch.equal(obs_a["policy"], obs_b["policy"]) and torch.equal(reward_a, reward_b)
        assert torch.equal(term_a, term_b) and torch.equal(trunc_a, trunc_b)
        resets += int((term_a | trunc_a).sum())
    assert resets >= 4  # episode ends (time-outs at least) happened after the resume


def _parameters(path: Path) -> dict[str, torch.Tensor]:
    state = torch.load(path, weights_only=True)
    return {**state["actor_state_dict"], **state["critic_state_dict"]}


@pytest.mark.parametrize(
    ("task", "extra"),
    [
        ("hopper", ["--num-envs", "4", "--agent.num-steps-per-env", "32", "--env.sim.nthread", "2"]),
        ("go1-rough", ["--num-envs", "8", "--env.max-episode-steps", "40", "--agent.actor.hidden-dims", "32", "32",
                       "--agent.critic.hidden-dims", "32", "32", "--env.terrain.num-levels", "3",
                       "--env.terrain.num-cols", "6", "--env.terrain.tile-size", "4.0"]),
    ],
)  # fmt: skip
def test_cli_resume_equals_uninterrupted_run(tmp_path: Path, task: str, extra: list[str]) -> None:
    """``rsl-rl train --resume`` in deterministic mode gives the same parameters (difference 0) as one uninterrupted
    run, and the env state -- curriculum levels included -- continues rather than restarting."""
    common = ["train", "--task", task, "--deterministic", "--seed", "3", "--logger", "none", *extra]
    straight, split = tmp_path / "straight", tmp_path / "split"
    assert main([*common, "--run-dir", str(straight), "--max-iterations", "4"]) == 0
    assert main([*common, "--run-dir", str(split), "--max-iterations", "2"]) == 0
    resumed = tmp_path / "resumed"
    assert (
        main([*common, "--run-dir", str(resumed), "--max-iterations", "4", "--resume", str(split / "model_1.pt")]) == 0
    )
    a, b = _parameters(straight / "model_3.pt"), _parameters(resumed / "model_3.pt")
    assert a.keys() == b.keys()
    assert max((a[k] - b[k]).abs().max().item() for k in a) == 0.0
    env_a = torch.load(straight / "model_3.pt", weights_only=True)["env_state"]
    env_b = torch.load(resumed / "model_3.pt", weights_only=True)["env_state"]
    assert torch.equal(env_a["sim"]["state"]["qpos"], env_b["sim"]["state"]["qpos"])
