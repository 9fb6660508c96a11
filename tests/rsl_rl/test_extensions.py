"""rsl-rl-lib 5.5.1's extensions: random network distillation and symmetry augmentation / mirror loss.

Behaviour against hand values: the bonus falls where the predictor was trained and stays high elsewhere, the weight
schedules and the reward normalisation follow rsl-rl-lib's formulas, the target never moves, checkpoints round-trip
under rsl-rl-lib's keys; the mirror function is called as rsl-rl-lib calls it and the mirror loss vanishes exactly for
an equivariant policy.
"""

from __future__ import annotations

import sys
import textwrap
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
import torch
from tensordict import TensorDict, TensorDictBase

from rsl_rl.extensions import (
    GroupLayout,
    RandomNetworkDistillation,
    Symmetry,
    resolve_rnd_config,
    resolve_symmetry_config,
)
from rsl_rl.modules import EmpiricalDiscountedVariationNormalization, EmpiricalNormalization

OBS_GROUPS = {"actor": ["policy"], "critic": ["policy", "privileged"], "rnd_state": ["policy", "privileged"]}


def make_rnd(**kwargs: Any) -> RandomNetworkDistillation:
    cfg: dict[str, Any] = {
        "num_states": 4,
        "obs_groups": {"rnd_state": ["state"]},
        "num_outputs": 8,
        "predictor_hidden_dims": [32, 32],
        "target_hidden_dims": [32, 32],
        "weight": 1.0,
    }
    cfg.update(kwargs)
    return RandomNetworkDistillation(**cfg)


def states(x: torch.Tensor) -> TensorDict:
    return TensorDict({"state": x}, batch_size=[x.shape[0]])


def raw_error(rnd: RandomNetworkDistillation, x: torch.Tensor) -> torch.Tensor:
    """‖f̂(s) − f(s)‖₂ computed here, without the module's normalisers or weight."""
    with torch.no_grad():
        return torch.linalg.vector_norm(rnd.predictor(x) - rnd.target(x), dim=-1)


# --- random network distillation --------------------------------------------------------------------------------------


def test_intrinsic_reward_falls_on_trained_states_and_stays_high_on_novel_ones() -> None:
    torch.manual_seed(0)
    rnd = make_rnd()
    familiar = lambda n: torch.randn(n, 4)  # noqa: E731
    novel = lambda n: torch.randn(n, 4) + torch.tensor([6.0, -6.0, 6.0, -6.0])  # noqa: E731
    probe_familiar, probe_novel = familiar(512), novel(512)
    before_familiar = rnd.get_intrinsic_reward(states(probe_familiar)).mean()
    for _ in range(400):
        loss = rnd.compute_loss(states(familiar(256)))
        rnd.optimizer.zero_grad()
        loss.backward()
        rnd.optimizer.step()
    after_familiar = rnd.get_intrinsic_reward(states(probe_familiar)).mean()
    after_novel = rnd.get_intrinsic_reward(states(probe_novel)).mean()
    # Seeds 0-3 give a fall to 0.04-0.05 of the untrained bonus and a novel/familiar ratio of 18-22.
    assert after_familiar < 0.1 * before_familiar, (before_familiar, after_familiar)
    assert after_novel > 8.0 * after_familiar, (after_familiar, after_novel)


def test_intrinsic_reward_is_weight_times_embedding_distance_and_takes_flat_states() -> None:
    torch.manual_seed(1)
    rnd = make_rnd(weight=0.25)
    x = torch.randn(6, 4)
    reward = rnd.get_intrinsic_reward(states(x))
    torch.testing.assert_close(reward, 0.25 * raw_error(rnd, x))
    torch.testing.assert_close(rnd.get_intrinsic_reward(x), reward)  # the concatenated state, as our storage holds it
    assert not reward.requires_grad
    # The loss is the MSE of the embeddings: mean over samples and outputs of the squared difference.
    with torch.no_grad():
        expected = (rnd.predictor(x) - rnd.target(x)).pow(2).mean()
    torch.testing.assert_close(rnd.compute_loss(states(x)).detach(), expected)


