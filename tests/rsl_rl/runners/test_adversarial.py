"""Two-player adversarial training (rsl_rl/runners/adversarial.py, rsl-rl train-adversarial) on the real hopper task
with the real force and parameter adversaries: the schedule, the zero-sum rewards, checkpoints and exact resume, the
CLI with play/export of the protagonist, a SAC adversary, and an adversary that learns."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import pytest
import torch

from rsl_rl.algorithms.sac import SACConfig
from rsl_rl.cli.main import main
from rsl_rl.modules.distribution import DistributionConfig
from rsl_rl.modules.mlp import ActorConfig, ModelConfig
from rsl_rl.modules.sac_models import SACActorConfig, SACCriticConfig
from rsl_rl.registry import get_task
from rsl_rl.runners.adversarial import AdversarialConfig, AdversarialRunner
from rsl_rl.runners.checkpoint import load_checkpoint
from rsl_rl.runners.config import SACTrainConfig, TrainConfig
from tasks.uncertainty import force_set, uncertainty_set
from tasks.wrappers.adversary import DynamicAdversary, ForceAdversary

STEPS = 16


def hopper(num_envs: int = 8, seed: int = 0) -> Any:
    spec = get_task("hopper")
    cfg = spec.env_cfg()
    cfg.num_envs = num_envs
    return spec.build(cfg, seed=seed)


def force_env(num_envs: int = 8, seed: int = 0) -> ForceAdversary:
    forces = force_set("hopper")
    return ForceAdversary(hopper(num_envs, seed), forces.bodies, forces.max_force)


def params_env(num_envs: int = 8, seed: int = 0) -> DynamicAdversary:
    return DynamicAdversary(hopper(num_envs, seed), uncertainty_set("hopper", "3d").bounds)


def ppo_cfg(steps: int = STEPS, learning_rate: float = 1e-3) -> TrainConfig:
    cfg: TrainConfig = get_task("hopper").agent_cfg("ppo")
    cfg.num_steps_per_env, cfg.logger = steps, "none"
    cfg.actor = ActorConfig(
        hidden_dims=(32, 32), activation="elu", obs_normalization=True, distribution_cfg=DistributionConfig()
    )
    cfg.critic = ModelConfig(hidden_dims=(32, 32), activation="elu", obs_normalization=True)
    cfg.algorithm.num_learning_epochs, cfg.algorithm.num_mini_batches = 4, 2
    cfg.algorithm.learning_rate = learning_rate
    return cfg


def sac_cfg() -> SACTrainConfig:
    return SACTrainConfig(
        num_steps_per_env=1,
        logger="none",
        algorithm=SACConfig(batch_size=64, num_updates=1, replay_capacity=64, n_step=1),
        actor=SACActorConfig(hidden_dims=(32, 32)),
        critic=SACCriticConfig(hidden_dims=(32, 32)),
    )


def runner_for(
    env: Any, adversary_cfg: TrainConfig | SACTrainConfig | None = None, schedule: AdversarialConfig | None = None
) -> AdversarialRunner:
    adversary_cfg = adversary_cfg or ppo_cfg()
    return AdversarialRunner(env, ppo_cfg(), adversary_cfg, show_progress=False, schedule=schedule)


def weights(alg: Any) -> list[torch.Tensor]:
    """Parameters and buffers (normalisers) of a player's actor and critic."""
    return [t.detach().clone() for m in (alg.actor, alg.critic) for t in m.state_dict().values()]


def same(a: list[torch.Tensor], b: list[torch.Tensor]) -> bool:
    return len(a) == len(b) and all(torch.equal(x, y) for x, y in zip(a, b, strict=True))


# --- schedule ---------------------------------------------------------------------------------------------------------


def test_alternating_updates_only_the_scheduled_player_and_switches_after_exactly_n_iterations() -> None:
    torch.manual_seed(0)
    runner = runner_for(force_env(), schedule=AdversarialConfig("alternating", 2, 3))
    assert runner.alg.actor.output_dim == 3 and runner.adversary.alg.actor.output_dim == 2  # hopper; foot x/y
    expected = "PPAAAPPA"  # the 1st, 2nd and 3rd switch: after 2, 3 and 2 iterations
    seen = ""
    for it in range(len(expected)):
        before = weights(runner.alg), weights(runner.adversary.alg)
        runner.learn(1)
        protagonist = not same(before[0], weights(runner.alg))
        adversary = not same(before[1], weights(runner.adversary.alg))
        assert protagonist != adversary, f"iteration {it}: exactly one player must change"
        seen += "P" if protagonist else "A"
        record = runner.logger.history[-1]
        assert record["Adversary/phase"] == float(adversary)
        # A frozen player logs no losses; the updating one does, and both log their rewards.
        assert ("surrogate" in record) == protagonist and ("Adversary/surrogate" in record) == adversary
        assert math.isfinite(record["Adversary/mean_reward"])
    assert seen == expected
    assert runner.updates == {"protagonist": 4, "adversary": 4}
    assert (runner.phase, runner.phase_iteration, runner.phases_completed) == ("adversary", 1, 3)


