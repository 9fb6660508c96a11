"""SAC's pieces against hand values and reference implementations: n-step targets, the replay ring, REDQ subsets, the
entropy backup, the squash to bounds, the temperature loss and the categorical projection."""

from __future__ import annotations

import math

import pytest
import torch
from tensordict import TensorDict

from rsl_rl.algorithms.losses import (
    categorical_projection,
    n_step_returns,
    sac_actor_loss,
    soft_q_target,
    temperature_loss,
)
from rsl_rl.algorithms.sac import SAC, SACConfig
from rsl_rl.modules.categorical import CategoricalQEnsemble
from rsl_rl.modules.sac_models import (
    BackupTerms,
    QEnsemble,
    SACActorConfig,
    SACCriticConfig,
    SquashedGaussianActor,
    build_critic,
    squashed_sample,
)
from rsl_rl.storage.replay import ReplayStorage

G = 0.9


def test_n_step_returns_hand_values_with_ends_inside_the_window() -> None:
    # Columns: no end; terminated at k=1; truncated at k=0; truncated at k=2; terminated at k=2; truncated at k=0 and
    # terminated at k=1 (the first end decides).
    r = torch.tensor([[1.0, 1.0, 1.0, 1.0, 1.0, 1.0], [2.0, 2.0, 2.0, 2.0, 2.0, 2.0], [4.0, 4.0, 4.0, 4.0, 4.0, 4.0]])
    term = torch.zeros(3, 6, dtype=torch.bool)
    trunc = torch.zeros(3, 6, dtype=torch.bool)
    term[1, 1] = True
    trunc[0, 2] = True
    trunc[2, 3] = True
    term[2, 4] = True
    trunc[0, 5] = True
    term[1, 5] = True
    returns, discount, end, ended = n_step_returns(r, term, trunc, G)
    full = 1 + G * 2 + G * G * 4
    assert returns.tolist() == pytest.approx([full, 1 + G * 2, 1.0, full, full, 1.0])
    assert discount.tolist() == pytest.approx([G**3, 0.0, G, G**3, 0.0, G])
    assert end.tolist() == [2, 1, 0, 2, 2, 0]
    assert ended.tolist() == [False, True, True, True, True, True]


def test_soft_q_target_hand_values_and_termination_ignores_nan_next_values() -> None:
    returns = torch.tensor([1.0, 2.0, 3.0])
    discounts = torch.tensor([0.81, 0.0, 0.9])
    next_q = torch.tensor([[5.0, float("nan"), 2.0], [4.0, float("nan"), 7.0]])
    log_prob = torch.tensor([-1.0, float("nan"), 0.5])
    alpha = torch.tensor(0.2)
    y = soft_q_target(returns, discounts, next_q, log_prob, alpha)
    assert y.tolist() == pytest.approx([1 + 0.81 * (4.0 + 0.2), 2.0, 3 + 0.9 * (2.0 - 0.1)])
    # Entropy term off: α = 0 in the backup.
    y0 = soft_q_target(returns, discounts, next_q, log_prob, torch.tensor(0.0))
    assert y0.tolist() == pytest.approx([1 + 0.81 * 4.0, 2.0, 3 + 0.9 * 2.0])


def _filled_storage(capacity: int, steps: int, n_envs: int = 3) -> tuple[ReplayStorage, dict[int, dict[str, float]]]:
    """A replay whose observation at logical step τ of env e is 100·e + τ, reward τ + e/10, with ends at chosen steps.
    Returns the storage and the full history (logical step → fields) of env 1."""
    storage = ReplayStorage(capacity, n_envs, {"actor": 1}, 1, verbose=False)
    history: dict[int, dict[str, float]] = {}
    for t in range(steps):
        obs = torch.tensor([[100.0 * e + t] for e in range(n_envs)])
        storage.add_observation({"actor": obs})
        storage.add_action(torch.zeros(n_envs, 1))
        rewards = torch.tensor([t + e / 10 for e in range(n_envs)])
        terminated = torch.tensor([t % 7 == 6 for _ in range(n_envs)])
        truncated = torch.tensor([t % 5 == 4 for _ in range(n_envs)])
        final = torch.tensor([[-(100.0 * e + t)] for e in range(n_envs)])  # final obs: the negated step
        storage.add_outcome(rewards, terminated, truncated, {"actor": final})
        history[t] = {"r": t + 0.1, "term": float(t % 7 == 6), "trunc": float(t % 5 == 4 and t % 7 != 6)}
    return storage, history