def test_rnd_state_concatenates_the_rnd_state_groups_in_order() -> None:
    rnd = make_rnd(num_states=5, obs_groups={"rnd_state": ["b", "a"]})
    obs = TensorDict({"a": torch.zeros(2, 2), "b": torch.ones(2, 3), "c": torch.full((2, 1), 7.0)}, batch_size=[2])
    torch.testing.assert_close(rnd.get_rnd_state(obs), torch.tensor([[1.0, 1.0, 1.0, 0.0, 0.0]] * 2))


@pytest.mark.parametrize(
    ("schedule", "expected"),
    [
        (None, {1: 0.5, 2: 0.5, 10: 0.5}),
        ({"mode": "constant"}, {1: 0.5, 7: 0.5}),
        # Step: w₀ before final_step, final_value from it on.
        ({"mode": "step", "final_step": 3, "final_value": 0.1}, {1: 0.5, 2: 0.5, 3: 0.1, 9: 0.1}),
        # Linear from w₀ = 0.5 at step 2 to 2.5 at step 6: 0.5 + 2.0·(k − 2)/4.
        (
            {"mode": "linear", "initial_step": 2, "final_step": 6, "final_value": 2.5},
            {1: 0.5, 2: 0.5, 3: 1.0, 4: 1.5, 5: 2.0, 6: 2.5, 9: 2.5},
        ),
    ],
)
def test_weight_schedule_at_hand_chosen_steps(schedule: dict[str, Any] | None, expected: dict[int, float]) -> None:
    torch.manual_seed(2)
    rnd = make_rnd(weight=0.5, weight_schedule=schedule)
    x = torch.randn(3, 4)
    error = raw_error(rnd, x)
    for step in range(1, max(expected) + 1):
        reward = rnd.get_intrinsic_reward(states(x))
        assert rnd.update_counter == step
        if step in expected:
            assert rnd.weight == pytest.approx(expected[step]), step
            torch.testing.assert_close(reward, expected[step] * error)


def test_weight_schedule_is_checked_and_a_dropped_mode_is_inferred() -> None:
    with pytest.raises(ValueError, match="allowed"):
        make_rnd(weight_schedule={"mode": "cosine"})
    with pytest.raises(ValueError, match="final_value"):
        make_rnd(weight_schedule={"mode": "step", "final_step": 3})
    # A dataclass config whose `mode` is a ClassVar loses it in asdict(): the keys say which schedule it is.
    rnd = make_rnd(weight=1.0, weight_schedule={"initial_step": 0, "final_step": 4, "final_value": 0.0})
    assert rnd.weight_scheduler_params["mode"] == "linear"
    for _ in range(2):
        rnd.get_intrinsic_reward(states(torch.zeros(1, 4)))
    assert rnd.weight == pytest.approx(0.5)


def test_target_network_never_changes() -> None:
    torch.manual_seed(3)
    rnd = make_rnd(state_normalization=True, reward_normalization=True)
    before = {k: v.clone() for k, v in rnd.target.state_dict().items()}
    rnd.train()
    assert not rnd.target.training
    for _ in range(20):
        x = torch.randn(64, 4) * 3.0
        rnd.get_intrinsic_reward(states(x))
        loss = rnd.compute_loss(states(x))
        rnd.optimizer.zero_grad()
        loss.backward()
        rnd.optimizer.step()
        rnd.update_normalization(states(x))
    for name, value in rnd.target.state_dict().items():
        assert torch.equal(value, before[name]), name
    assert all(p.grad is None and not p.requires_grad for p in rnd.target.parameters())
    assert all(p.grad is not None for p in rnd.predictor.parameters())
    optimised = {id(p) for group in rnd.optimizer.param_groups for p in group["params"]}
    assert optimised == {id(p) for p in rnd.predictor.parameters()}


