"""rsl-rl-lib's rollout-storage interface on our RolloutStorage: ``add_transition`` writes what our PPO writes, the
generators yield rsl-rl-lib's batches (every sample once per epoch, padded trajectories that unpad to the rollout,
episode-start hidden states), and both constructor forms work."""

from __future__ import annotations

import pytest
import torch
from tensordict import TensorDict

from rsl_rl.algorithms import PPO, PPOConfig
from rsl_rl.algorithms.recurrent_ppo import RecurrentPPO
from rsl_rl.models import MLPModel, build_model
from rsl_rl.models.rnn_model import model_sequence
from rsl_rl.modules import ActorConfig, ModelConfig, RNNConfig
from rsl_rl.storage import RecurrentRolloutStorage, RolloutStorage
from rsl_rl.utils import unpad_trajectories

Transition = RolloutStorage.Transition


def td(**groups: torch.Tensor) -> TensorDict:
    return TensorDict(groups, batch_size=[next(iter(groups.values())).shape[0]])


def coded_rollout(training_type: str, n: int, t: int, dones: torch.Tensor | None = None) -> RolloutStorage:
    """An rsl-rl-lib-form storage whose every per-sample field holds the sample's code ``step·N + env``."""
    storage = RolloutStorage(
        training_type, n, t, td(policy=torch.zeros(n, 3), step=torch.zeros(n, dtype=torch.long)), [2]
    )
    for step in range(t):
        code = torch.arange(n, dtype=torch.float32) + step * n
        pair = code.unsqueeze(-1).expand(n, 2)
        transition = Transition(
            observations=td(policy=code.unsqueeze(-1).expand(n, 3), step=torch.full((n,), step)),
            actions=pair,
            rewards=code,
            dones=torch.zeros(n, dtype=torch.long) if dones is None else dones[step].long(),
        )
        if training_type == "rl":
            transition.values = code.unsqueeze(-1)
            transition.actions_log_prob = code
            transition.distribution_params = (pair, pair + 0.5)
            layers = code.view(1, n, 1).expand(2, n, 4)
            transition.hidden_states = (layers, (layers, -layers))  # a GRU actor, an LSTM critic
        else:
            transition.privileged_actions = -pair
        storage.add_transition(transition)
    if training_type == "rl":
        storage.returns = storage.values + 0.0  # rsl-rl-lib's compute_returns rebinds these attributes
        storage.advantages = storage.returns - 0.0
    return storage


