"""RewardClassifierWrapper (issue 12, SERL): the reward is the classifier's success on the observation reached, a
success ends exactly those episodes (a termination) and resets them, the state check ANDs, final_obs is judged for
envs that reset inside the step, no host sync, the runner trains through it."""

from __future__ import annotations

import contextlib
import dataclasses
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import torch
from tensordict import TensorDict

from rsl_rl.modules.reward_classifier import RewardClassifier, RewardClassifierConfig, train_reward_classifier
from tasks.classic.pendulum import PendulumCfg, PendulumEnv
from tasks.classic.pixel_pendulum import PixelPendulumCfg, PixelPendulumEnv
from tasks.wrappers import RewardClassifierWrapper

N = 64


def upright_and_slow(state: torch.Tensor) -> torch.Tensor:
    """Pendulum success from ``(cos θ, sin θ, θ̇)``: |θ| < 0.2 rad and |θ̇| < 1 rad/s."""
    return (torch.atan2(state[:, 1], state[:, 0]).abs() < 0.2) & (state[:, 2].abs() < 1.0)


def controller(state: torch.Tensor, g: torch.Generator) -> torch.Tensor:
    """PD towards upright plus noise: reaches the success region often, and leaves it."""
    theta = torch.atan2(state[:, 1], state[:, 0])
    return (-10.0 * theta - 2.0 * state[:, 2]).unsqueeze(-1) + torch.randn(state.shape[0], 1, generator=g)


def state_of(obs: TensorDict) -> torch.Tensor:
    return obs["critic"] if "critic" in obs else obs["policy"]


def labelled_rollouts(env: Any, steps: int, seed: int, group: str) -> tuple[torch.Tensor, torch.Tensor]:
    """``next_obs[group]`` of real rollouts (final_obs where an episode ended) and their success labels."""
    g = torch.Generator().manual_seed(seed)
    obs = env.reset()
    xs, ys = [], []
    for _ in range(steps):
        obs, _, terminated, truncated, extras = env.step(controller(state_of(obs), g))
        reached = reached_obs((obs, None, terminated, truncated, extras))
        xs.append(reached[group])
        ys.append(upright_and_slow(state_of(reached)))
    return torch.cat(xs), torch.cat(ys)


def small_cfg(cls: type, **kwargs: Any) -> Any:
    return cls(num_envs=N, init_angle=0.8, init_velocity=1.5, **kwargs)


@pytest.fixture(scope="module")
def state_classifier() -> RewardClassifier:
    x, y = labelled_rollouts(PendulumEnv(small_cfg(PendulumCfg, max_episode_steps=40), seed=1), 60, 1, "policy")
    cfg = RewardClassifierConfig(steps=300, learning_rate=1e-3, hidden_dims=(64,))
    model, report = train_reward_classifier(x, y, cfg, seed=0)
    assert report.recall > 0.8 and report.precision > 0.8  # good enough that successes occur in the wrapper tests
    return model


@pytest.fixture(scope="module")
def image_classifier() -> RewardClassifier:
    env = PixelPendulumEnv(small_cfg(PixelPendulumCfg, max_episode_steps=40), seed=1)
    x, y = labelled_rollouts(env, 30, 1, "policy")
    cnn = {"output_channels": [8, 8], "kernel_size": [6, 3], "stride": [3, 2]}
    cfg = RewardClassifierConfig(steps=150, learning_rate=1e-3, hidden_dims=(32,), batch_size=64, cnn_cfg=cnn)
    return train_reward_classifier((x * 255).round().to(torch.uint8), y, cfg, seed=0)[0]


