"""PPO's process_env_step bootstrap, micro-batching and non-finite protection."""

from __future__ import annotations

import copy

import pytest
import torch
from tensordict import TensorDict

from rsl_rl.algorithms import PPO, PPOConfig
from rsl_rl.models import MLPModel
from rsl_rl.modules import ActorConfig, ModelConfig

GROUPS = {"actor": ["policy"], "critic": ["policy"]}


def make_ppo(num_envs: int = 3, steps: int = 4, **cfg: object) -> PPO:
    torch.manual_seed(0)
    actor = MLPModel.from_config(2, 1, ActorConfig(hidden_dims=(16,)))
    critic = MLPModel.from_config(2, 1, ModelConfig(hidden_dims=(16,)))
    return PPO(actor, critic, PPOConfig(**cfg), GROUPS, num_envs, steps)  # type: ignore[arg-type]


def linear_value_critic(ppo: PPO) -> None:
    """Make the critic compute V(obs) = obs[0] exactly (identity activation, hand-set weights)."""
    critic = MLPModel.from_config(2, 1, ModelConfig(hidden_dims=(1,), activation="identity"))
    first, last = critic.mlp[0], critic.mlp[2]
    assert isinstance(first, torch.nn.Linear) and isinstance(last, torch.nn.Linear)
    with torch.no_grad():
        first.weight.copy_(torch.tensor([[1.0, 0.0]]))
        first.bias.zero_()
        last.weight.fill_(1.0)
        last.bias.zero_()
    ppo.critic = critic


def obs_td(x: torch.Tensor) -> TensorDict:
    return TensorDict({"policy": x}, batch_size=[x.shape[0]])


@pytest.mark.parametrize("mode", ["final_obs", "current_value"])
def test_timeout_bootstrap(mode: str) -> None:
    gamma = 0.9
    ppo = make_ppo(gamma=gamma, timeout_bootstrap=mode)
    linear_value_critic(ppo)
    obs = obs_td(torch.tensor([[1.0, 0.0], [2.0, 0.0], [3.0, 0.0]]))
    with torch.inference_mode():
        ppo.act(obs)
        # env 0 timed out (final state value 10), env 1 terminated, env 2 continues: its final_obs row holds NaN,
        # which must not leak into its reward. rsl-rl-lib's call: dones of any dtype, time-outs in extras.
        final = obs_td(torch.tensor([[10.0, 0.0], [20.0, 0.0], [float("nan"), 0.0]]))
        ppo.process_env_step(
            obs,
            torch.tensor([1.0, 1.0, 1.0]),
            dones=torch.tensor([1, 1, 0]),
            extras={"final_obs": final, "time_outs": torch.tensor([True, False, False])},
        )
    rewards = ppo.storage.rewards[0]
    v_boot = 10.0 if mode == "final_obs" else 1.0  # V(s_final) vs rsl_rl's V(s_t)
    assert rewards.tolist() == pytest.approx([1.0 + gamma * v_boot, 1.0, 1.0])
    assert ppo.storage.dones[0].tolist() == [True, True, False]


def fill_rollout(ppo: PPO, seed: int = 1) -> None:
    g = torch.Generator().manual_seed(seed)
    s = ppo.storage
    with torch.inference_mode():
        for _ in range(s.num_steps):
            obs = obs_td(torch.randn(s.num_envs, 2, generator=g))
            ppo.act(obs)
            ppo.process_env_step(
                obs, torch.randn(s.num_envs, generator=g), torch.rand(s.num_envs, generator=g) < 0.1, {}
            )
        ppo.compute_returns(obs_td(torch.randn(s.num_envs, 2, generator=g)))


def test_micro_batches_give_the_same_update_as_whole_mini_batches() -> None:
    whole = make_ppo(num_envs=8, steps=6, micro_batch_size=10_000, schedule="fixed")
    micro = make_ppo(num_envs=8, steps=6, micro_batch_size=5, schedule="fixed")
    micro.actor.load_state_dict(whole.actor.state_dict())
    micro.critic.load_state_dict(whole.critic.state_dict())
    for ppo in (whole, micro):
        torch.manual_seed(3)
        fill_rollout(ppo)
        torch.manual_seed(4)
        ppo.update()
    for a, b in zip(
        [*whole.actor.parameters(), *whole.critic.parameters()],
        [*micro.actor.parameters(), *micro.critic.parameters()],
        strict=True,
    ):
        assert torch.allclose(a, b, atol=1e-5)


def test_update_changes_parameters_and_reports_statistics() -> None:
    ppo = make_ppo(num_envs=8, steps=6)
    before = copy.deepcopy(ppo.actor.state_dict())
    fill_rollout(ppo)
    stats = ppo.update()
    assert set(stats) == {"surrogate", "value_function", "entropy", "kl", "clip_fraction", "discarded_steps"}
    assert all(torch.isfinite(v) for v in stats.values())
    assert stats["discarded_steps"].item() == 0
    assert not torch.equal(before["mlp.0.weight"], ppo.actor.state_dict()["mlp.0.weight"])


@pytest.mark.parametrize("optimizer", ["adam", "rmsprop"])
def test_non_finite_gradients_discard_the_step(optimizer: str) -> None:
    ppo = make_ppo(num_envs=8, steps=6, optimizer=optimizer, num_learning_epochs=2, num_mini_batches=3)
    fill_rollout(ppo)
    ppo.storage.returns[0, 0] = float("nan")  # one poisoned sample poisons every gradient that sees it
    before = [p.detach().clone() for p in ppo.critic.parameters()]
    stats = ppo.update()
    after = list(ppo.critic.parameters())
    # The one mini-batch per epoch that holds the sample was discarded; the others still trained the critic.
    assert stats["discarded_steps"].item() == 2
    assert all(torch.isfinite(p).all() for p in after)
    assert any(not torch.equal(b, a) for b, a in zip(before, after, strict=True))