def test_add_transition_writes_what_our_ppo_writes() -> None:
    n, t = 5, 6
    torch.manual_seed(0)
    actor = MLPModel.from_config(2, 1, ActorConfig(hidden_dims=(16,)))
    critic = MLPModel.from_config(2, 1, ModelConfig(hidden_dims=(16,)))
    ppo = PPO(actor, critic, PPOConfig(), {"actor": ["policy"], "critic": ["policy"]}, n, t)
    first = td(policy=torch.zeros(n, 2))
    ours = RolloutStorage(t, n, {"actor": 2}, 1, "cpu", shared_obs={"critic": "actor"})
    lib = RolloutStorage("rl", n, t, first, [1])
    g = torch.Generator().manual_seed(1)
    with torch.inference_mode():
        for _ in range(t):
            obs = td(policy=torch.randn(n, 2, generator=g))
            actions = ppo.act(obs)
            rewards, dones = torch.randn(n, generator=g), (torch.rand(n, generator=g) < 0.3).long()
            ppo.process_env_step(obs, rewards, dones, {})
            # The same step as rsl-rl-lib's PPO records it, from the same models.
            mean, std = actor(obs["policy"]), actor.std().expand(n, 1)
            for storage, observations in ((ours, td(actor=obs["policy"])), (lib, obs)):
                storage.add_transition(
                    Transition(
                        observations=observations,
                        actions=actions,
                        rewards=rewards,
                        dones=dones,
                        values=critic(obs["policy"]),
                        actions_log_prob=torch.distributions.Normal(mean, std).log_prob(actions).sum(-1),
                        distribution_params=(mean, std),
                    )
                )
    s = ppo.storage
    for name in ("actions", "action_mean", "action_std", "log_prob", "values", "rewards", "dones"):
        torch.testing.assert_close(getattr(ours, name), getattr(s, name), msg=name)
    torch.testing.assert_close(ours.obs["actor"], s.obs["actor"])
    assert ours.obs["critic"] is ours.obs["actor"] and ours.step == s.step == t
    # rsl-rl-lib's layout: [T, N, 1] scalars, uint8 dones, the env's groups.
    torch.testing.assert_close(lib.observations["policy"], s.obs["actor"])
    torch.testing.assert_close(lib.actions, s.actions)
    for lib_name, name in (("rewards", "rewards"), ("values", "values"), ("actions_log_prob", "log_prob")):
        assert getattr(lib, lib_name).shape == (t, n, 1)
        torch.testing.assert_close(getattr(lib, lib_name)[..., 0], getattr(s, name), msg=lib_name)
    assert lib.dones.dtype == torch.uint8 and torch.equal(lib.dones[..., 0].bool(), s.dones)
    assert lib.distribution_params is not None and s.distribution_params is not None
    for lib_param, param in zip(lib.distribution_params, s.distribution_params, strict=True):
        torch.testing.assert_close(lib_param, param)
    # Our storage answers to rsl-rl-lib's names with views of its own buffers: no copy, no memory.
    assert s.training_type == "rl" and s.num_transitions_per_env == t and s.actions_shape == (1,)
    assert s.actions_log_prob.data_ptr() == s.log_prob.data_ptr() and s.actions_log_prob.shape == (t, n, 1)
    assert s.distribution_params[0] is s.action_mean and s.distribution_params[1] is s.action_std
    assert s.observations["actor"].data_ptr() == s.obs["actor"].data_ptr()
    assert s.privileged_actions is None and s.saved_hidden_state_a is None and s.saved_hidden_state_c is None
    # ... and its feed-forward generator serves rsl-rl-lib's batches of our PPO's rollout.
    ppo.compute_returns(td(policy=torch.randn(n, 2, generator=g)))
    table, col = s.pack(["actor", "values", "returns", "advantages", "log_prob", "action_mean"])
    torch.manual_seed(3)
    batches = list(s.mini_batch_generator(2, 2))
    torch.manual_seed(3)
    for batch, idx in zip(batches, s.mini_batches(2, 2), strict=True):
        rows = table[idx]
        assert batch.observations is not None and batch.values is not None and batch.old_distribution_params
        torch.testing.assert_close(batch.observations["actor"], rows[:, col["actor"]])
        for name, value in (
            ("values", batch.values),
            ("returns", batch.returns),
            ("log_prob", batch.old_actions_log_prob),
        ):
            torch.testing.assert_close(value, rows[:, col[name]], msg=name)
        torch.testing.assert_close(batch.advantages, rows[:, col["advantages"]])
        torch.testing.assert_close(batch.old_distribution_params[0], rows[:, col["action_mean"]])