@pytest.mark.parametrize("steps", [9, 23, 40])  # before, after one and after several wrap-arounds of 8 rows
def test_replay_windows_match_the_logical_history_across_wrap_around(steps: int) -> None:
    capacity, n = 8, 3
    storage, history = _filled_storage(capacity, steps)
    batch = storage.sample(4096, n, G)
    obs = batch["obs"]["actor"].squeeze(-1)
    env = torch.div(obs + 0.5, 100, rounding_mode="floor").long()
    start = (obs - 100 * env).long()
    # Only complete windows that were not overwritten: τ ≥ steps − capacity and τ + n ≤ steps − 1.
    assert int(start.min()) >= max(0, steps - capacity)
    assert int(start.max()) <= steps - 1 - n
    assert len(set(start.tolist())) == storage.num_windows(n)  # every valid start is drawn
    for i in torch.nonzero(env == 1).squeeze(-1)[:200].tolist():
        tau = int(start[i])
        ret, disc, nxt = 0.0, 1.0, 100.0 + tau + n
        for k in range(n):
            h = history[tau + k]
            ret += disc * h["r"]
            disc *= G
            if h["term"]:
                disc, nxt = 0.0, None
                break
            if h["trunc"]:
                nxt = -(100.0 + tau + k)
                break
        assert float(batch["returns"][i]) == pytest.approx(ret, rel=1e-5)
        assert float(batch["discounts"][i]) == pytest.approx(disc, rel=1e-6)
        if nxt is not None:
            assert float(batch["next_obs"]["actor"][i]) == nxt


def test_replay_stores_non_finite_steps_as_terminations_with_zero_reward() -> None:
    storage = ReplayStorage(6, 2, {"actor": 2}, 1, verbose=False)
    for t in range(6):  # a NaN reward at steps 1 and 4 (second and third bad events), a NaN observation at step 3
        obs = torch.ones(2, 2)
        if t == 3:
            obs[0, 1] = float("nan")
        assert torch.isfinite(storage.add_observation({"actor": obs})["actor"]).all()
        storage.add_action(torch.zeros(2, 1))
        reward = torch.ones(2)
        if t in (1, 4):
            reward[1] = float("inf") if t == 1 else float("nan")
        storage.add_outcome(reward, torch.zeros(2, dtype=torch.bool), torch.zeros(2, dtype=torch.bool), None)
    assert torch.isfinite(storage.obs["actor"]).all() and torch.isfinite(storage.rewards).all()
    assert storage.terminated[:, 1].tolist() == [False, True, False, False, True, False]
    assert storage.terminated[:, 0].tolist() == [False, False, False, True, False, False]
    assert storage.rewards[1, 1] == 0 and storage.rewards[4, 1] == 0 and storage.rewards[3, 0] == 0


def test_replay_refuses_an_impossible_size_before_allocating() -> None:
    with pytest.raises(MemoryError, match="replay_capacity"):
        ReplayStorage(10**9, 4096, {"actor": 48, "critic": 60}, 12, verbose=False)