def record_inner_steps(env: Any) -> list[tuple[Any, ...]]:
    """Make ``env.step`` also append its outputs (what the wrapper received) to the returned list. The rows of
    ``final_obs`` of envs that did not finish become NaN: the contract says they are ignored (BatchedTask happens to
    fill them with the current observation, which would hide a wrapper that reads them)."""
    records: list[tuple[Any, ...]] = []
    original = env.step

    def step(actions: torch.Tensor) -> Any:
        obs, reward, terminated, truncated, extras = original(actions)
        done = terminated | truncated
        extras["final_obs"] = extras["final_obs"].apply(
            lambda x: torch.where(done.view(-1, *([1] * (x.dim() - 1))), x, torch.nan)
        )
        out = (obs, reward, terminated, truncated, extras)
        records.append(tuple(v.clone() if isinstance(v, torch.Tensor | TensorDict) else v for v in out))
        return out

    env.step = step
    return records


def reached_obs(inner: tuple[Any, ...]) -> TensorDict:
    """The observation each env reached with a step ``(obs, reward, terminated, truncated, extras)``."""
    obs, _, terminated, truncated, extras = inner
    done = terminated | truncated
    return extras["final_obs"].apply(lambda f, o: torch.where(done.view(-1, *([1] * (f.dim() - 1))), f, o), obs)


def run_and_check(
    wrapped: RewardClassifierWrapper,
    inner_env: Any,
    records: list[tuple[Any, ...]],
    classifier: RewardClassifier,
    check: Callable[[TensorDict], torch.Tensor] | None,
    steps: int,
) -> dict[str, int]:
    """Step ``wrapped`` and check every output against what the inner env returned; count the cases seen."""
    g = torch.Generator().manual_seed(0)
    obs = wrapped.reset()
    cases = ("success", "success_ended_by_wrapper", "success_at_time_limit", "judged_final_obs", "check_vetoed")
    seen: dict[str, int] = dict.fromkeys(cases, 0)
    for _ in range(steps):
        length_before = inner_env.episode_length_buf.clone()
        obs, reward, terminated, truncated, extras = wrapped.step(controller(state_of(obs), g))
        inner_obs, inner_reward, inner_term, inner_trunc, inner_extras = records[-1]
        inner_done = inner_term | inner_trunc
        reached = reached_obs(records[-1])
        judged = classifier.predict_success(reached[classifier.cfg.group])
        success = judged if check is None else judged & check(reached)
        # Shapes, dtypes, no NaN.
        assert reward.shape == (N,) and reward.dtype == torch.float32 and torch.isfinite(reward).all()
        assert terminated.dtype == torch.bool and truncated.dtype == torch.bool and terminated.shape == (N,)
        p = extras["success_probability"]
        assert p.shape == (N,) and torch.isfinite(p).all() and ((p >= 0) & (p <= 1)).all()
        # The reward is the success of the observation reached, per env.
        assert torch.equal(reward, success.float())
        # A success is a termination, never a truncation; the inner env's ends stay.
        assert torch.equal(terminated, inner_term | success)
        assert torch.equal(truncated, inner_trunc & ~success)
        assert not (terminated & truncated).any()
        # final_obs: what each env reached (the inner final_obs where it reset, else the observation it returned).
        ends = terminated | truncated
        for key in list(reached.keys()):  # (iterating a TensorDict itself yields rows, not keys)
            assert torch.equal(extras["final_obs"][key][ends], reached[key][ends])
        # Exactly the succeeding envs the inner env did not end are reset now; the others go on untouched.
        ended = success & ~inner_done
        going_on = ~(inner_done | success)
        assert (inner_env.episode_length_buf[ended | inner_done] == 0).all()
        assert (inner_env.episode_sums[ended | inner_done] == 0).all()
        assert (inner_env.episode_sums[going_on] != 0).all()  # pendulum costs are never exactly 0
        assert torch.equal(inner_env.episode_length_buf[going_on], length_before[going_on] + 1)
        for key in list(obs.keys()):
            assert torch.equal(obs[key][~ended], inner_obs[key][~ended])
        assert torch.equal(obs["policy"][ended], inner_env.get_observations()["policy"][ended])
        if ended.any():  # a fresh initial state, not the one that succeeded
            assert not torch.equal(obs["policy"][ended], reached["policy"][ended])
        assert torch.equal(extras["true_reward"], inner_reward)
        assert torch.equal(extras["episode"]["classifier/success"], success.float())
        for name in ("classifier/success_rate", "classifier/probability", "classifier/true_reward"):
            assert extras["log"][name].shape == ()
        seen["success"] += int(success.sum())
        seen["success_ended_by_wrapper"] += int(ended.sum())
        seen["success_at_time_limit"] += int((success & inner_trunc).sum())
        # Envs whose verdict on the final observation differs from the verdict on the reset one: judging the
        # returned observation instead of final_obs would fail the reward check above for them.
        wrong = classifier.predict_success(inner_obs[classifier.cfg.group])
        seen["judged_final_obs"] += int((inner_done & (wrong != judged)).sum())
        if check is not None:
            seen["check_vetoed"] += int((judged & ~check(reached)).sum())
    return seen