def update_at_kl(ppo: PPO, kl: float, seed: int) -> dict[str, torch.Tensor]:
    """Collect a rollout, then shift the actor's mean by Δ = σ·√(2·kl) before the update, so that the update's
    (single) mini-batch measures KL(π_old ‖ π) = Δ²/(2σ²) = ``kl`` before its step (one action, std σ)."""
    fill_rollout(ppo, seed)
    last = ppo.actor.mlp[-1]
    assert isinstance(last, torch.nn.Linear)
    with torch.no_grad():
        last.bias += ppo.actor.std() * (2.0 * kl) ** 0.5
    return ppo.update()


def test_adaptive_learning_rate_follows_the_kl_of_real_updates() -> None:
    """rsl_rl's rule on real PPO updates: KL > 2·KL* divides the lr by 1.5, KL < KL*/2 multiplies it by 1.5, KL in
    between keeps it; each repeated (second, third) occurrence acts again, and the bounds hold."""
    desired, lo, hi = 0.01, 1e-5, 1e-2
    ppo = make_ppo(
        num_envs=8,
        steps=6,
        learning_rate=1e-3,
        schedule="adaptive",
        desired_kl=desired,
        learning_rate_bounds=(lo, hi),
        num_mini_batches=1,
        num_learning_epochs=1,
    )
    seed = 0

    def step(kl: float) -> tuple[float, float]:
        nonlocal seed
        seed += 1
        before = ppo.learning_rate.item()
        stats = update_at_kl(ppo, kl, seed)
        assert stats["kl"].item() == pytest.approx(kl, rel=1e-3)  # the setup measures what it claims
        assert ppo.optimizer.param_groups[0]["lr"] is ppo.learning_rate  # still the device tensor
        return before, ppo.learning_rate.item()

    for _ in range(3):  # well above 2·KL*: falls by the factor each time
        before, after = step(4.0 * desired)
        assert after == pytest.approx(before / 1.5, rel=1e-6)
    for _ in range(3):  # well below KL*/2: rises by the factor each time
        before, after = step(desired / 4.0)
        assert after == pytest.approx(before * 1.5, rel=1e-6)
    for kl in (0.6 * desired, desired, 1.9 * desired):  # in between: unchanged
        before, after = step(kl)
        assert after == before
    # Bounds: from just above the lower bound, high KL stops at it and stays there; likewise at the upper bound.
    ppo.learning_rate.fill_(1.2 * lo)
    assert [step(4.0 * desired)[1] for _ in range(3)] == pytest.approx([lo] * 3, rel=1e-6)
    ppo.learning_rate.fill_(0.8 * hi)
    assert [step(desired / 4.0)[1] for _ in range(3)] == pytest.approx([hi] * 3, rel=1e-6)


def test_config_errors_name_the_field() -> None:
    with pytest.raises(ValueError, match="optimizer.*allowed"):
        PPOConfig(optimizer="lamb")
    with pytest.raises(ValueError, match="schedule"):
        PPOConfig(schedule="cosine")
    with pytest.raises(ValueError, match="timeout_bootstrap"):
        PPOConfig(timeout_bootstrap="zero")
    with pytest.raises(ValueError, match="num_mini_batches"):
        PPOConfig(num_mini_batches=0)


def test_reward_normalization_scales_env_rewards_before_the_timeout_bootstrap_and_resumes() -> None:
    gamma = 0.9
    ppo = make_ppo(gamma=gamma, reward_normalization=True)
    linear_value_critic(ppo)
    obs = obs_td(torch.tensor([[1.0, 0.0], [2.0, 0.0], [3.0, 0.0]]))
    env_rewards = torch.tensor([1.0, 2.0, 3.0])
    with torch.inference_mode():
        ppo.act(obs)
        final = obs_td(torch.tensor([[10.0, 0.0], [0.0, 0.0], [0.0, 0.0]]))
        ppo.process_env_step(
            obs,
            env_rewards,
            torch.tensor([1, 0, 0]),
            {"final_obs": final, "time_outs": torch.tensor([True, False, False])},
        )
    assert env_rewards.tolist() == [1.0, 2.0, 3.0]  # the caller's (logged) rewards are untouched
    scale = 1.0 / torch.tensor([1.0, 2.0, 3.0]).var(unbiased=False).sqrt()  # σ of the first returns R_0 = r_0
    # The time-out's bootstrap γ·V(s_final) is added unscaled: V is learned in the normalised units.
    expected = [1.0 * scale + gamma * 10.0, 2.0 * scale, 3.0 * scale]
    assert ppo.storage.rewards[0].tolist() == pytest.approx([float(x) for x in expected], rel=1e-5)
    # Exact resume: the statistics and the per-env returns (env 0's restarted at 0) come back.
    state = ppo.state_dict()
    assert state["reward_normalizer"]["returns"].tolist() == [0.0, 2.0, 3.0]
    fresh = make_ppo(gamma=gamma, reward_normalization=True)
    linear_value_critic(fresh)
    fresh.load_state_dict(state)
    assert fresh.reward_normalizer is not None and ppo.reward_normalizer is not None
    for key, value in ppo.reward_normalizer.state_dict().items():
        assert torch.equal(fresh.reward_normalizer.state_dict()[key], value), key
    # Without the option nothing is added to the checkpoint (rsl-rl-lib's layout).
    assert "reward_normalizer" not in make_ppo().state_dict()