def test_simultaneous_updates_both_players_every_iteration() -> None:
    torch.manual_seed(1)
    runner = runner_for(params_env(), schedule=AdversarialConfig("simultaneous"))
    for _ in range(2):
        before = weights(runner.alg), weights(runner.adversary.alg)
        runner.learn(1)
        assert not same(before[0], weights(runner.alg)) and not same(before[1], weights(runner.adversary.alg))
        assert runner.logger.history[-1]["Adversary/phase"] == 0.5
    assert runner.updates == {"protagonist": 2, "adversary": 2}


def test_the_adversary_stores_exactly_minus_the_protagonists_reward() -> None:
    torch.manual_seed(2)
    runner = runner_for(params_env(), schedule=AdversarialConfig("simultaneous"))
    runner.learn(1)
    # The rollouts stay in the storages after the update (clear() only rewinds them); no episode was truncated in
    # these 16 steps of 1000-step episodes, so no bootstrap was folded into either reward.
    protagonist, adversary = runner.alg.storage, runner.adversary.alg.storage
    assert protagonist.rewards.abs().sum() > 0
    assert torch.equal(adversary.rewards, -protagonist.rewards)
    assert torch.equal(adversary.dones, protagonist.dones)
    record = runner.logger.history[-1]
    assert record["Adversary/mean_reward"] == pytest.approx(-float(protagonist.rewards.mean()), rel=1e-5)


def test_a_runner_needs_the_adversarys_columns() -> None:
    with pytest.raises(ValueError, match="adversary_dims"):
        AdversarialRunner(hopper(), ppo_cfg(), ppo_cfg(), show_progress=False)
    with pytest.raises(ValueError, match="mode"):
        AdversarialConfig("turns")
    with pytest.raises(ValueError, match="adversary_iterations"):
        AdversarialConfig("alternating", 1, 0)


# --- checkpoints ------------------------------------------------------------------------------------------------------


def test_checkpoint_round_trip_and_exact_resume_continue_the_schedule(tmp_path: Path) -> None:
    schedule = AdversarialConfig("alternating", 2, 1)
    torch.manual_seed(3)
    first = runner_for(force_env(), schedule=schedule)
    first.learn(2)  # the protagonist's phase; the adversary's is next
    path = tmp_path / "model_1.pt"
    first.save(path)
    saved = weights(first.alg), weights(first.adversary.alg)
    state = load_checkpoint(path)
    assert state["adversary"]["algorithm"] == "PPO" and "actor_state_dict" in state["adversary"]["state"]
    assert state["adversary"]["phase"] == {
        "phase": "adversary",
        "phase_iteration": 0,
        "phases_completed": 1,
        "updates": {"protagonist": 2, "adversary": 0},
    }
    first.learn(3)  # A, P, P

    torch.manual_seed(99)  # other initial weights: everything must come from the checkpoint
    second = runner_for(force_env(), schedule=schedule)
    assert not same(saved[0], weights(second.alg))
    second.load(path)
    assert same(saved[0], weights(second.alg)) and same(saved[1], weights(second.adversary.alg))
    assert (second.phase, second.phase_iteration, second.phases_completed) == ("adversary", 0, 1)
    assert second.current_learning_iteration == 2
    second.learn(3)
    assert second.updates == first.updates == {"protagonist": 4, "adversary": 1}
    assert (second.phase, second.phase_iteration) == (first.phase, first.phase_iteration) == ("adversary", 0)
    # Exact resume: env, RNG, both players' optimisers and episode sums were restored.
    assert same(weights(first.alg), weights(second.alg))
    assert same(weights(first.adversary.alg), weights(second.adversary.alg))