@pytest.mark.parametrize("num_mini_batches", [3, 4])
def test_mini_batch_generator_yields_every_sample_once_per_epoch(num_mini_batches: int) -> None:
    n, t, epochs = 6, 5, 4
    storage = coded_rollout("rl", n, t)
    torch.manual_seed(0)
    batches = list(storage.mini_batch_generator(num_mini_batches, epochs))
    torch.manual_seed(0)
    draws = storage.mini_batches(num_mini_batches, epochs)  # the same draws our PPO's update makes
    assert len(batches) == num_mini_batches * epochs
    size = n * t // num_mini_batches
    for epoch in range(epochs):
        seen = []
        for batch, idx in zip(
            batches[epoch * num_mini_batches : (epoch + 1) * num_mini_batches],
            draws[epoch * num_mini_batches : (epoch + 1) * num_mini_batches],
            strict=True,
        ):
            assert batch.observations is not None and batch.actions is not None and batch.old_distribution_params
            assert batch.observations.batch_size == torch.Size([size])
            code = batch.observations["policy"][:, 0]
            assert torch.equal(code, idx.float()) and torch.equal(batch.observations["step"], idx // n)
            assert batch.actions.shape == (size, 2) and torch.equal(batch.actions[:, 0], code)
            for field in (batch.values, batch.returns, batch.advantages, batch.old_actions_log_prob):
                assert field is not None and field.shape == (size, 1) and torch.equal(field[:, 0], code)
            mean, std = batch.old_distribution_params
            assert torch.equal(mean[:, 0], code) and torch.equal(std[:, 0], code + 0.5)
            assert batch.hidden_states == (None, None) and batch.masks is None
            seen.append(code)
        codes = torch.cat(seen).long()
        assert codes.unique().numel() == codes.numel() == num_mini_batches * size  # each sample at most once
    with pytest.raises(ValueError, match="'distillation'"):
        next(storage.generator())


def test_recurrent_generator_pads_whole_episodes_with_their_start_states() -> None:
    n, t, epochs = 4, 7, 3
    dones = torch.zeros(t, n, dtype=torch.bool)
    dones[2, 0] = dones[5, 0] = dones[0, 2] = dones[6, 3] = dones[3, 3] = True
    storage = coded_rollout("rl", n, t, dones)
    torch.manual_seed(0)
    batches = list(storage.recurrent_mini_batch_generator(2, epochs))
    torch.manual_seed(0)
    draws = storage.env_mini_batches(2, epochs)
    assert len(batches) == 2 * epochs
    for epoch in range(epochs):
        envs = torch.cat([b.actions[0, :, 0] for b in batches[2 * epoch : 2 * epoch + 2] if b.actions is not None])
        assert sorted(envs.long().tolist()) == list(range(n))  # every env once per epoch
    for batch, envs in zip(batches, draws, strict=True):
        assert batch.observations is not None and batch.masks is not None and batch.actions is not None
        assert torch.equal(batch.actions[0, :, 0].long(), envs)
        assert batch.values is not None and batch.values.shape == (t, envs.numel(), 1)
        # The padded episodes unpad to the rollout of these envs, in the order of the other fields.
        unpadded = unpad_trajectories(batch.observations, batch.masks)
        assert isinstance(unpadded, TensorDict)
        assert torch.equal(unpadded["policy"], storage.observations["policy"][:, envs])
        assert torch.equal(unpadded["policy"][..., 0], batch.actions[..., 0])
        # Each episode's hidden state is the one recorded at its first step (its code), which is an episode start.
        first = batch.observations["policy"][0, :, 0]
        step, env = (first // n).long(), (first % n).long()
        assert bool(((step == 0) | dones[(step - 1).clamp(min=0), env]).all())
        actor_h, critic_h = batch.hidden_states
        assert isinstance(actor_h, torch.Tensor) and isinstance(critic_h, tuple)
        assert actor_h.shape == (2, first.numel(), 4) and torch.equal(actor_h[0, :, 0], first)
        assert torch.equal(critic_h[0][1, :, 3], first) and torch.equal(critic_h[1][0, :, 0], -first)
        assert int(batch.masks.sum()) == t * envs.numel()


def test_recurrent_generator_rebuilds_our_start_states_from_hidden0() -> None:
    """Our RecurrentPPO stores the rollout's start state only: re-running each padded episode from the start state the
    generator gives reproduces the means and values recorded while acting (zeros after a done, hidden0 before)."""
    n, t = 6, 9
    torch.manual_seed(0)
    actor = build_model(2, 1, RNNConfig(rnn_type="gru", rnn_hidden_dim=8, hidden_dims=(8,), rnn_num_layers=2))
    critic = build_model(2, 1, RNNConfig(rnn_type="lstm", rnn_hidden_dim=8, hidden_dims=(8,)), actor=False)
    alg = RecurrentPPO(actor, critic, PPOConfig(), {"actor": ["policy"], "critic": ["policy"]}, n, t)
    g = torch.Generator().manual_seed(1)
    s = alg.storage
    for _ in range(2):  # the second rollout starts from a carried, non-zero state
        s.clear()
        with torch.inference_mode():
            for _ in range(t):
                obs = td(policy=torch.randn(n, 2, generator=g))
                alg.act(obs)
                alg.process_env_step(obs, torch.randn(n, generator=g), torch.rand(n, generator=g) < 0.2, {})
    assert bool(s.dones[:-1].any()) and float(s.hidden0["actor"][0].abs().sum()) > 0.0
    with torch.inference_mode():
        alg.compute_returns(td(policy=torch.randn(n, 2, generator=g)))
    for batch in s.recurrent_mini_batch_generator(3, 2):
        assert batch.observations is not None and batch.masks is not None and batch.old_distribution_params
        actor_h, critic_h = batch.hidden_states
        assert isinstance(actor_h, torch.Tensor) and isinstance(critic_h, tuple)
        no_dones = torch.zeros(batch.masks.shape, dtype=torch.bool)  # a padded episode holds no episode end
        with torch.no_grad():
            mean, _ = model_sequence(actor, batch.observations["actor"], (actor_h,), no_dones)
            values, _ = model_sequence(critic, batch.observations["critic"], critic_h, no_dones)
        torch.testing.assert_close(unpad_trajectories(mean, batch.masks), batch.old_distribution_params[0])
        torch.testing.assert_close(unpad_trajectories(values, batch.masks), batch.values)


def test_generator_for_distillation() -> None:
    n, t = 3, 4
    storage = coded_rollout("distillation", n, t)
    assert storage.privileged_actions is not None and not hasattr(storage, "values")
    batches = list(storage.generator())
    assert len(batches) == t
    for step, batch in enumerate(batches):
        assert batch.observations is not None and batch.privileged_actions is not None and batch.dones is not None
        code = torch.arange(n, dtype=torch.float32) + step * n
        assert torch.equal(batch.observations["policy"][:, 0], code)
        assert torch.equal(batch.privileged_actions[:, 0], -code)
        assert batch.dones.shape == (n, 1) and batch.dones.dtype == torch.uint8
    with pytest.raises(ValueError, match="'rl'"):
        next(storage.mini_batch_generator(1))
    # Ours, as our Distillation builds and writes it: the teacher's mean is the privileged action.
    ours = RecurrentRolloutStorage(t, n, {"student": 3}, 2, "cpu")
    assert ours.training_type == "distillation" and ours.privileged_actions is ours.action_mean
    for step in range(t):
        ours.obs["student"][step].fill_(step)
        ours.action_mean[step].fill_(-step)
        ours.dones[step].copy_(torch.tensor([step == 1, False, True]))
        ours.step += 1
    for step, batch in enumerate(ours.generator()):
        assert batch.observations is not None and batch.privileged_actions is not None and batch.dones is not None
        assert torch.equal(batch.observations["student"], torch.full((n, 3), float(step)))
        assert torch.equal(batch.privileged_actions, torch.full((n, 2), -float(step)))
        assert batch.dones.dtype == torch.uint8 and batch.dones[:, 0].tolist() == [int(step == 1), 0, 1]


def test_rsl_rl_lib_constructor_form() -> None:
    obs = td(policy=torch.zeros(4, 3), image=torch.zeros(4, 2, 5, 5, dtype=torch.uint8))
    storage = RolloutStorage("rl", 4, 6, obs, [2])  # rsl-rl-lib's PPO.construct_algorithm call
    same = RecurrentRolloutStorage(
        training_type="rl", num_envs=4, num_transitions_per_env=6, obs=obs, actions_shape=(2,), device="cpu"
    )
    for s in (storage, same):
        assert s.training_type == "rl" and s.num_transitions_per_env == s.num_steps == 6 and s.num_envs == 4
        assert s.actions_shape == (2,) and s.device == torch.device("cpu") and s.step == 0
        assert s.observations.batch_size == torch.Size([6, 4])
        assert s.observations["image"].shape == (6, 4, 2, 5, 5) and s.observations["image"].dtype == torch.uint8
        assert s.actions.shape == (6, 4, 2)
        for name in ("rewards", "values", "returns", "advantages", "actions_log_prob"):
            assert getattr(s, name).shape == (6, 4, 1), name
        assert s.dones.dtype == torch.uint8 and s.dones.shape == (6, 4, 1)
        assert s.distribution_params is None and s.privileged_actions is None  # shaped by the first transition
        assert s.saved_hidden_state_a is None and s.saved_hidden_state_c is None
    assert storage.obs["policy"] is storage.observations["policy"]
    with pytest.raises(ValueError, match="training_type"):
        RolloutStorage("imitation", 4, 6, obs, [2])
    with pytest.raises(ValueError, match="training_type"):
        RolloutStorage(6, 4, {"actor": 3}, 2, "cpu", training_type="imitation")
    full = coded_rollout("distillation", 2, 2)
    with pytest.raises(OverflowError):
        full.add_transition(Transition())
    full.clear()
    with pytest.raises(KeyError, match="policy"):
        full.add_transition(Transition(observations=td(other=torch.zeros(2, 3))))
    # Our form names its training type when asked.
    assert RolloutStorage(6, 4, {"student": 3}, 2, "cpu", training_type="rl").training_type == "rl"
