"""Jump-start RL (rsl_rl/jsrl, issue 15) on the real pendulum with its scripted swing-up controller as the guide: the
combined policy at h = H is the guide, the curriculum's gate, the random switch steps' distribution, per-env counters
over several episodes, PPO's masking of guide steps (against a hand computation), SAC's replay of guide transitions,
guides from checkpoints and ONNX files, checkpoint round trips, and no host sync in the step path."""

from __future__ import annotations

import importlib.util
import math
from pathlib import Path
from typing import Any

import pytest
import torch
from tensordict import TensorDict

from rsl_rl.algorithms.losses import clipped_surrogate_loss, generalized_advantage_estimation, value_loss
from rsl_rl.jsrl import (
    JSRLPPO,
    CombinedPolicy,
    Curriculum,
    EpisodeSwitch,
    JSRLConfig,
    JSRLOffPolicyRunner,
    JSRLOnPolicyRunner,
    JSRLRunner,
    guide_from_checkpoint,
    guide_from_onnx,
    make_jsrl_runner,
    masked_normalize,
    stage_switch_step,
)
from rsl_rl.modules import RNNConfig
from rsl_rl.modules.distribution import gaussian_entropy, gaussian_log_prob
from rsl_rl.runners import make_runner
from rsl_rl.runners.config import SACTrainConfig, TrainConfig
from tasks.classic import pendulum_sac_cfg, pendulum_train_cfg, point_maze_train_cfg
from tasks.classic.pendulum import PendulumCfg, PendulumEnv, swing_up_controller
from tasks.classic.point_maze import PointMazeCfg, PointMazeEnv, point_maze_guide

ROOT = Path(__file__).resolve().parents[2]


def pendulum(num_envs: int = 8, steps: int = 200, seed: int = 0, device: str = "cpu") -> PendulumEnv:
    return PendulumEnv(PendulumCfg(num_envs=num_envs, max_episode_steps=steps), device=device, seed=seed)


def ppo_cfg(steps: int, entropy_coef: float = 0.0) -> TrainConfig:
    cfg = pendulum_train_cfg()
    cfg.logger, cfg.num_steps_per_env, cfg.eval_interval, cfg.stop_at_return = "none", steps, 1, None
    cfg.algorithm.entropy_coef = entropy_coef
    return cfg


def sac_cfg() -> SACTrainConfig:
    cfg = pendulum_sac_cfg()
    cfg.logger, cfg.eval_interval, cfg.stop_at_return = "none", 1, None
    cfg.algorithm.replay_capacity, cfg.algorithm.batch_size = 64, 32
    cfg.algorithm.random_steps = cfg.algorithm.learning_starts = 0
    return cfg


def constant_guide(value: float) -> Any:
    """A guide whose actions no Gaussian learner sample hits exactly: applied == value ⇔ the guide acted."""

    def guide(obs: TensorDict) -> torch.Tensor:
        return torch.full((obs.batch_size[0], 1), value, device=obs.device)

    return guide


def runner_for(
    env: PendulumEnv | PointMazeEnv,
    cfg: TrainConfig | SACTrainConfig,
    guide: Any,
    jsrl: JSRLConfig,
    eval_env: PendulumEnv | PointMazeEnv | None = None,
    log_dir: Path | None = None,
) -> JSRLRunner:
    eval_env = eval_env or pendulum(4, env.max_episode_length, seed=99)
    return make_jsrl_runner(env, cfg, guide, jsrl, log_dir, "cpu", eval_env, show_progress=False)


def collect(runner: JSRLRunner, steps: int, obs: TensorDict | None = None) -> tuple[TensorDict, list[dict[str, Any]]]:
    """The runner's collection loop (learn() without the update): per step the guide mask and h before acting, the
    applied actions and the episode ends."""
    env = runner._env
    obs = env.get_observations() if obs is None else obs
    record = []
    with torch.inference_mode():
        for _ in range(steps):
            mask, h = runner.switch.guide_mask().clone(), runner.switch.h.clone()
            actions = runner._act(obs)
            obs, rewards, terminated, truncated, extras = env.step(actions)
            runner._process_env_step(obs, rewards, terminated, truncated, extras)
            record.append({"mask": mask, "h": h, "actions": actions.clone(), "done": terminated | truncated})
    return obs, record