def test_squashed_actor_stays_within_the_bounds_and_its_log_prob_is_the_tanh_change_of_variables() -> None:
    torch.manual_seed(0)
    low, high = torch.tensor([-2.0, 0.0, -0.1]), torch.tensor([2.0, 5.0, 0.3])
    actor = SquashedGaussianActor(4, 3, SACActorConfig(hidden_dims=(16,), init_std=0.3), low, high)
    obs = torch.randn(256, 4) * 1e4  # extreme inputs saturate the tanh
    with torch.no_grad():
        last = actor.mlp[-1]
        assert isinstance(last, torch.nn.Linear)
        last.weight.normal_()  # a non-trivial mean
        action = actor(obs)
        u, log_prob = actor.sample(obs)
    assert (action >= low).all() and (action <= high).all()
    env_u = actor.to_env(u)
    assert (env_u >= low).all() and (env_u <= high).all()
    # A zero-output network acts at the centre with σ = init_std: 0 where the bounds contain 0, else their middle.
    fresh = SquashedGaussianActor(4, 3, SACActorConfig(hidden_dims=(16,), init_std=0.3), low, high)
    with torch.no_grad():
        last = fresh.mlp[-1]
        assert isinstance(last, torch.nn.Linear)
        last.weight.zero_()
        mean, log_std = fresh.distribution(torch.randn(5, 4))
        assert torch.allclose(fresh(torch.randn(5, 4)), torch.tensor([0.0, 2.5, 0.0]))
    # −1 and 1 reach the bounds and the map is monotone in between.
    grid = torch.linspace(-1, 1, 101).unsqueeze(-1).expand(-1, 3)
    mapped = fresh.to_env(grid)
    assert torch.allclose(mapped[0], low) and torch.allclose(mapped[-1], high) and (mapped.diff(dim=0) > 0).all()
    assert torch.allclose(log_std.exp(), torch.full_like(log_std, 0.3), atol=1e-6)
    # log π against torch.distributions' tanh-transformed Normal.
    mean, log_std, noise = torch.randn(64, 3), torch.randn(64, 3) * 0.5, torch.randn(64, 3)
    u, log_prob = squashed_sample(mean, log_std, noise)
    reference = torch.distributions.TransformedDistribution(
        torch.distributions.Normal(mean, log_std.exp()), [torch.distributions.TanhTransform()]
    )
    x = mean + log_std.exp() * noise
    expected = reference.base_dist.log_prob(x).sum(-1) - torch.distributions.TanhTransform().log_abs_det_jacobian(
        x, u
    ).sum(-1)
    assert torch.allclose(log_prob, expected, atol=1e-4)


def test_from_env_inverts_to_env_and_clips_outside_the_bounds() -> None:
    low, high = torch.tensor([-1.0, -6.0, 2.0]), torch.tensor([3.0, 14.0, 4.0])  # centre 0, 0 and the midpoint 3
    actor = SquashedGaussianActor(3, 3, SACActorConfig(hidden_dims=(8,)), low, high)
    u = torch.rand(64, 3) * 2 - 1
    torch.testing.assert_close(actor.from_env(actor.to_env(u)), u)
    outside = torch.tensor([[-5.0, 20.0, 1.0], [7.0, -9.0, 9.0]])
    assert torch.equal(actor.from_env(outside), torch.tensor([[-1.0, 1.0, -1.0], [1.0, -1.0, 1.0]]))


def test_actor_rejects_missing_or_inverted_bounds() -> None:
    cfg = SACActorConfig()
    with pytest.raises(ValueError, match="finite action bounds"):
        SquashedGaussianActor(3, 2, cfg, torch.tensor([-1.0, -math.inf]), torch.tensor([1.0, 1.0]))
    with pytest.raises(ValueError, match="finite action bounds"):
        SquashedGaussianActor(3, 2, cfg, torch.tensor([1.0, -1.0]), torch.tensor([-1.0, 1.0]))
    with pytest.raises(ValueError, match="init_std"):
        SACActorConfig(init_std=100.0)