def test_state_dict_round_trip_under_rsl_rl_lib_keys() -> None:
    torch.manual_seed(4)
    cfg = {"state_normalization": True, "reward_normalization": True, "predictor_hidden_dims": [-1, 16]}
    rnd = make_rnd(**cfg)
    for _ in range(5):
        x = torch.randn(32, 4) + 2.0
        rnd.update_normalization(states(x))
        rnd.get_intrinsic_reward(states(x))
        loss = rnd.compute_loss(states(x))
        rnd.optimizer.zero_grad()
        loss.backward()
        rnd.optimizer.step()
    state = rnd.state_dict()
    # rsl-rl-lib's names and shapes, so its checkpoints' "rnd_state_dict" loads here and ours there.
    assert list(state) == [
        *(f"state_normalizer.{b}" for b in ("_mean", "_var", "_std", "count")),
        *(f"reward_normalizer.emp_norm.{b}" for b in ("_mean", "_var", "_std", "count")),
        *(f"predictor.{i}.{p}" for i in (0, 2, 4) for p in ("weight", "bias")),
        *(f"target.{i}.{p}" for i in (0, 2, 4) for p in ("weight", "bias")),
    ]
    assert state["predictor.0.weight"].shape == (4, 4)  # hidden width -1 = the state width
    assert state["state_normalizer._mean"].shape == (1, 4) and state["reward_normalizer.emp_norm._std"].shape == (1,)

    torch.manual_seed(5)
    copy = make_rnd(**cfg)
    copy.load_state_dict(state)
    copy.optimizer.load_state_dict(rnd.optimizer.state_dict())
    rnd.eval()
    copy.eval()
    x = torch.randn(16, 4)
    torch.testing.assert_close(copy.get_intrinsic_reward(states(x)), rnd.get_intrinsic_reward(states(x)))
    torch.testing.assert_close(copy.compute_loss(states(x)), rnd.compute_loss(states(x)))


def test_reward_normalisation_divides_by_the_std_of_the_discounted_bonus_sum() -> None:
    torch.manual_seed(6)
    rnd = make_rnd(reward_normalization=True, weight=2.0)
    x1, x2 = torch.randn(5, 4), torch.randn(5, 4)
    e1, e2 = raw_error(rnd, x1), raw_error(rnd, x2)
    # Step 1: R̄ = e1, σ = std(e1) (population); step 2: R̄ = 0.99·e1 + e2, σ = std of all R̄ seen so far.
    sums1, sums2 = e1, 0.99 * e1 + e2
    torch.testing.assert_close(rnd.get_intrinsic_reward(states(x1)), 2.0 * e1 / sums1.std(unbiased=False))
    pooled = torch.cat([sums1, sums2]).std(unbiased=False)
    torch.testing.assert_close(rnd.get_intrinsic_reward(states(x2)), 2.0 * e2 / pooled)
    # Evaluation mode divides by the current σ and learns nothing.
    rnd.eval()
    torch.testing.assert_close(rnd.get_intrinsic_reward(states(x1)), 2.0 * e1 / pooled)
    torch.testing.assert_close(rnd.get_intrinsic_reward(states(x1)), 2.0 * e1 / pooled)


def test_reward_normalisation_leaves_the_bonus_unscaled_while_its_std_is_zero() -> None:
    torch.manual_seed(7)
    rnd = make_rnd(reward_normalization=True)
    x = torch.randn(1, 4)  # one env: the variance of one sample is 0
    torch.testing.assert_close(rnd.get_intrinsic_reward(states(x)), raw_error(rnd, x))


def test_state_normalisation_learns_in_training_mode_until_its_sample_limit() -> None:
    torch.manual_seed(8)
    rnd = make_rnd(state_normalization=True)
    data = torch.randn(200, 4) * torch.tensor([1.0, 2.0, 3.0, 4.0]) + 5.0
    rnd.update_normalization(states(data[:80]))
    rnd.update_normalization(states(data[80:]))
    norm = rnd.state_normalizer
    var, mean = torch.var_mean(data, dim=0, unbiased=False)
    torch.testing.assert_close(norm.get_buffer("_mean").squeeze(0), mean)
    torch.testing.assert_close(norm.get_buffer("_std").squeeze(0), var.sqrt())
    # The bonus is computed on (s − μ) / (σ + 1e-2).
    x = torch.randn(3, 4)
    expected = raw_error(rnd, (x - mean) / (var.sqrt() + 1e-2))
    torch.testing.assert_close(rnd.get_intrinsic_reward(states(x)), expected)

    rnd.eval()
    rnd.update_normalization(states(data * 10.0))
    torch.testing.assert_close(norm.get_buffer("_mean").squeeze(0), mean)
    rnd.train()
    assert isinstance(norm, EmpiricalNormalization) and norm.until == 10**8  # rsl-rl-lib's limit
    norm.until = 200  # 200 samples are already in
    rnd.update_normalization(states(data * 10.0))
    torch.testing.assert_close(norm.get_buffer("_mean").squeeze(0), mean)
    assert int(norm.get_buffer("count")) == 200


