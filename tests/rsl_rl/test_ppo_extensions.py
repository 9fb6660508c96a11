"""PPO with rsl-rl-lib's RND and symmetry extensions (rsl_rl/algorithms/ppo_extensions.py).

RND: the intrinsic reward of the state a step reached is added to the stored reward, the predictor learns while the
target stays fixed, and checkpoints round-trip under rsl-rl-lib's keys. Symmetry: the update sees the mirrored rows,
the mirror loss falls when it trains, recurrent PPO refuses it. Both: one update from rsl-rl-lib 5.5.1's recorded
rollout and weights (tests/fixtures/rsl_rl_lib/ppo_update_extensions.pt) lands on rsl-rl-lib's weights.
"""

from __future__ import annotations

import contextlib
import copy
import json
from pathlib import Path
from typing import Any

import pytest
import torch
from point_mass import PointMassVecEnv, rsl_rl_train_cfg
from point_mass_symmetry import mirror_x
from tensordict import TensorDict

from rsl_rl.algorithms.recurrent_ppo import RecurrentPPO
from rsl_rl.env import VecEnv
from rsl_rl.modules.distribution import gaussian_log_prob
from rsl_rl.runners import OnPolicyRunner
from rsl_rl.runners.config import ppo_config_from_dict, train_config_from_dict

PEER = Path(__file__).resolve().parents[1] / "fixtures" / "rsl_rl_lib"
STEP_DT = 0.05
# What Isaac Lab's RslRlRndCfg.to_dict() gives (weight per second of simulated time).
RND_CFG: dict[str, Any] = {
    "weight": 4.0,
    "weight_schedule": None,
    "reward_normalization": False,
    "state_normalization": False,
    "learning_rate": 1e-3,
    "num_outputs": 8,
    "predictor_hidden_dims": [32],
    "target_hidden_dims": [32],
}


class SteppedPointMass(PointMassVecEnv):
    """The point mass with the ``env.unwrapped.step_dt`` an Isaac Lab env has (RND scales its weight by it)."""

    step_dt = STEP_DT

    @property
    def unwrapped(self) -> SteppedPointMass:
        return self


def rnd_train_cfg(rnd_state: list[str], **algorithm: Any) -> dict[str, Any]:
    cfg = rsl_rl_train_cfg(max_iterations=3, save_interval=50, logger="tensorboard")
    cfg["obs_groups"]["rnd_state"] = rnd_state
    cfg["algorithm"]["rnd_cfg"] = copy.deepcopy(RND_CFG)
    cfg["algorithm"].update(algorithm)
    return cfg


def symmetry_train_cfg(**symmetry: Any) -> dict[str, Any]:
    cfg = rsl_rl_train_cfg(max_iterations=3, save_interval=50, logger="none")
    cfg["algorithm"]["symmetry_cfg"] = {"data_augmentation_func": "point_mass_symmetry:mirror_x", **symmetry}
    return cfg


# --- random network distillation --------------------------------------------------------------------------------------


def test_the_intrinsic_reward_of_the_reached_state_is_added_to_the_stored_reward() -> None:
    torch.manual_seed(0)
    env = SteppedPointMass(num_envs=16, max_episode_length=50)
    runner = OnPolicyRunner(env, rnd_train_cfg(["critic"]), None, "cpu", show_progress=False)
    alg = runner.alg
    assert alg.rnd is not None and alg.obs_groups["rnd_state"] == ["critic"]
    assert alg.rnd.initial_weight == pytest.approx(RND_CFG["weight"] * STEP_DT)
    # The critic group alone is neither model's input: RND's state gets storage of its own.
    assert alg.storage.obs["rnd"].shape == (8, 16, 6) and alg.storage.obs["rnd"] is not alg.storage.obs["actor"]
    obs = env.get_observations()
    alg.train_mode()
    with torch.inference_mode():
        for t in range(5):  # no time-outs within 50 steps: the stored reward is r + r_int
            actions = alg.act(obs)
            torch.testing.assert_close(alg.storage.obs["rnd"][t], obs["critic"])
            obs, rewards, dones, extras = env.step(actions)
            with torch.no_grad():  # r_int = w·‖f̂(s') − f(s')‖ of the state s' the step reached
                error = alg.rnd.predictor(obs["critic"]) - alg.rnd.target(obs["critic"])
                expected = alg.rnd.initial_weight * torch.linalg.vector_norm(error, dim=-1)
            alg.process_env_step(obs, rewards, dones, extras)
            assert alg.intrinsic_rewards is not None
            torch.testing.assert_close(alg.intrinsic_rewards, expected)
            assert bool((alg.intrinsic_rewards > 0).all())
            torch.testing.assert_close(alg.storage.rewards[t], rewards + alg.intrinsic_rewards)
            assert not torch.allclose(alg.storage.rewards[t], rewards)
    assert alg.rnd.update_counter == 5