def test_temperature_loss_hand_value_and_direction() -> None:
    log_alpha = torch.tensor(math.log(0.5), requires_grad=True)
    log_prob = torch.tensor([1.0, 3.0])  # entropy −2 below the target −1: α must grow
    loss = temperature_loss(log_alpha, log_prob, target_entropy=-1.0)
    assert float(loss.detach()) == pytest.approx(-math.log(0.5) * (2.0 - 1.0))
    loss.backward()
    assert log_alpha.grad is not None and float(log_alpha.grad) < 0  # gradient descent increases log α
    log_alpha = torch.tensor(0.0, requires_grad=True)
    temperature_loss(log_alpha, torch.tensor([5.0]), -1.0).backward()  # entropy −5 below −1: α must grow
    assert log_alpha.grad is not None and float(log_alpha.grad) < 0
    log_alpha = torch.tensor(0.0, requires_grad=True)
    temperature_loss(log_alpha, torch.tensor([-5.0]), -1.0).backward()  # entropy 5 above the target: α must shrink
    assert log_alpha.grad is not None and float(log_alpha.grad) > 0


def test_actor_loss_reduces_the_critics_by_min_or_mean() -> None:
    q = torch.tensor([[1.0, 4.0], [3.0, 2.0]])
    log_prob = torch.tensor([0.5, -0.5])
    alpha = torch.tensor(0.1)
    assert float(sac_actor_loss(log_prob, q, alpha, "min")) == pytest.approx(((0.05 - 1) + (-0.05 - 2)) / 2)
    assert float(sac_actor_loss(log_prob, q, alpha, "mean")) == pytest.approx(((0.05 - 2) + (-0.05 - 3)) / 2)


def test_target_uses_the_minimum_over_the_chosen_subset_only() -> None:
    torch.manual_seed(0)
    critic = QEnsemble(3, 2, SACCriticConfig(num_critics=5, hidden_dims=(8,)))
    obs, u = torch.randn(10, 3), torch.rand(10, 2) * 2 - 1
    q = critic(obs, u)
    backup = BackupTerms(torch.zeros(10), torch.ones(10), torch.zeros(10), torch.tensor(0.0))
    members = torch.tensor([1, 3])
    assert torch.allclose(critic.target(obs, u, members, backup), q[[1, 3]].min(0).values)
    assert torch.allclose(critic.target(obs, u, None, backup), q.min(0).values)


def _sac(cfg: SACConfig, critic_cfg: SACCriticConfig | None = None, num_envs: int = 4) -> SAC:
    torch.manual_seed(0)
    actor = SquashedGaussianActor(3, 1, SACActorConfig(hidden_dims=(16,)), torch.tensor([-2.0]), torch.tensor([2.0]))
    critic_cfg = critic_cfg or SACCriticConfig(hidden_dims=(16,))
    critic = build_critic(3, 1, critic_cfg)
    sac = SAC(actor, critic, cfg, {"actor": ["policy"], "critic": ["policy"]}, num_envs)
    for t in range(20):
        obs = TensorDict({"policy": torch.randn(num_envs, 3)}, batch_size=[num_envs])
        with torch.inference_mode():
            sac.act(obs)
            done = torch.full((num_envs,), t % 6 == 5)
            time_outs = done & (t % 12 != 5)  # every other episode end is a termination
            sac.process_env_step(obs, torch.randn(num_envs), done, {"final_obs": obs, "time_outs": time_outs})
    return sac


def test_redq_draws_a_fresh_random_subset_of_m_target_critics_per_update() -> None:
    sac = _sac(SACConfig(batch_size=32, num_updates=40, replay_capacity=32, target_critics=2),
               SACCriticConfig(hidden_dims=(16,), num_critics=5))  # fmt: skip
    seen: list[tuple[int, ...]] = []
    target = sac.critic_target.target

    def spy(next_obs: torch.Tensor, next_u: torch.Tensor, members: torch.Tensor | None, backup: BackupTerms):
        assert members is not None
        seen.append(tuple(sorted(members.tolist())))
        return target(next_obs, next_u, members, backup)

    sac.critic_target.target = spy  # type: ignore[method-assign]
    sac.update()
    assert len(seen) == 40 and all(len(s) == 2 and len(set(s)) == 2 for s in seen)
    assert len(set(seen)) >= 5  # 10 possible pairs: the subsets vary