def test_reward_normaliser_stops_learning_at_its_sample_limit() -> None:
    torch.manual_seed(9)
    rnd = make_rnd(reward_normalization=True)
    assert isinstance(rnd.reward_normalizer, EmpiricalDiscountedVariationNormalization)
    moments = rnd.reward_normalizer.emp_norm
    assert moments.until == 10**8  # rsl-rl-lib's limit
    moments.until = 8
    x = torch.randn(8, 4)
    rnd.get_intrinsic_reward(states(x))
    std = moments.get_buffer("_std").clone()
    rnd.get_intrinsic_reward(states(torch.randn(8, 4) * 5.0))
    assert torch.equal(moments.get_buffer("_std"), std)
    assert int(moments.get_buffer("count")) == 8


def test_rollout_under_inference_mode_then_update_outside_it() -> None:
    """The runner's pattern: bonuses under ``torch.inference_mode``, loss and normaliser updates after it."""
    torch.manual_seed(13)
    rnd = make_rnd(state_normalization=True, reward_normalization=True)
    for _ in range(2):
        rollout = []
        with torch.inference_mode():
            for _ in range(3):
                x = torch.randn(8, 4)
                assert rnd.get_intrinsic_reward(states(x)).shape == (8,)
                rollout.append(x)
        batch = states(torch.cat(rollout))
        loss = rnd.compute_loss(batch)
        rnd.optimizer.zero_grad()
        loss.backward()
        rnd.optimizer.step()
        rnd.update_normalization(batch)
    assert int(rnd.state_normalizer.get_buffer("count")) == 48
    assert int(rnd.reward_normalizer.get_submodule("emp_norm").get_buffer("count")) == 48


def test_forward_is_not_a_way_to_use_rnd() -> None:
    with pytest.raises(RuntimeError, match="get_intrinsic_reward"):
        make_rnd()(torch.zeros(1, 4))


def test_resolve_rnd_config_fills_the_state_width_and_scales_the_weight_by_step_dt() -> None:
    obs = TensorDict({"policy": torch.zeros(3, 5), "privileged": torch.zeros(3, 2)}, batch_size=[3])
    env = SimpleNamespace(unwrapped=SimpleNamespace(step_dt=0.02))
    # The dict Isaac Lab's RslRlRndCfg.to_dict() gives.
    rnd_cfg = {
        "weight": 10.0,
        "weight_schedule": {"mode": "step", "final_step": 4, "final_value": 0.0},
        "reward_normalization": True,
        "state_normalization": True,
        "learning_rate": 1e-3,
        "num_outputs": 1,
        "predictor_hidden_dims": [-1],
        "target_hidden_dims": [-1],
    }
    alg_cfg = {"class_name": "PPO", "gamma": 0.99, "rnd_cfg": rnd_cfg}
    resolved = resolve_rnd_config(alg_cfg, obs, OBS_GROUPS, env)
    out = resolved["rnd_cfg"]
    assert out["num_states"] == 7 and out["obs_groups"] is OBS_GROUPS
    assert out["weight"] == pytest.approx(0.2)
    assert resolved["gamma"] == 0.99
    assert rnd_cfg["weight"] == 10.0 and "num_states" not in rnd_cfg  # the caller's dict is left alone
    rnd = RandomNetworkDistillation(device="cpu", **out)  # how rsl-rl-lib's PPO builds it
    assert rnd.initial_weight == pytest.approx(0.2)
    reward = rnd.get_intrinsic_reward(TensorDict({"policy": torch.randn(3, 5), "privileged": torch.randn(3, 2)}, [3]))
    assert reward.shape == (3,)

    assert resolve_rnd_config({"rnd_cfg": None}, obs, OBS_GROUPS, env)["rnd_cfg"] is None
    assert resolve_rnd_config({}, obs, OBS_GROUPS, env)["rnd_cfg"] is None
    # An adapter that does not know the step (reports 0) is looked through to the env it wraps.
    adapter = SimpleNamespace(step_dt=0.0, env=SimpleNamespace(unwrapped=SimpleNamespace(step_dt=0.005)))
    assert resolve_rnd_config(alg_cfg, obs, OBS_GROUPS, adapter)["rnd_cfg"]["weight"] == pytest.approx(0.05)
    assert resolve_rnd_config(alg_cfg, obs, OBS_GROUPS, SimpleNamespace(step_dt=0.1))["rnd_cfg"]["weight"] == 1.0