def test_cli_run_dir_and_play_and_export_of_the_protagonist(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    run = tmp_path / "run"
    argv = ["train-adversarial", "--task", "hopper", "--adversary", "force", "--mode", "alternating"]
    argv += ["--protagonist-iterations", "1", "--adversary-iterations", "1", "--max-iterations", "2", "--num-envs", "8"]
    argv += ["--agent.num-steps-per-env", "16", "--agent.eval-episodes", "2", "--run-dir", str(run), "--device", "cpu"]
    assert main([*argv, "--threads", "1", "--seed", "3"]) == 0
    summary = json.loads((run / "summary.json").read_text())
    assert summary["iterations"] == 2 and summary["final_mean_return_source"] == "deterministic evaluation"
    assert math.isfinite(summary["final_mean_return"])
    adversary = summary["adversary"]
    assert adversary["updates"] == {"protagonist": 1, "adversary": 1}
    assert (adversary["kind"], adversary["set"], adversary["bodies"]) == ("force", "force", ["foot"])
    assert (run / "curves.png").is_file() and list(run.glob("events.out.tfevents.*"))
    config = json.loads((run / "config.json").read_text())
    assert config["task"] == "hopper" and config["adversary"]["schedule"]["mode"] == "alternating"
    state = load_checkpoint(run / "model_1.pt")
    assert state["infos"]["task"] == "hopper" and state["adversary"]["phase"]["phases_completed"] == 2

    # play and export read the protagonist and rebuild the nominal task.
    capsys.readouterr()
    assert main(["play", "--checkpoint", str(run), "--num-envs", "2", "--device", "cpu"]) == 0
    assert "mean return over 2 episodes" in capsys.readouterr().out
    assert main(["export", "--checkpoint", str(run / "model_1.pt"), "--out-dir", str(tmp_path / "exp")]) == 0
    assert "actions 3" in capsys.readouterr().out
    for exported in (tmp_path / "exp" / "policy.pt", run / "exported" / "policy.pt"):
        policy = torch.jit.load(str(exported))
        assert policy(torch.zeros(1, 11)).shape == (1, 3)  # the protagonist's action, not the adversary's


# --- a SAC adversary --------------------------------------------------------------------------------------------------


def test_a_sac_adversary_acts_in_bounds_stores_minus_r_updates_and_checkpoints(tmp_path: Path) -> None:
    torch.manual_seed(4)
    runner = runner_for(force_env(), sac_cfg(), AdversarialConfig("simultaneous"))
    sac = runner.adversary.alg
    assert sac.cfg.num_updates == STEPS  # its one update per env step, kept per iteration of 16 steps
    assert torch.equal(sac.actor.action_low, -torch.ones(2)) and torch.equal(sac.actor.action_high, torch.ones(2))
    before = weights(sac)
    runner.learn(1)
    assert torch.equal(sac.storage.rewards[:STEPS], -runner.alg.storage.rewards)
    runner.learn(1)
    assert not same(before, weights(sac))
    record = runner.logger.history[-1]
    assert record["Adversary/gradient_steps"] == STEPS and math.isfinite(record["Adversary/Loss/critic"])
    runner.save(tmp_path / "model.pt")
    other = runner_for(force_env(), sac_cfg(), AdversarialConfig("simultaneous"))
    other.load(tmp_path / "model.pt")
    assert same(weights(sac), weights(other.adversary.alg))
    assert other.adversary.alg.collected_steps == sac.collected_steps == 2 * STEPS


# --- learning ---------------------------------------------------------------------------------------------------------


def test_the_adversary_learns_to_lower_a_fixed_protagonists_reward() -> None:
    """Adversary-only iterations against a fixed (untrained) protagonist: a 60 N horizontal push on the torso that the
    adversary learns to aim backwards. Over 25 iterations its mean reward −r rose from about −0.7 to −0.15 on seeds
    0-2 (the protagonist's episode return fell from ~10 to ~2); an adversary that does not learn stays within ±0.1."""
    torch.manual_seed(0)
    env = ForceAdversary(hopper(32), ["torso"], max_force=60.0, axes="x")
    cfg = ppo_cfg(steps=32)
    schedule = AdversarialConfig("alternating", 1, 100)
    runner = AdversarialRunner(env, cfg, ppo_cfg(steps=32), show_progress=False, schedule=schedule)
    runner.phase = "adversary"  # start with the adversary's phase: the protagonist stays as initialised
    protagonist = weights(runner.alg)
    runner.learn(25)
    assert same(protagonist, weights(runner.alg))
    history = runner.logger.history
    rewards = [r["Adversary/mean_reward"] for r in history]
    returns = [r["mean_return"] for r in history]
    assert sum(rewards[-5:]) / 5 > sum(rewards[:5]) / 5 + 0.2, rewards
    assert sum(returns[-5:]) / 5 < sum(returns[:5]) / 5, returns