class GuideAlone:
    """The guide as an evaluation policy (``evaluate`` calls ``reset(dones)`` after every step)."""

    def __init__(self, guide: Any) -> None:
        self.guide = guide

    def __call__(self, obs: TensorDict) -> torch.Tensor:
        return self.guide(obs)

    def reset(self, dones: torch.Tensor | None = None) -> None:
        pass


# --- configuration and the curriculum --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("mode", "linear", r"jsrl.mode='linear'; allowed: \['curriculum', 'random'\]"),
        ("ppo_guide_steps", "weighted", r"jsrl.ppo_guide_steps='weighted'; allowed: \['masked', 'unmasked'\]"),
        ("stages", 1, r"jsrl.stages must be >= 2"),
        ("window", 0, r"jsrl.window must be >= 1"),
        ("tolerance", -0.1, r"jsrl.tolerance must be >= 0"),
        ("horizon", -1, r"jsrl.horizon must be >= 0"),
        ("eval_episodes", -2, r"jsrl.eval_episodes must be >= 0"),
    ],
)
def test_config_errors_name_the_field_and_the_allowed_values(field: str, value: Any, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        JSRLConfig(**{field: value})


def test_curriculum_needs_an_eval_env_and_evaluations() -> None:
    with pytest.raises(ValueError, match="eval_env and set eval_interval >= 1"):
        make_jsrl_runner(pendulum(), ppo_cfg(8), constant_guide(1.0), JSRLConfig(), show_progress=False)
    make_jsrl_runner(pendulum(), ppo_cfg(8), constant_guide(1.0), JSRLConfig(mode="random"), show_progress=False)


def test_a_recurrent_ppo_learner_is_refused() -> None:
    cfg = ppo_cfg(8)
    cfg.actor = RNNConfig(rnn_type="gru", rnn_hidden_dim=8, hidden_dims=(8,))
    with pytest.raises(ValueError, match="recurrent PPO actor or critic is not supported"):
        runner_for(pendulum(), cfg, constant_guide(1.0), JSRLConfig(mode="random"))


def test_stage_switch_steps_go_from_H_to_0_rounded_half_up() -> None:
    assert [stage_switch_step(200, 10, k) for k in range(10)] == [200, 178, 156, 133, 111, 89, 67, 44, 22, 0]
    assert [stage_switch_step(5, 3, k) for k in range(3)] == [5, 3, 0]  # 2.5 → 3
    assert [stage_switch_step(7, 2, k) for k in range(2)] == [7, 0]


def test_curriculum_advances_exactly_when_the_gate_passes() -> None:
    """Window w = 2, tol = 0.25, n = 4: hand sequences through three advances and the final stage."""
    c = Curriculum(horizon=30, stages=4, tolerance=0.25, window=2)
    assert (c.stage, c.h, c.best) == (0, 30, -math.inf)
    # Stage 0: the gate waits for a full window, then passes against best = −∞; best = R̄ = −100.
    assert not c.observe(-90.0)
    assert c.observe(-110.0)
    assert (c.stage, c.h, c.best, c.returns) == (1, 20, -100.0, [])
    # Stage 1: threshold −100 − 0.25·100 = −125. R̄ = −126 fails; the window slides: R̄ = −125 passes (≥, exactly).
    assert not c.observe(-130.0)
    assert not c.observe(-122.0)
    assert c.returns == [-130.0, -122.0]
    assert c.observe(-128.0)
    # best is the highest R̄ that passed a gate: −125 < −100 keeps −100 (no drift by tol per stage).
    assert (c.stage, c.h, c.best, c.returns) == (2, 10, -100.0, [])
    # Stage 2: a better stage raises best.
    assert not c.observe(-80.0)
    assert c.observe(-60.0)
    assert (c.stage, c.h, c.best) == (3, 0, -70.0)
    # h = 0: the learner acts alone and nothing advances any more.
    assert c.finished
    for r in (0.0, 10.0, 20.0):
        assert not c.observe(r)
    assert (c.stage, c.h, c.best) == (3, 0, -70.0)


def test_curriculum_threshold_with_positive_returns_and_nan() -> None:
    c = Curriculum(horizon=10, stages=3, tolerance=0.05, window=1)
    assert c.observe(100.0) and c.best == 100.0
    assert c.threshold() == pytest.approx(95.0)
    assert not c.observe(94.9)
    assert not c.observe(math.nan)
    assert c.observe(95.0) and c.finished and c.best == 100.0
    # tol = 0 with best = −∞ at the start: passes (−∞ − 0·∞ would be NaN and never pass).
    assert Curriculum(horizon=10, stages=3, tolerance=0.0, window=1).observe(-1e9)


# --- the per-env switch ----------------------------------------------------------------------------------------------


def test_random_switch_steps_are_uniform_independent_and_redrawn_only_at_resets() -> None:
    num_envs, horizon = 64, 7
    switch = EpisodeSwitch(num_envs, horizon, random=True, h=0, device=torch.device("cpu"), seed=3)
    assert len(set(switch.h.tolist())) > 1, "envs draw their own h"
    ends = torch.Generator().manual_seed(1)
    draws, pairs = [], []
    for _ in range(600):
        done = torch.rand(num_envs, generator=ends) < 0.3
        before = switch.h.clone()
        switch.step(done)
        assert torch.equal(switch.h[~done], before[~done]), "only the envs whose episode ended redraw"
        assert torch.equal(switch.t[done], torch.zeros_like(switch.t[done]))
        draws.append(switch.h[done])
        both = done[:-1] & done[1:]  # neighbouring envs that reset at the same step
        pairs.append(torch.stack([switch.h[:-1][both], switch.h[1:][both]], -1))
    h = torch.cat(draws)
    assert h.min() == 0 and h.max() == horizon
    # Pearson's χ² against U{0..H}: 7 degrees of freedom, p = 0.001 at 24.32.
    counts = torch.bincount(h, minlength=horizon + 1).double()
    expected = h.numel() / (horizon + 1)
    assert float(((counts - expected) ** 2 / expected).sum()) < 24.32
    # Independence of neighbouring envs' simultaneous draws: χ² of the 8×8 table, 49 dof, p = 0.001 at 85.35.
    joint = torch.cat(pairs)
    table = torch.bincount(joint[:, 0] * (horizon + 1) + joint[:, 1], minlength=(horizon + 1) ** 2).double()
    expected_cell = joint.shape[0] / (horizon + 1) ** 2
    assert expected_cell > 20
    assert float(((table - expected_cell) ** 2 / expected_cell).sum()) < 85.35


@pytest.mark.parametrize("mode", ["curriculum", "random"])
def test_counters_reset_per_env_and_the_guide_acts_for_the_first_h_steps(mode: str) -> None:
    """6-step episodes that end at different steps per env, H = 4, 20 steps (three episode ends in every env): the
    guide acted exactly where the steps since that env's last end were < its h, and PPO stored what was applied."""
    env = pendulum(8, steps=6)
    env.episode_length_buf = torch.randint_like(env.episode_length_buf, high=6)
    runner = runner_for(env, ppo_cfg(20), constant_guide(7.0), JSRLConfig(mode=mode, horizon=4))
    _, steps = collect(runner, 20)
    t = torch.zeros(8, dtype=torch.long)
    ends = torch.zeros(8, dtype=torch.long)
    s = runner.alg.storage
    for i, step in enumerate(steps):
        h = step["h"] if mode == "random" else torch.full((8,), 4)
        assert torch.equal(step["mask"], t < h)
        assert torch.equal(step["actions"][:, 0] == 7.0, t < h)
        assert torch.equal(s.actions[i], step["actions"])
        assert torch.equal(s.learner[i], ~(t < h))
        assert torch.allclose(s.log_prob[i], gaussian_log_prob(s.actions[i], s.action_mean[i], s.action_std[i]))
        if i > 0:  # h changes only at episode starts
            same = ~steps[i - 1]["done"]
            assert torch.equal(step["h"][same], steps[i - 1]["h"][same])
        t = torch.where(step["done"], 0, t + 1)
        ends += step["done"]
    assert (ends >= 3).all(), "every env went through a third episode"
    assert (t < 6).all()


def test_at_h_equal_H_the_combined_policy_is_the_guide() -> None:
    """The scripted swing-up controller as the guide, h = H = the episode length: the combined policy's returns equal
    the guide's, env by env, while the untrained learner's are far lower."""
    env = pendulum(8)
    guide = swing_up_controller(env)
    for cfg in (ppo_cfg(8), sac_cfg()):
        runner = runner_for(env, cfg, guide, JSRLConfig())
        assert runner.curriculum.h == 200
        combined = runner.evaluate_combined(pendulum(16, seed=5))
        alone = runner.evaluate(pendulum(16, seed=5), policy=GuideAlone(guide))
        assert torch.equal(combined, alone)
        assert alone.mean() > -300.0, "the guide swings up"
        assert runner.evaluate(pendulum(16, seed=5)).mean() < alone.mean() - 300.0
        # At h = 0 it is the learner.
        assert torch.equal(runner.evaluate_combined(pendulum(16, seed=5), h=0), runner.evaluate(pendulum(16, seed=5)))


@pytest.mark.parametrize("mistake_prob", [0.0, 0.3])
def test_at_h_equal_H_the_combined_policy_succeeds_exactly_as_often_as_the_guide(mistake_prob: float) -> None:
    """On the sparse point-maze: with h = H = the episode length the combined policy's success is the guide's, episode
    by episode: 1.0 for the perfect guide, its ~70 % for the task's imperfect one; the untrained learner alone: ~0."""
    cfg = point_maze_train_cfg()
    cfg.logger, cfg.stop_at_return = "none", None
    env = PointMazeEnv(PointMazeCfg(num_envs=8, guide_mistake_prob=mistake_prob), seed=0)
    guide = point_maze_guide(env)

    def maze(seed: int) -> PointMazeEnv:
        return PointMazeEnv(PointMazeCfg(num_envs=128, guide_mistake_prob=mistake_prob), seed=seed)

    runner = runner_for(env, cfg, guide, JSRLConfig(), eval_env=maze(99))
    assert runner.curriculum.h == 500
    combined = runner.evaluate_combined(maze(7))
    alone = runner.evaluate(maze(7), policy=GuideAlone(guide))
    assert torch.equal(combined, alone)
    if mistake_prob == 0.0:
        assert combined.mean() == 1.0
    else:
        assert 0.6 < combined.mean() < 0.8
    assert runner.evaluate(maze(7)).mean() < 0.1


def test_combined_evaluation_runs_eval_episodes_in_rounds_of_the_eval_batch() -> None:
    env = pendulum(8, steps=5)
    runner = runner_for(env, ppo_cfg(8), swing_up_controller(env), JSRLConfig(eval_episodes=6), pendulum(4, steps=5))
    returns = runner.evaluate_combined()
    assert returns.shape == (6,)
    assert not torch.equal(returns[:2], returns[4:]), "the second round is new episodes"


def test_combined_policy_switches_per_env_after_h_steps() -> None:
    learner = constant_guide(-1.0)
    switch = EpisodeSwitch(3, horizon=5, random=False, h=2, device=torch.device("cpu"))
    policy = CombinedPolicy(learner, constant_guide(1.0), switch)
    obs = TensorDict({"policy": torch.zeros(3, 3)}, batch_size=[3])
    seen = []
    # h = 2: the guide for two steps of every episode; env 1 restarts after step 1, env 0 after step 3.
    for done in ([0, 0, 0], [0, 1, 0], [0, 0, 0], [1, 0, 0], [0, 0, 0]):
        seen.append(policy(obs)[:, 0].tolist())
        policy.reset(torch.tensor(done, dtype=torch.bool))
    assert seen == [[1, 1, 1], [1, 1, 1], [-1, 1, -1], [-1, 1, -1], [1, -1, -1]]
    policy.reset()
    assert policy(obs)[:, 0].tolist() == [1, 1, 1]


# --- PPO: guide steps out of the policy loss --------------------------------------------------------------------------


def test_an_all_guide_rollout_leaves_the_actor_unchanged_and_trains_the_critic() -> None:
    runner = runner_for(pendulum(8), ppo_cfg(16, entropy_coef=0.01), swing_up_controller(pendulum(8)), JSRLConfig())
    alg = runner.alg
    assert isinstance(alg, JSRLPPO)
    obs, _ = collect(runner, 16)
    assert not alg.storage.learner.any()
    actor = [p.detach().clone() for p in alg.actor.parameters()]
    critic = [p.detach().clone() for p in alg.critic.parameters()]
    with torch.inference_mode():
        runner._end_collection(obs)
    stats = runner._update()
    assert all(torch.equal(a, p) for a, p in zip(actor, alg.actor.parameters(), strict=True))
    assert not all(torch.equal(c, p) for c, p in zip(critic, alg.critic.parameters(), strict=True))
    assert float(stats["surrogate"]) == 0.0 and float(stats["kl"]) == 0.0 and float(stats["entropy"]) == 0.0
    assert float(stats["value_function"]) > 0.0


def gradients(alg: Any) -> list[torch.Tensor]:
    grads = [p.grad for p in (*alg.actor.parameters(), *alg.critic.parameters())]
    assert all(g is not None for g in grads)
    return [g.clone() for g in grads if g is not None]


@pytest.mark.parametrize("guide_steps", ["masked", "unmasked"])
def test_mixed_masks_weight_the_policy_loss_as_ppo_on_the_learner_steps(guide_steps: str) -> None:
    """One chunk of the whole rollout: the gradient of the masked loss is that of PPO's surrogate and entropy over the
    learner steps alone plus the value loss over every step (unmasked: PPO's over every step, the guide's actions
    with the learner's log-probabilities)."""
    torch.manual_seed(0)
    cfg = ppo_cfg(12, entropy_coef=0.01)
    cfg.algorithm.use_clipped_value_loss = True
    jsrl = JSRLConfig(mode="random", horizon=6, ppo_guide_steps=guide_steps)
    runner = runner_for(pendulum(8, steps=10), cfg, constant_guide(1.5), jsrl)
    alg, s = runner.alg, runner.alg.storage
    obs, _ = collect(runner, 12)
    m = s.learner.float()
    assert 0 < int(m.sum()) < m.numel(), "a mixed rollout"
    with torch.inference_mode():
        runner._end_collection(obs)
        raw, _ = generalized_advantage_estimation(s.rewards, s.values, s.dones, alg._last_values(obs), 0.95, 0.95)
    if guide_steps == "masked":
        assert torch.allclose(s.policy_weight, m * m.numel() / m.sum())
        assert torch.allclose(s.advantages, masked_normalize(raw, m))
        learner_adv = s.advantages[s.learner]
        assert abs(float(learner_adv.mean())) < 1e-5 and float(learner_adv.std()) == pytest.approx(1.0, abs=1e-4)
    else:
        assert torch.equal(s.policy_weight, torch.ones_like(m))
    # The chunk loss of the whole rollout, as update() computes it.
    fields = ["actor", "actions", "action_mean", "action_std", "log_prob", "values", "returns", "advantages"]
    table, col = s.pack([*fields, "policy_weight"])
    obs_rows, actions, advantages = table[:, col["actor"]], table[:, col["actions"]], table[:, col["advantages"]][:, 0]
    alg.optimizer.zero_grad(set_to_none=True)
    mean, values = alg.actor(obs_rows), alg.critic(obs_rows).squeeze(-1)
    sums = alg._backward(table, col, actions, mean, values, advantages, table.shape[0])
    ours = gradients(alg)
    # By hand.
    alg.optimizer.zero_grad(set_to_none=True)
    rows = s.learner.flatten() if guide_steps == "masked" else torch.ones(m.numel(), dtype=torch.bool)
    mean, values, std = alg.actor(obs_rows), alg.critic(obs_rows).squeeze(-1), alg.actor.std()
    old = table[:, col["log_prob"]][:, 0]
    surrogate = clipped_surrogate_loss(gaussian_log_prob(actions, mean, std)[rows], old[rows], advantages[rows], 0.2)
    v = value_loss(values, table[:, col["values"]][:, 0], table[:, col["returns"]][:, 0], 0.2, True)
    (surrogate.mean() + v.mean() - 0.01 * gaussian_entropy(std)).backward()
    hand = gradients(alg)
    assert all(torch.allclose(a, b, atol=1e-6, rtol=1e-4) for a, b in zip(ours, hand, strict=True))
    assert float(sums[0]) / table.shape[0] == pytest.approx(float(surrogate.detach().mean()), rel=1e-4, abs=1e-6)


# --- SAC: guide transitions in the replay ----------------------------------------------------------------------------


def test_sac_stores_the_guides_transitions_in_the_replay_and_learns() -> None:
    runner = runner_for(pendulum(8, steps=10), sac_cfg(), constant_guide(1.0), JSRLConfig(mode="random", horizon=5))
    assert isinstance(runner, JSRLOffPolicyRunner)
    _, steps = collect(runner, 12)
    replay = runner.alg.storage
    for i, step in enumerate(steps):
        guided = step["mask"]
        # u = from_env(1.0) = 0.5 on [−2, 2]; the env got the guide's action itself.
        assert torch.equal(replay.actions[i][guided], torch.full_like(replay.actions[i][guided], 0.5))
        assert torch.equal(step["actions"][guided], torch.ones_like(step["actions"][guided]))
        assert not (replay.actions[i][~guided] == 0.5).any()
    runner.learn(3)
    assert 0.0 < runner.logger.history[-1]["jsrl/guide_share"] < 1.0


# --- guides from files ------------------------------------------------------------------------------------------------


def test_guides_from_a_checkpoint_and_an_onnx_file_act_as_the_trained_actor(tmp_path: Path) -> None:
    env = pendulum(8)
    obs = env.get_observations()
    for name, cfg in (("ppo", ppo_cfg(8)), ("sac", sac_cfg())):
        torch.manual_seed(1)
        trained = make_runner(env, cfg, None, "cpu", show_progress=False)
        run_dir = tmp_path / name
        trained.save(run_dir / "model_0.pt")
        trained.save(run_dir / "model_3.pt")
        expected = trained.get_inference_policy()(obs)
        torch.manual_seed(2)  # a guide's weights come from the checkpoint, not from the seed
        assert torch.equal(guide_from_checkpoint(run_dir, env)(obs), expected)
        trained.export_policy_to_onnx(run_dir)
        assert torch.allclose(guide_from_onnx(run_dir / "policy.onnx")(obs), expected, atol=1e-5)


# --- checkpoints, learning, host syncs -----------------------------------------------------------------------------


@pytest.mark.parametrize("mode", ["curriculum", "random"])
def test_checkpoint_round_trip_restores_the_curriculum_and_the_episodes(tmp_path: Path, mode: str) -> None:
    def fresh() -> JSRLRunner:
        env = pendulum(8, steps=7)
        env.episode_length_buf = torch.randint_like(env.episode_length_buf, high=7)
        return runner_for(env, ppo_cfg(9), constant_guide(7.0), JSRLConfig(mode=mode, horizon=6, window=2))

    torch.manual_seed(0)
    runner = fresh()
    for r in (-50.0, -40.0, -45.0):  # stage 1, best −45, one return in the window
        if runner.curriculum.observe(r):
            runner.switch.set_stage_h(runner.curriculum.h)
    obs, _ = collect(runner, 9)
    runner.save(tmp_path / "model.pt")
    torch.manual_seed(5)
    resumed = fresh()
    resumed.load(tmp_path / "model.pt")
    assert (
        resumed.curriculum.state_dict()
        == runner.curriculum.state_dict()
        == {
            "stage": 1,
            "best": -45.0,
            "returns": [-45.0],
        }
    )
    assert torch.equal(resumed.switch.t, runner.switch.t) and torch.equal(resumed.switch.h, runner.switch.h)
    assert int(resumed.switch.stage_h) == stage_switch_step(6, 10, 1)
    # Continuing gives the same switch decisions (the env, the counters and the generator were restored).
    runner.alg.storage.clear()
    _, ahead = collect(runner, 9, obs)
    _, again = collect(resumed, 9)
    for a, b in zip(ahead, again, strict=True):
        assert torch.equal(a["mask"], b["mask"]) and torch.equal(a["h"], b["h"])


def test_learn_advances_the_curriculum_and_logs_the_jsrl_quantities(tmp_path: Path) -> None:
    torch.manual_seed(0)
    env = pendulum(16, steps=40)
    jsrl = JSRLConfig(stages=3, window=1, tolerance=10.0)  # a wide gate: the stage advances at every evaluation
    runner = runner_for(env, ppo_cfg(20), swing_up_controller(env), jsrl, pendulum(4, steps=40, seed=9), tmp_path)
    assert isinstance(runner, JSRLOnPolicyRunner)
    runner.learn(4)
    history = runner.logger.history
    assert [r["jsrl/stage"] for r in history] == [0.0, 1.0, 2.0, 2.0]
    assert [r["jsrl/h"] for r in history] == [40.0, 20.0, 0.0, 0.0]
    # 40-step episodes, 20 steps per iteration: an episode keeps the h of the stage it started in. The episodes of
    # steps 40-79 started (at the end of iteration 1) before that iteration's evaluation advanced h from 20 to 0.
    assert [r["jsrl/guide_share"] for r in history] == [1.0, 1.0, 1.0, 0.0]
    assert all(math.isfinite(r["jsrl/combined_return"]) for r in history)
    assert history[-1]["jsrl/combined_return"] == history[-1]["eval_mean_return"]  # h = 0: the learner
    assert runner.summary("pendulum")["jsrl"]["stage"] == 2
    assert (tmp_path / "model_3.pt").is_file()


def _host_sync_guard() -> Any:
    """The guard of tests/tasks/test_host_sync.py (imported, not copied), watching rsl_rl/jsrl."""
    path = ROOT / "tests" / "tasks" / "test_host_sync.py"
    spec = importlib.util.spec_from_file_location("_jsrl_host_sync_guard", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    setattr(module, "GUARDED", (ROOT / "rsl_rl" / "jsrl",))  # noqa: B010 -- a module attribute pyright cannot see
    return module


@pytest.mark.parametrize("algorithm", ["ppo", "sac"])
@pytest.mark.parametrize("mode", ["curriculum", "random"])
def test_the_step_path_makes_no_host_sync(algorithm: str, mode: str) -> None:
    guard = _host_sync_guard()
    env = pendulum(8, steps=3)
    cfg = ppo_cfg(8) if algorithm == "ppo" else sac_cfg()
    runner = runner_for(env, cfg, constant_guide(1.0), JSRLConfig(mode=mode))
    policy = runner.combined_policy(8)
    obs = env.get_observations()
    with guard.no_host_sync():
        collect(runner, 8)
        with torch.inference_mode():
            policy(obs)
            policy.reset(torch.ones(8, dtype=torch.bool))
    with pytest.raises(guard.HostSync, match="rsl_rl/jsrl/schedule.py"), guard.no_host_sync():
        runner.switch.state_dict()  # int(stage_h): the guard watches this package (checkpoints may sync)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
@pytest.mark.parametrize("algorithm", ["ppo", "sac"])
def test_acting_and_switching_make_no_cuda_sync(algorithm: str) -> None:
    """Under CUDA's sync debug mode: the learner's act, the guide, the per-env selection and storage of the applied
    action, the counters' update and the combined policy (the env's step and PPO's bookkeeping run outside it)."""
    env = pendulum(8, steps=3, device="cuda")
    cfg = ppo_cfg(8) if algorithm == "ppo" else sac_cfg()
    guide = swing_up_controller(env)
    runner = make_jsrl_runner(env, cfg, guide, JSRLConfig(mode="random"), None, "cuda", None, show_progress=False)
    policy = runner.combined_policy(8)
    obs = env.get_observations()
    with torch.inference_mode():
        for _ in range(8):
            policy(obs)  # warm-up: kernels and the allocator
            torch.cuda.synchronize()
            torch.cuda.set_sync_debug_mode("error")
            try:
                actions = runner._act(obs)
                policy(obs)
            finally:
                torch.cuda.set_sync_debug_mode("default")
            obs, rewards, terminated, truncated, extras = env.step(actions)
            runner._process_env_step(obs, rewards, terminated, truncated, extras)
            torch.cuda.set_sync_debug_mode("error")
            try:
                runner.switch.step(terminated | truncated)
                policy.reset(terminated | truncated)
            finally:
                torch.cuda.set_sync_debug_mode("default")