def test_resolve_rnd_config_rejects_what_rnd_cannot_read() -> None:
    env = SimpleNamespace(unwrapped=SimpleNamespace(step_dt=0.02))
    image = TensorDict({"policy": torch.zeros(3, 5), "privileged": torch.zeros(3, 2, 2)}, batch_size=[3])
    with pytest.raises(ValueError, match="privileged"):
        resolve_rnd_config({"rnd_cfg": {"weight": 1.0}}, image, OBS_GROUPS, env)
    flat = TensorDict({"policy": torch.zeros(3, 5)}, batch_size=[3])
    with pytest.raises(KeyError, match="rnd_state"):
        resolve_rnd_config({"rnd_cfg": {"weight": 1.0}}, flat, {"actor": ["policy"]}, env)
    with pytest.raises(ValueError, match="step_dt"):
        resolve_rnd_config({"rnd_cfg": {"weight": 1.0}}, flat, {"rnd_state": ["policy"]}, SimpleNamespace())


# --- symmetry ---------------------------------------------------------------------------------------------------------

LATERAL_OBS, LATERAL_ACTION = 1, 1
"""A lateral coordinate of the policy observation and a lateral action: both change sign in the mirror."""


def lateral_flip(
    env: Any = None, obs: TensorDictBase | None = None, actions: torch.Tensor | None = None
) -> tuple[TensorDictBase | None, torch.Tensor | None]:
    """[original; mirrored]: the lateral observation (in every group) and the lateral action change sign."""
    obs_aug = None
    if obs is not None:
        b = obs.batch_size[0]
        obs_aug = obs.repeat(2)  # a copy, [original; original]; then the second half is mirrored in place
        for key in tuple(obs.keys()):  # iterating a TensorDict itself yields its rows
            obs_aug[key][b:, LATERAL_OBS] *= -1.0
    actions_aug = None
    if actions is not None:
        mirrored_actions = actions.clone()
        mirrored_actions[:, LATERAL_ACTION] *= -1.0
        actions_aug = torch.cat([actions, mirrored_actions])
    return obs_aug, actions_aug


def four_fold(
    env: Any = None, obs: TensorDictBase | None = None, actions: torch.Tensor | None = None
) -> tuple[TensorDictBase | None, torch.Tensor | None]:
    """Two symmetries: identity, flip of coordinate 0, flip of coordinate 1, both (Isaac Lab's quadruped style)."""
    signs = torch.tensor([[1.0, 1.0], [-1.0, 1.0], [1.0, -1.0], [-1.0, -1.0]])
    obs_aug = None
    if obs is not None:
        obs_aug = obs.repeat(4)
        b = obs.batch_size[0]
        for key in tuple(obs.keys()):
            for i, s in enumerate(signs):
                obs_aug[key][i * b : (i + 1) * b, :2] = obs[key][:, :2] * s
    actions_aug = None if actions is None else torch.cat([actions[:, :2] * s for s in signs])
    return obs_aug, actions_aug


def make_batch(b: int = 4) -> SimpleNamespace:
    torch.manual_seed(10)
    obs = TensorDict({"policy": torch.randn(b, 3), "privileged": torch.randn(b, 2)}, batch_size=[b])
    return SimpleNamespace(
        observations=obs,
        actions=torch.randn(b, 2),
        old_actions_log_prob=torch.randn(b, 1),
        values=torch.randn(b, 1),
        advantages=torch.randn(b, 1),
        returns=torch.randn(b, 1),
        old_distribution_params=(torch.randn(b, 2), torch.rand(b, 2)),
    )