def test_rnd_trains_its_predictor_only_logs_and_checkpoints_under_rsl_rl_lib_keys(tmp_path: Path) -> None:
    torch.manual_seed(1)
    cfg = rnd_train_cfg(["policy"])
    runner = OnPolicyRunner(
        SteppedPointMass(num_envs=16, max_episode_length=8), cfg, tmp_path, "cpu", show_progress=False
    )
    alg = runner.alg
    assert alg.rnd is not None
    assert alg.storage.obs["rnd"] is alg.storage.obs["actor"]  # the actor's groups: no second copy
    predictor = {k: v.clone() for k, v in alg.rnd.predictor.state_dict().items()}
    target = {k: v.clone() for k, v in alg.rnd.target.state_dict().items()}
    runner.learn(3)
    for name, value in alg.rnd.predictor.state_dict().items():
        assert not torch.equal(value, predictor[name]), name
    for name, value in alg.rnd.target.state_dict().items():
        assert torch.equal(value, target[name]), name
    assert any(m is alg.rnd.predictor for m in alg.models())

    record = runner.logger.history[-1]
    assert record["rnd"] > 0.0 and record["Loss/rnd"] == record["rnd"]
    assert record["Rnd/weight"] == pytest.approx(RND_CFG["weight"] * STEP_DT)
    # Episode returns are extrinsic plus intrinsic (rsl-rl-lib's Train/mean_reward); the parts are logged apart.
    assert record["Rnd/mean_intrinsic_reward"] > 0.0
    parts = record["Rnd/mean_extrinsic_reward"] + record["Rnd/mean_intrinsic_reward"]
    assert parts == pytest.approx(record["mean_return"], rel=1e-5)

    path = tmp_path / "model_2.pt"
    state = torch.load(path, weights_only=True)
    assert {"rnd_state_dict", "rnd_optimizer_state_dict", "rnd_update_counter"} <= set(state)
    assert state["rnd_update_counter"] == 3 * 8
    assert state["config"]["algorithm"]["rnd_cfg"] == RND_CFG  # the user's section, not the resolved one
    assert json.loads((tmp_path / "config.json").read_text())["algorithm"]["rnd_cfg"]["weight"] == RND_CFG["weight"]

    torch.manual_seed(2)
    resumed = OnPolicyRunner(SteppedPointMass(num_envs=16, max_episode_length=8), cfg, None, "cpu", show_progress=False)
    fresh = {k: v.clone() for k, v in resumed.alg.rnd.state_dict().items()}
    resumed.load(path, load_cfg={"actor": True, "critic": True, "rnd": False})
    for name, value in resumed.alg.rnd.state_dict().items():
        assert torch.equal(value, fresh[name]), name
    resumed.load(path)
    for name, value in alg.rnd.state_dict().items():
        assert torch.equal(resumed.alg.rnd.state_dict()[name], value), name
    assert resumed.alg.rnd.update_counter == alg.rnd.update_counter
    assert resumed.alg.rnd.optimizer.state_dict()["state"].keys() == alg.rnd.optimizer.state_dict()["state"].keys()
    resumed.learn(1)


def test_rnd_config_errors_name_the_field() -> None:
    cfg = rnd_train_cfg(["policy"])
    cfg["algorithm"]["rnd_cfg"]["weigth"] = 1.0
    with pytest.raises(ValueError, match=r"weigth.*rnd_cfg"):
        train_config_from_dict(cfg)
    cfg = rnd_train_cfg(["policy"])
    del cfg["algorithm"]["rnd_cfg"]["num_outputs"]
    with pytest.raises(ValueError, match=r"rnd_cfg lacks \['num_outputs'\]"):
        train_config_from_dict(cfg)
    with pytest.raises(ValueError, match="step_dt"):  # the point mass has no step_dt
        OnPolicyRunner(PointMassVecEnv(), rnd_train_cfg(["policy"]), None, "cpu", show_progress=False)


def test_recurrent_ppo_takes_rnd() -> None:
    torch.manual_seed(3)
    cfg = rnd_train_cfg(["critic"])
    cfg["actor"].update(class_name="RNNModel", rnn_type="gru", rnn_hidden_dim=8, rnn_num_layers=1)
    runner = OnPolicyRunner(SteppedPointMass(num_envs=8), cfg, None, "cpu", show_progress=False)
    assert isinstance(runner.alg, RecurrentPPO) and runner.alg.rnd is not None
    runner.alg.compile(None)  # models() is callable on the recurrent algorithm too
    runner.learn(2)
    assert runner.logger.history[-1]["rnd"] > 0.0


