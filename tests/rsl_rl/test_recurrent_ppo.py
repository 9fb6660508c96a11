"""Recurrent PPO: BPTT sequence forward equals step-by-step acting; it learns a memory task an MLP cannot; dict
configs, checkpoints and export of recurrent models."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from memory import CueRecallEnv
from point_mass import PointMassVecEnv, rsl_rl_train_cfg

from rsl_rl.algorithms.ppo import PPOConfig
from rsl_rl.algorithms.recurrent_ppo import RecurrentPPO
from rsl_rl.models import build_model
from rsl_rl.models.rnn_model import model_sequence
from rsl_rl.modules import ActorConfig, ModelConfig, RNNConfig
from rsl_rl.modules.distribution import DistributionConfig, gaussian_log_prob
from rsl_rl.runners import OnPolicyRunner, TrainConfig, train_config_from_dict


@pytest.mark.parametrize(("actor_type", "critic_type"), [("gru", "gru"), ("lstm", "lstm"), ("gru", "mlp")])
def test_bptt_sequence_forward_equals_step_by_step_acting(actor_type: str, critic_type: str) -> None:
    torch.manual_seed(0)
    env = CueRecallEnv(num_envs=6, episode_length=5)
    rnn = {"rnn_hidden_dim": 8, "hidden_dims": (8,), "obs_normalization": True}
    actor = build_model(2, 1, RNNConfig(rnn_type=actor_type, rnn_num_layers=2, **rnn))
    critic_cfg = RNNConfig(rnn_type=critic_type, **rnn) if critic_type != "mlp" else ModelConfig(hidden_dims=(8,))
    critic = build_model(4, 1, critic_cfg, actor=False)
    # Non-trivial normaliser statistics, frozen during the rollout as in training.
    actor.update_normalization(torch.randn(50, 2) * 2 + 1)
    groups = {"actor": ["policy"], "critic": ["critic"]}
    alg = RecurrentPPO(actor, critic, PPOConfig(num_mini_batches=2), groups, 6, 13)
    obs = env.reset()
    for iteration in range(2):  # the second rollout starts from a carried, non-zero hidden state
        with torch.inference_mode():
            for _ in range(13):  # episodes of 5 steps end inside the 13-step sequence
                actions = alg.act(obs)
                obs, rewards, terminated, truncated, extras = env.step(actions)
                alg.process_env_step(obs, rewards, terminated | truncated, {**extras, "time_outs": truncated})
        s = alg.storage
        assert bool(s.dones.any()) and bool(s.dones[-1].logical_not().all())
        if iteration == 1:
            assert float(s.hidden0["actor"][0].abs().sum()) > 0.0
        with torch.no_grad():
            mean, _ = model_sequence(actor, s.obs["actor"], s.hidden0["actor"], s.dones)
            values, _ = model_sequence(critic, s.obs["critic"], s.hidden0["critic"], s.dones)
        log_prob = gaussian_log_prob(s.actions, mean, actor.std())
        torch.testing.assert_close(log_prob, s.log_prob, atol=1e-5, rtol=0.0)
        torch.testing.assert_close(values.squeeze(-1), s.values, atol=1e-5, rtol=0.0)
        torch.testing.assert_close(mean, s.action_mean, atol=1e-5, rtol=0.0)
        s.clear()


def _train_cue_recall(actor: ActorConfig, iterations: int) -> float:
    torch.manual_seed(0)
    cfg = TrainConfig(
        num_steps_per_env=20,
        logger="none",
        obs_groups={"actor": ["policy"], "critic": ["critic"]},
        algorithm=PPOConfig(learning_rate=3e-3, entropy_coef=0.0, gamma=0.9, schedule="fixed"),
        actor=actor,
        critic=ModelConfig(hidden_dims=(32,)),
    )
    runner = OnPolicyRunner(CueRecallEnv(64, 10, seed=0), cfg, None, "cpu", show_progress=False)
    runner.learn(iterations)
    return float(runner.evaluate(CueRecallEnv(64, 10, seed=1)).mean())


@pytest.mark.slow
def test_recurrent_ppo_learns_memory_task_an_mlp_cannot() -> None:
    """Cue recall (cue shown at step 0 of 10, reward −|a − cue| every step): best MLP return is −9, perfect is 0."""
    dist = DistributionConfig(init_std=0.5)
    gru = _train_cue_recall(RNNConfig(rnn_type="gru", rnn_hidden_dim=16, hidden_dims=(16,), distribution_cfg=dist), 40)
    mlp = _train_cue_recall(ActorConfig(hidden_dims=(32,), distribution_cfg=dist), 40)
    print(f"cue recall return after 40 iterations: GRU {gru:.2f}, MLP {mlp:.2f}")
    assert gru >= -1.0, gru  # measured −0.10
    assert mlp <= -8.0, mlp  # measured −8.85: memory-less
    assert gru > mlp + 6.0


def test_rsl_rl_dict_config_accepts_rnn_actor_and_critic(tmp_path: Path) -> None:
    raw = rsl_rl_train_cfg()
    raw["actor"].update({"class_name": "RNNModel", "rnn_type": "lstm", "rnn_hidden_dim": 16, "rnn_num_layers": 1})
    raw["critic"].update({"class_name": "rsl_rl.models.RNNModel", "rnn_type": "gru", "rnn_hidden_dim": 16})
    cfg = train_config_from_dict(raw)
    assert isinstance(cfg.actor, RNNConfig) and isinstance(cfg.critic, RNNConfig) and cfg.recurrent
    runner = OnPolicyRunner(PointMassVecEnv(16), raw, tmp_path, "cpu", show_progress=False)
    assert isinstance(runner.alg, RecurrentPPO)
    runner.learn(2)
    state = torch.load(tmp_path / "model_1.pt", weights_only=True)
    # The saved config round-trips (play/export rebuild models from it).
    again = train_config_from_dict(state["config"])
    assert isinstance(again.actor, RNNConfig) and again.actor.rnn_type == "lstm"
    other = OnPolicyRunner(PointMassVecEnv(16), state["config"], None, "cpu", show_progress=False)
    other.load(tmp_path / "model_1.pt")
    for a, b in zip(runner.alg.actor.parameters(), other.alg.actor.parameters(), strict=True):
        assert torch.equal(a, b)
    # The inference policy carries and resets its hidden state.
    policy = other.get_inference_policy()
    obs = PointMassVecEnv(4).get_observations()
    first = policy(obs)
    assert not torch.allclose(first, policy(obs))
    policy.reset()
    torch.testing.assert_close(policy(obs), first)


@pytest.mark.parametrize("rnn_type", ["gru", "lstm"])
def test_trained_recurrent_policy_exports_with_deploy_parity(rnn_type: str, tmp_path: Path) -> None:
    from deploy.export import export_policy, policy_metadata

    raw = rsl_rl_train_cfg()
    raw["actor"].update({"class_name": "RNNModel", "rnn_type": rnn_type, "rnn_hidden_dim": 16})
    runner = OnPolicyRunner(PointMassVecEnv(16), raw, None, "cpu", show_progress=False)
    runner.learn(2)
    actor = runner.alg.get_policy()
    report = export_policy(actor, tmp_path, policy_metadata(actor, ["policy"]))
    assert report.max_abs_diff_onnx <= 1e-5 and report.max_abs_diff_torchscript <= 1e-5
    assert report.metadata["recurrent"]["type"] == rnn_type
    assert np.isfinite(report.max_abs_diff_onnx)


@pytest.mark.parametrize("rnn_type", ["gru", "lstm"])
def test_recurrent_resume_equals_uninterrupted_run(tmp_path: Path, rnn_type: str) -> None:
    """The actor's and critic's hidden states during collection are part of the checkpoint: a run resumed from
    iteration 3 (mid-episode: pendulum episodes last 200 steps) ends with the uninterrupted run's parameters."""
    from rsl_rl.cli.run_support import seed_everything
    from tasks.classic.pendulum import PendulumCfg, PendulumEnv

    def runner(log_dir: Path | None, seed: int) -> OnPolicyRunner:
        seed_everything(seed, deterministic=True)
        rnn = RNNConfig(rnn_type=rnn_type, rnn_hidden_dim=16, hidden_dims=(16,))
        cfg = TrainConfig(num_steps_per_env=8, save_interval=1000, logger="none", actor=rnn, critic=rnn)
        cfg.algorithm.num_mini_batches = 2
        cfg.algorithm.num_learning_epochs = 2
        env = PendulumEnv(PendulumCfg(num_envs=16), seed=seed)
        return OnPolicyRunner(env, cfg, log_dir, "cpu", show_progress=False)

    straight = runner(None, seed=5)
    straight.learn(6)
    first = runner(tmp_path, seed=5)
    first.learn(3)
    assert any(h.abs().sum() > 0 for state in first.alg.hidden.values() for h in state)
    resumed = runner(None, seed=999)
    resumed.load(tmp_path / "model_2.pt")
    resumed.learn(3)
    for name in ("actor", "critic"):
        a, b = getattr(straight.alg, name).state_dict(), getattr(resumed.alg, name).state_dict()
        assert all(torch.equal(a[k], b[k]) for k in a), name
    for name, state in straight.alg.hidden.items():
        assert all(torch.equal(x, y) for x, y in zip(state, resumed.alg.hidden[name], strict=True)), name