def test_augment_batch_appends_the_mirrored_copies_after_the_originals() -> None:
    batch = make_batch()
    original = SimpleNamespace(**{k: v.clone() if isinstance(v, torch.Tensor) else v for k, v in vars(batch).items()})
    original.observations = batch.observations.clone()
    Symmetry(None, lateral_flip, use_data_augmentation=True).augment_batch(batch, 4)
    assert batch.observations.batch_size == torch.Size([8]) and batch.actions.shape == (8, 2)
    for key in ("policy", "privileged"):
        torch.testing.assert_close(batch.observations[key][:4], original.observations[key])
        sign = torch.ones(original.observations[key].shape[1])
        sign[LATERAL_OBS] = -1.0
        torch.testing.assert_close(batch.observations[key][4:], original.observations[key] * sign)
    torch.testing.assert_close(batch.actions, torch.cat([original.actions, original.actions * torch.tensor([1, -1])]))
    for name in ("old_actions_log_prob", "values", "advantages", "returns"):
        torch.testing.assert_close(getattr(batch, name), getattr(original, name).repeat(2, 1))
    assert batch.old_distribution_params[0].shape == (4, 2)  # KL and entropy use the originals only


def test_augment_batch_with_two_symmetries_repeats_four_times_and_is_a_no_op_when_off() -> None:
    batch = make_batch(3)
    Symmetry(None, four_fold, use_data_augmentation=True).augment_batch(batch, 3)
    assert batch.observations.batch_size == torch.Size([12]) and batch.actions.shape == (12, 2)
    assert batch.returns.shape == (12, 1) and torch.equal(batch.returns[9:], batch.returns[:3])
    untouched = make_batch(3)
    observations, actions = untouched.observations, untouched.actions
    Symmetry(None, four_fold, use_mirror_loss=True).augment_batch(untouched, 3)
    assert untouched.observations is observations and untouched.actions is actions


def linear_actor(weight: torch.Tensor) -> Any:
    return lambda obs: obs["policy"] @ weight.T


def test_mirror_loss_is_zero_for_an_equivariant_policy_and_a_hand_value_otherwise() -> None:
    symmetry = Symmetry(None, lateral_flip, use_mirror_loss=True, mirror_loss_coeff=0.5)
    obs = TensorDict({"policy": torch.tensor([[0.3, 1.0, -2.0], [1.5, 2.0, 0.7]])}, batch_size=[2])
    batch = SimpleNamespace(observations=obs)
    # Equivariant: forward action from the forward/vertical coordinates, lateral action from the lateral one.
    symmetric = torch.tensor([[1.0, 0.0, 0.5], [0.0, -2.0, 0.0]])
    assert symmetry.compute_loss(linear_actor(symmetric), batch, 2).item() == pytest.approx(0.0, abs=1e-12)
    # a₀ = s₁ couples the forward action to the lateral observation: μ₀(Ms) − (Mμ(s))₀ = −2·s₁ for a₀, 0 for a₁,
    # so L = mean over 2 samples × 2 actions of [(2·1)², 0, (2·2)², 0] = 20 / 4 = 5.
    asymmetric = torch.tensor([[0.0, 1.0, 0.0], [0.0, 1.0, 0.0]])
    assert symmetry.compute_loss(linear_actor(asymmetric), batch, 2).item() == pytest.approx(5.0)
    assert batch.observations is obs  # without augmentation the batch is mirrored for the loss only


def test_mirror_loss_trains_the_actor_only_when_enabled() -> None:
    torch.manual_seed(11)
    batch = make_batch(16)
    actor = torch.nn.Linear(3, 2)
    policy = lambda obs: actor(obs["policy"])  # noqa: E731
    with pytest.warns(UserWarning, match="logged only"):
        logging_only = Symmetry(None, lateral_flip)
    assert not logging_only.compute_loss(policy, batch, 16).requires_grad
    symmetry = Symmetry(None, lateral_flip, use_data_augmentation=True, use_mirror_loss=True, mirror_loss_coeff=1.0)
    symmetry.augment_batch(batch, 16)
    optimizer = torch.optim.SGD(actor.parameters(), lr=0.2)
    first = None
    for _ in range(50):
        loss = symmetry.compute_loss(policy, batch, 16)
        first = loss.item() if first is None else first
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    assert first is not None and first > 0.01
    assert symmetry.compute_loss(policy, batch, 16).item() < 0.05 * first