# --- symmetry ---------------------------------------------------------------------------------------------------------


def _record_update_inputs(runner: OnPolicyRunner) -> list[torch.Tensor]:
    seen: list[torch.Tensor] = []
    runner.alg.actor.register_forward_hook(lambda module, args, out: seen.append(args[0].detach().clone()))
    return seen


@pytest.mark.parametrize("augment", [True, False])
def test_data_augmentation_feeds_the_update_the_mirrored_rows(augment: bool) -> None:
    torch.manual_seed(4)
    env = PointMassVecEnv(num_envs=16)
    cfg = symmetry_train_cfg(use_data_augmentation=augment, use_mirror_loss=not augment, mirror_loss_coeff=0.1)
    runner = OnPolicyRunner(env, cfg, None, "cpu", show_progress=False)
    assert runner.alg.symmetry is not None and runner.alg.symmetry.env is env  # the user's env, not the adapter
    obs = env.get_observations()
    with torch.inference_mode():
        for _ in range(8):
            obs, rewards, dones, extras = env.step(runner.alg.act(obs))
            runner.alg.process_env_step(obs, rewards, dones, extras)
        runner.alg.compute_returns(obs)
    seen = _record_update_inputs(runner)
    stats = runner.alg.update()
    rows = 16 * 8 // 2  # rows of a mini-batch
    # With augmentation the update runs on [originals; mirrored]; without, the mirror loss runs the actor on the
    # mirrored copies separately.
    assert [x.shape[0] for x in seen] == ([2 * rows] * 4 if augment else [rows, rows] * 4)
    originals, mirrored = (seen[0][:rows], seen[0][rows:]) if augment else (seen[0], seen[1])
    torch.testing.assert_close(mirrored, originals * torch.tensor([-1.0, 1.0, -1.0, 1.0]))
    assert float(stats["symmetry"]) > 0.0 and "rnd" not in stats
    assert float(stats["kl"]) >= 0.0 and 0.0 <= float(stats["clip_fraction"]) <= 1.0


def test_the_mirror_loss_falls_when_it_trains(tmp_path: Path) -> None:
    """Trained (coefficient 10), the mirror loss falls; logged only, it does not (the policy drifts asymmetric)."""
    late: dict[bool, float] = {}
    for train in (True, False):
        torch.manual_seed(5)
        cfg = symmetry_train_cfg(use_mirror_loss=train, mirror_loss_coeff=10.0)
        cfg["algorithm"].update(num_learning_epochs=4, learning_rate=3e-3, schedule="fixed")
        log_dir = tmp_path / str(train)
        with contextlib.nullcontext() if train else pytest.warns(UserWarning, match="logged only"):
            runner = OnPolicyRunner(PointMassVecEnv(num_envs=16), cfg, log_dir, "cpu", show_progress=False)
        runner.learn(8)
        losses = [record["symmetry"] for record in runner.logger.history]
        assert runner.logger.history[-1]["Loss/symmetry"] == losses[-1]
        late[train] = sum(losses[-3:]) / 3
        if train:  # seeds 0-4: the last three iterations average 0.03-0.15 of the first
            assert late[train] < 0.3 * losses[0], losses
    # Seeds 0-4: 0.003-0.02 of the untrained run's late mirror loss.
    assert late[True] < 0.2 * late[False], late
    # The config names the function, so the checkpoint holds no pickled code.
    state = torch.load(tmp_path / "True" / "model_7.pt", weights_only=True)
    assert state["config"]["algorithm"]["symmetry_cfg"]["data_augmentation_func"] == "point_mass_symmetry:mirror_x"


def test_a_mirror_function_is_saved_by_name_and_an_unnamed_one_is_refused() -> None:
    cfg = symmetry_train_cfg(use_data_augmentation=True)
    cfg["algorithm"]["symmetry_cfg"]["data_augmentation_func"] = mirror_x
    assert ppo_config_from_dict(cfg).algorithm.symmetry_cfg == {
        "data_augmentation_func": "point_mass_symmetry:mirror_x",
        "use_data_augmentation": True,
    }
    cfg["algorithm"]["symmetry_cfg"]["data_augmentation_func"] = lambda env, obs, actions: (obs, actions)
    with pytest.raises(ValueError, match="data_augmentation_func.*module level"):
        train_config_from_dict(cfg)


def test_recurrent_ppo_refuses_symmetry() -> None:
    cfg = symmetry_train_cfg(use_data_augmentation=True)
    cfg["critic"].update(class_name="RNNModel", rnn_type="lstm", rnn_hidden_dim=8, rnn_num_layers=1)
    with pytest.raises(ValueError, match=r"RecurrentPPO.*symmetry"):
        OnPolicyRunner(PointMassVecEnv(num_envs=8), cfg, None, "cpu", show_progress=False)