@pytest.mark.parametrize("entropy_backup", [True, False])
def test_entropy_backup_switch_reaches_the_target(entropy_backup: bool) -> None:
    sac = _sac(
        SACConfig(batch_size=16, num_updates=1, replay_capacity=32, entropy_backup=entropy_backup, init_alpha=0.7)
    )
    alphas: list[float] = []
    target = sac.critic_target.target

    def spy(next_obs: torch.Tensor, next_u: torch.Tensor, members: torch.Tensor | None, backup: BackupTerms):
        alphas.append(float(backup.alpha))
        return target(next_obs, next_u, members, backup)

    sac.critic_target.target = spy  # type: ignore[method-assign]
    sac.update()
    assert alphas == [pytest.approx(0.7 if entropy_backup else 0.0)]


@pytest.mark.parametrize("critic", ["QEnsemble", "CategoricalQEnsemble"])
def test_updates_change_parameters_move_targets_by_polyak_and_tune_alpha(critic: str) -> None:
    sac = _sac(
        SACConfig(batch_size=64, num_updates=4, policy_delay=2, replay_capacity=32, tau=0.25, n_step=3),
        SACCriticConfig(class_name=critic, hidden_dims=(16,), v_min=-10, v_max=10, num_atoms=21),
    )
    actor0 = [p.detach().clone() for p in sac.actor.parameters()]
    target0 = [p.detach().clone() for p in sac.critic_target.parameters()]
    alpha0 = float(sac.alpha)
    stats = sac.update()
    assert float(stats["gradient_steps"]) == 4 and all(torch.isfinite(v).all() for v in stats.values())
    assert sac.num_gradient_steps == 4
    assert any(not torch.equal(a, p) for a, p in zip(actor0, sac.actor.parameters(), strict=True))
    assert any(not torch.equal(a, p) for a, p in zip(target0, sac.critic_target.parameters(), strict=True))
    assert float(sac.alpha) != alpha0
    # After the last update the target moved exactly τ of the way from its previous value to the online critic.
    prev = [p.detach().clone() for p in sac.critic_target.parameters()]
    sac.cfg.num_updates = 1
    sac.num_gradient_steps = 1  # no actor step this time: only the critic and its target move
    sac.update()
    for p_prev, p_target, p_online in zip(prev, sac.critic_target.parameters(), sac.critic.parameters(), strict=True):
        assert torch.allclose(p_target, p_prev + 0.25 * (p_online - p_prev), atol=1e-6)


def test_no_update_before_the_replay_holds_a_window_and_learning_starts() -> None:
    torch.manual_seed(0)
    actor = SquashedGaussianActor(3, 1, SACActorConfig(hidden_dims=(8,)), torch.tensor([-1.0]), torch.tensor([1.0]))
    critic = QEnsemble(3, 1, SACCriticConfig(hidden_dims=(8,)))
    sac = SAC(actor, critic, SACConfig(n_step=3, learning_starts=6, random_steps=2, replay_capacity=16),
              {"actor": ["policy"], "critic": ["policy"]}, 2)  # fmt: skip
    before = [p.detach().clone() for p in sac.critic.parameters()]
    for _ in range(5):
        obs = TensorDict({"policy": torch.randn(2, 3)}, batch_size=[2])
        with torch.inference_mode():
            sac.act(obs)
            sac.process_env_step(obs, torch.ones(2), torch.zeros(2, dtype=torch.bool), {})
        stats = sac.update()
        assert float(stats["gradient_steps"]) == 0
    assert all(torch.equal(a, b) for a, b in zip(before, sac.critic.parameters(), strict=True))


def test_categorical_projection_conserves_mass_and_splits_between_neighbours() -> None:
    support = torch.linspace(-2.0, 2.0, 5)  # spacing 1
    probs = torch.tensor([[0.5, 0.5, 0.0, 0.0, 0.0], [0.2, 0.2, 0.2, 0.2, 0.2]])
    atoms = torch.tensor([[0.25, 1.0, 0.0, 0.0, 0.0], [-9.0, -2.0, 0.5, 2.0, 9.0]])
    out = categorical_projection(probs, atoms, support)
    assert torch.allclose(out.sum(-1), torch.ones(2))
    # 0.25 splits 0.75/0.25 between atoms 0 and 1; 1.0 sits on atom 1.
    assert torch.allclose(out[0], torch.tensor([0.0, 0.0, 0.375, 0.625, 0.0]))
    # −9 and −2 land on −2, 0.5 splits evenly between 0 and 1, 2 and 9 land on 2.
    assert torch.allclose(out[1], torch.tensor([0.4, 0.0, 0.1, 0.1, 0.4]))