def test_the_mirror_function_gets_rsl_rl_lib_keywords_and_the_users_env() -> None:
    calls: list[tuple[Any, bool, bool]] = []
    env = SimpleNamespace(unwrapped=SimpleNamespace(name="isaac env"))

    def recording(**kwargs: Any) -> tuple[TensorDictBase | None, torch.Tensor | None]:
        calls.append((kwargs["env"], kwargs["obs"] is None, kwargs["actions"] is None))
        return lateral_flip(**kwargs)

    cfg = {"data_augmentation_func": recording, "use_mirror_loss": True}
    symmetry = Symmetry(**resolve_symmetry_config({"symmetry_cfg": cfg}, env)["symmetry_cfg"])
    batch = make_batch(2)
    symmetry.compute_loss(linear_actor(torch.ones(2, 3)), batch, 2)
    assert calls == [(env, False, True), (env, True, False)]


def test_a_mirror_function_returning_the_wrong_number_of_rows_is_reported() -> None:
    def broken(env: Any = None, obs: Any = None, actions: torch.Tensor | None = None) -> tuple[Any, Any]:
        return obs, None if actions is None else actions[:-1]

    with pytest.raises(ValueError, match="rows"):
        Symmetry(None, broken, use_data_augmentation=True).augment_batch(make_batch(4), 4)


def test_resolve_symmetry_config_with_an_isaac_lab_dict_and_a_module_function_string(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    module = tmp_path / "my_robot_symmetry.py"
    module.write_text(
        textwrap.dedent(
            """
            import torch

            def compute_symmetric_states(env, obs=None, actions=None):
                return None if obs is None else torch.cat([obs, obs]), None if actions is None else torch.cat(
                    [actions, -actions]
                )
            """
        )
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.delitem(sys.modules, "my_robot_symmetry", raising=False)
    env = object()
    # What Isaac Lab's RslRlSymmetryCfg.to_dict() gives: the function as "module:name".
    cfg = {
        "use_data_augmentation": True,
        "use_mirror_loss": True,
        "data_augmentation_func": "my_robot_symmetry:compute_symmetric_states",
        "mirror_loss_coeff": 0.3,
    }
    alg_cfg = {"class_name": "PPO", "symmetry_cfg": cfg}
    resolved = resolve_symmetry_config(alg_cfg, env)
    assert resolved["symmetry_cfg"]["env"] is env and "env" not in cfg and resolved["class_name"] == "PPO"
    symmetry = Symmetry(**resolved["symmetry_cfg"])
    assert symmetry.use_data_augmentation and symmetry.use_mirror_loss and symmetry.mirror_loss_coeff == 0.3
    assert symmetry.env is env and symmetry.data_augmentation_func.__name__ == "compute_symmetric_states"
    _, actions = symmetry.augment(actions=torch.tensor([[1.0, -2.0]]))
    torch.testing.assert_close(actions, torch.tensor([[1.0, -2.0], [-1.0, 2.0]]))

    assert resolve_symmetry_config({"symmetry_cfg": None}, env)["symmetry_cfg"] is None
    assert resolve_symmetry_config({}, env)["symmetry_cfg"] is None
    with pytest.raises(ValueError, match="data_augmentation_func"):
        Symmetry(env, None)  # pyright: ignore[reportArgumentType]


def test_group_layout_mirrors_flat_model_inputs_like_the_tensordict_they_were_built_from() -> None:
    torch.manual_seed(12)
    obs = TensorDict({"policy": torch.randn(5, 3), "privileged": torch.randn(5, 2)}, batch_size=[5])
    sets = {"actor": OBS_GROUPS["actor"], "critic": OBS_GROUPS["critic"]}
    layout = GroupLayout(obs, sets)
    inputs = layout.join(obs)  # what our storage holds: one flat tensor per model
    assert inputs["actor"].shape == (5, 3) and inputs["critic"].shape == (5, 5)
    split = layout.split(inputs)
    for key in ("policy", "privileged"):
        torch.testing.assert_close(split[key], obs[key])
    symmetry = Symmetry(None, lateral_flip, use_data_augmentation=True)
    actions = torch.randn(5, 2)
    flat_aug, actions_aug = symmetry.augment_inputs(layout, inputs, actions)
    obs_aug, expected_actions = lateral_flip(obs=obs, actions=actions)
    assert obs_aug is not None
    for name, value in layout.join(obs_aug).items():
        torch.testing.assert_close(flat_aug[name], value)
    torch.testing.assert_close(actions_aug, expected_actions)
    assert flat_aug["critic"].shape == (10, 5)