@pytest.mark.parametrize("rnn_type", ["gru", "lstm"])
def test_a_nan_observation_is_forgotten_when_its_episode_ends(rnn_type: str) -> None:
    """A NaN observation poisons its env's hidden state; the reset at the end of that episode must clear it (a mask
    product keeps NaN: NaN·0 = NaN), in acting and in the BPTT sequence forward alike, the second time as the first."""
    from rsl_rl.models.rnn_model import RNNModel, reset_hidden

    torch.manual_seed(0)
    model = RNNModel.from_config(3, 2, RNNConfig(rnn_type=rnn_type, rnn_hidden_dim=8, hidden_dims=(8,)))
    obs = torch.randn(6, 4, 3)
    obs[0, 1] = obs[3, 1] = float("nan")  # env 1, steps 0 and 3; its episodes end at steps 0 and 3
    dones = torch.zeros(6, 4, dtype=torch.bool)
    dones[0, 1] = dones[3, 1] = True
    with torch.no_grad():
        hidden = model.initial_hidden(4)
        for t in range(6):
            out, hidden = model.step(obs[t], hidden)
            hidden = reset_hidden(hidden, dones[t])
            assert torch.isfinite(torch.stack(hidden)).all(), t
            if t not in (0, 3):
                assert torch.isfinite(out).all(), t
        seq, last = model.forward_sequence(obs, model.initial_hidden(4), dones)
    assert torch.isfinite(seq[[1, 2, 4, 5]]).all() and torch.isfinite(torch.stack(last)).all()