def test_reward_is_success_and_success_ends_exactly_those_episodes(state_classifier: RewardClassifier) -> None:
    env = PendulumEnv(small_cfg(PendulumCfg, max_episode_steps=6), seed=2)
    records = record_inner_steps(env)
    wrapped = RewardClassifierWrapper(env, state_classifier)
    seen = run_and_check(wrapped, env, records, state_classifier, None, 40)
    # Every case the checks distinguish occurred (so they could have failed).
    assert seen["success"] > 50 and seen["success_ended_by_wrapper"] > 20
    assert seen["success_at_time_limit"] > 0 and seen["judged_final_obs"] > 0


def test_state_check_ands_with_the_classifier(state_classifier: RewardClassifier) -> None:
    def spinning_left(next_obs: TensorDict) -> torch.Tensor:
        return next_obs["policy"][:, 2] > 0.0

    env = PendulumEnv(small_cfg(PendulumCfg, max_episode_steps=6), seed=3)
    records = record_inner_steps(env)
    wrapped = RewardClassifierWrapper(env, state_classifier, state_check=spinning_left)
    seen = run_and_check(wrapped, env, records, state_classifier, spinning_left, 40)
    assert seen["success"] > 10 and seen["check_vetoed"] > 10  # both outcomes of the AND occurred


def test_state_check_that_never_passes_gives_no_reward_and_no_extra_ends(state_classifier: RewardClassifier) -> None:
    env = PendulumEnv(small_cfg(PendulumCfg, max_episode_steps=6), seed=3)
    wrapped = RewardClassifierWrapper(env, state_classifier, state_check=lambda o: torch.zeros(N, dtype=torch.bool))
    obs, g = wrapped.reset(), torch.Generator().manual_seed(0)
    ended = 0
    for _ in range(12):
        obs, reward, terminated, truncated, extras = wrapped.step(controller(state_of(obs), g))
        assert not reward.any() and not terminated.any()  # pendulum never terminates by itself
        ended += int(truncated.sum())
        assert extras["success_probability"].max() > 0.5  # the classifier itself did see successes
    assert ended == 2 * N  # the time limit alone: steps 6 and 12


def test_without_termination_and_with_a_reward_scale(state_classifier: RewardClassifier) -> None:
    env = PendulumEnv(small_cfg(PendulumCfg, max_episode_steps=6), seed=4)
    records = record_inner_steps(env)
    wrapped = RewardClassifierWrapper(env, state_classifier, terminate_on_success=False, reward_on_success=5.0)
    obs, g = wrapped.reset(), torch.Generator().manual_seed(0)
    for _ in range(12):
        obs, reward, terminated, truncated, _ = wrapped.step(controller(state_of(obs), g))
        inner_obs, _, inner_term, inner_trunc, _ = records[-1]
        success = state_classifier.predict_success(reached_obs(records[-1])["policy"])
        assert torch.equal(reward, 5.0 * success.float())
        assert torch.equal(terminated, inner_term) and torch.equal(truncated, inner_trunc)
        assert torch.equal(obs["policy"], inner_obs["policy"])