def test_categorical_target_of_a_termination_is_a_point_mass_on_the_return() -> None:
    torch.manual_seed(0)
    critic = CategoricalQEnsemble(3, 1, SACCriticConfig(class_name="CategoricalQEnsemble", hidden_dims=(8,),
                                                        num_atoms=11, v_min=-5, v_max=5))  # fmt: skip
    obs = torch.full((2, 3), float("nan"))  # what lies behind a termination must not matter
    backup = BackupTerms(torch.tensor([1.0, 2.5]), torch.zeros(2), torch.full((2,), float("nan")), torch.tensor(0.2))
    target = critic.target(obs, torch.zeros(2, 1), None, backup)
    assert torch.allclose(target[0], torch.nn.functional.one_hot(torch.tensor(6), 11).float())
    assert torch.allclose(target[1, 7:9], torch.tensor([0.5, 0.5]))


def test_timeouts_are_terminations_when_bootstrapping_is_switched_off() -> None:
    on = _sac(SACConfig(batch_size=16, replay_capacity=32))
    off = _sac(SACConfig(batch_size=16, replay_capacity=32, bootstrap_timeouts=False))
    # _sac truncates every 6th step and terminates every 12th: with the switch off every end is a termination.
    assert int(on.storage.truncated.sum()) > 0 and int(off.storage.truncated.sum()) == 0
    assert torch.equal(off.storage.terminated, on.storage.terminated | on.storage.truncated)


@pytest.mark.parametrize("switch", ["use_mixed_precision", "compile"])
def test_bf16_and_compile_switches_give_the_eager_float32_losses(switch: str) -> None:
    """Both switches change how the update runs, not what it computes: the first batch's losses agree."""
    stats = {}
    for name in ("eager", switch):
        cfg = SACConfig(batch_size=64, num_updates=1, replay_capacity=32)
        setattr(cfg, switch, name != "eager")
        sac = _sac(cfg)
        torch.manual_seed(1)
        stats[name] = {k: float(v) for k, v in sac.update().items()}
    # bf16 rounds; compiled code draws its Gaussian noise with its own generator: both agree to a few per cent.
    tolerance = 0.05
    for key in ("Loss/critic", "Loss/actor", "Q/mean"):
        assert stats[switch][key] == pytest.approx(stats["eager"][key], rel=tolerance, abs=tolerance)


def test_a_discarded_step_leaves_finite_statistics_and_all_discarded_is_nan() -> None:
    sac = _sac(SACConfig(batch_size=16, num_updates=3, policy_delay=1, replay_capacity=32))
    batch = sac.storage.sample(16, 1, 0.9)
    batch["returns"][0] = float("nan")  # the second and third bad batch must not poison the sums either
    for _ in range(3):
        stats = sac._update_critic(batch)
        assert float(stats[7]) == 1.0 and torch.isfinite(stats).all()
    actor_before = [p.detach().clone() for p in sac.actor.parameters()]
    critic_before = [p.detach().clone() for p in sac.critic.parameters()]
    with torch.no_grad():
        next(iter(sac.critic.parameters())).fill_(float("nan"))
    stats = sac.update()  # every critic and actor step now has non-finite gradients
    assert float(stats["discarded_steps"]) == 6 and math.isnan(float(stats["Loss/critic"]))
    assert all(torch.equal(a, b) for a, b in zip(actor_before, sac.actor.parameters(), strict=True))
    assert all(torch.equal(a, b) for a, b in list(zip(critic_before, sac.critic.parameters(), strict=True))[1:])