# --- one update against rsl-rl-lib 5.5.1 ------------------------------------------------------------------------------


class SteppedFixtureShapedEnv(VecEnv):
    """An rsl-rl-lib style env with the fixtures' shapes (``policy`` [8, 5], ``critic`` [8, 7], 3 actions) and the
    fixture's ``step_dt``; its own observations never enter the comparison."""

    def __init__(self, step_dt: float) -> None:
        self.num_envs, self.num_actions, self.max_episode_length, self.device = 8, 3, 10, "cpu"
        self.step_dt = step_dt
        self.cfg: dict = {}
        self.episode_length_buf = torch.zeros(8, dtype=torch.long)

    def get_observations(self) -> TensorDict:
        return TensorDict({"policy": torch.zeros(8, 5), "critic": torch.zeros(8, 7)}, batch_size=[8])

    def step(self, actions: torch.Tensor) -> tuple[TensorDict, torch.Tensor, torch.Tensor, dict]:
        raise NotImplementedError


@pytest.mark.parametrize("case", ["rnd_augmentation_mirror_loss", "mirror_loss_only"])
def test_one_update_with_extensions_from_identical_weights_and_rollout_matches_rsl_rl_lib(
    case: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """rsl-rl-lib's recorded rollout fed to our PPO, which the same seed gives rsl-rl-lib's initial weights (actor,
    critic, RND); the mirror function is ``fixture_symmetry:mirror`` beside the fixture."""
    monkeypatch.syspath_prepend(str(PEER))
    rec = torch.load(PEER / "ppo_update_extensions.pt", weights_only=True)[case]
    cfg = copy.deepcopy(rec["cfg"])
    cfg["algorithm"]["timeout_bootstrap"] = "current_value"  # rsl-rl-lib's r += γ·V(s_t)
    torch.manual_seed(0)  # the generator's seed: the same initial weights, RND's included (built after the models)
    alg = OnPolicyRunner(SteppedFixtureShapedEnv(rec["step_dt"]), cfg, None, "cpu", show_progress=False).alg
    for model, theirs in (("actor", rec["actor_init"]), ("critic", rec["critic_init"]), ("rnd", rec["rnd_init"])):
        if theirs is not None:
            for name, value in getattr(alg, model).state_dict().items():
                assert torch.equal(value, theirs[name]), f"{model}.{name}"
    alg.train_mode()
    steps, num_envs = rec["actions"].shape[:2]
    obs_at = lambda t: TensorDict(  # noqa: E731
        {k: v[t] for k, v in rec["obs"].items()} if t < steps else rec["last_obs"], batch_size=[num_envs]
    )
    with torch.inference_mode():
        for t in range(steps):
            alg.act(obs_at(t))
            s = alg.storage
            s.actions[t].copy_(rec["actions"][t])  # rsl-rl-lib's sampled actions replace ours
            s.log_prob[t].copy_(gaussian_log_prob(rec["actions"][t], s.action_mean[t], s.action_std[t]))
            alg.process_env_step(obs_at(t + 1), rec["rewards"][t], rec["dones"][t], {"time_outs": rec["time_outs"][t]})
            if rec["intrinsic_rewards"] is not None:
                assert alg.rnd is not None and alg.rnd.weight == pytest.approx(rec["rnd_weights"][t])
                torch.testing.assert_close(alg.intrinsic_rewards, rec["intrinsic_rewards"][t], atol=1e-5, rtol=1e-5)
        alg.compute_returns(obs_at(steps))
    shape = (steps, num_envs)
    torch.testing.assert_close(alg.storage.rewards, rec["storage_rewards"].reshape(shape), atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(alg.storage.returns, rec["returns"].reshape(shape), atol=1e-4, rtol=1e-5)
    stats = {k: float(v) for k, v in alg.update().items()}
    for ours, theirs in (("surrogate", "surrogate"), ("value_function", "value"), ("entropy", "entropy")):
        assert stats[ours] == pytest.approx(rec["loss"][theirs], rel=1e-4, abs=1e-6), ours
    for name in ("rnd", "symmetry"):
        assert (name in stats) == (name in rec["loss"])
        if name in stats:
            assert stats[name] == pytest.approx(rec["loss"][name], rel=1e-4, abs=1e-7), name
    assert float(alg.learning_rate) == pytest.approx(rec["learning_rate"])
    for model, theirs in (("actor", rec["actor_final"]), ("critic", rec["critic_final"]), ("rnd", rec["rnd_final"])):
        if theirs is None:
            continue
        for name, value in getattr(alg, model).state_dict().items():
            torch.testing.assert_close(value, theirs[name], atol=1e-5, rtol=1e-4, msg=f"{model}.{name}")