def test_image_classifier_on_pixel_pendulum(image_classifier: RewardClassifier) -> None:
    env = PixelPendulumEnv(small_cfg(PixelPendulumCfg, max_episode_steps=6), seed=5)
    records = record_inner_steps(env)
    wrapped = RewardClassifierWrapper(env, image_classifier)
    seen = run_and_check(wrapped, env, records, image_classifier, None, 20)
    assert seen["success"] > 10 and seen["success_ended_by_wrapper"] > 0


def test_an_env_that_cannot_reset_by_mask_is_refused_unless_it_need_not(state_classifier: RewardClassifier) -> None:
    class NoMaskReset:
        num_envs, num_actions, device, max_episode_length, step_dt, cfg = N, 1, torch.device("cpu"), 6, 0.05, None
        episode_length_buf = torch.zeros(N, dtype=torch.long)

    with pytest.raises(TypeError, match="no reset_envs"):
        RewardClassifierWrapper(NoMaskReset(), state_classifier)  # type: ignore[arg-type]
    RewardClassifierWrapper(NoMaskReset(), state_classifier, terminate_on_success=False)  # type: ignore[arg-type]


def test_a_missing_group_is_named(state_classifier: RewardClassifier) -> None:
    cfg = dataclasses.replace(state_classifier.cfg, group="state")
    classifier = RewardClassifier(cfg, (3,))
    wrapped = RewardClassifierWrapper(PendulumEnv(small_cfg(PendulumCfg), seed=0), classifier)
    wrapped.reset()
    with pytest.raises(KeyError, match=r"group 'state'.*\['policy'\]"):
        wrapped.step(torch.zeros(N, 1))


@contextlib.contextmanager
def no_host_sync() -> Iterator[None]:
    """Make every host read-back of a tensor raise (wherever it comes from: wrapper, classifier or task)."""
    names = ("item", "tolist", "cpu", "numpy", "nonzero", "__bool__", "__float__", "__int__")
    saved = {name: getattr(torch.Tensor, name) for name in names}

    def refuse(name: str) -> Callable[..., Any]:
        def raising(*args: Any, **kwargs: Any) -> Any:
            raise AssertionError(f"host sync: Tensor.{name}")

        return raising

    try:
        for name in names:
            setattr(torch.Tensor, name, refuse(name))
        yield
    finally:
        for name, original in saved.items():
            setattr(torch.Tensor, name, original)


def test_steps_make_no_host_sync(state_classifier: RewardClassifier) -> None:
    env = PendulumEnv(small_cfg(PendulumCfg, max_episode_steps=3), seed=6)
    wrapped = RewardClassifierWrapper(env, state_classifier, state_check=lambda o: o["policy"][:, 2] > -5.0)
    wrapped.reset()
    actions = torch.zeros(N, 1)
    with no_host_sync():
        for _ in range(6):
            wrapped.step(actions)
    with pytest.raises(AssertionError, match="host sync"), no_host_sync():  # the guard itself works
        bool(torch.ones(1))


def test_the_runner_trains_on_the_classifier_reward(state_classifier: RewardClassifier) -> None:
    from rsl_rl.runners import OnPolicyRunner
    from tasks.classic import pendulum_train_cfg

    wrapped = RewardClassifierWrapper(
        PendulumEnv(small_cfg(PendulumCfg, max_episode_steps=20), seed=7), state_classifier
    )
    cfg = pendulum_train_cfg()
    cfg.num_steps_per_env = 20
    runner = OnPolicyRunner(wrapped, cfg, log_dir=None, device="cpu", show_progress=False)
    runner.learn(2)
    record = runner.logger.history[-1]
    assert 0.0 < record["classifier/success_rate"] < 1.0
    assert 0.0 <= record["Episode/classifier/success"] <= 1.0
    assert record["episodes"] > 0
