"""rsl-rl-lib 5.x drop-in behaviour: the defects a review found on the path Isaac Lab and mjlab take, each pinned by a
test, and checkpoints written by rsl-rl-lib 5.5.1 itself (fixtures from ``tests/fixtures/rsl_rl_lib/generate.py``)."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from point_mass import PointMassVecEnv, rsl_rl_train_cfg
from tensordict import TensorDict

from rsl_rl.algorithms.distillation import ObservationHistory
from rsl_rl.env import VecEnv
from rsl_rl.export import inference_policy
from rsl_rl.models import MLPModel, RNNModel
from rsl_rl.modules import ActorConfig, RNNConfig
from rsl_rl.modules.distribution import gaussian_log_prob
from rsl_rl.runners import DistillationRunner, OnPolicyRunner


@pytest.mark.parametrize("dtype", [torch.long, torch.int32, torch.float32, torch.bool])
def test_recurrent_policy_reset_with_integer_dones_clears_only_finished_envs(dtype: torch.dtype) -> None:
    """Isaac Lab's play script passes ``dones`` as long: ``~dones`` would be −1/−2 and scale the state."""
    torch.manual_seed(0)
    actor = RNNModel.from_config(3, 2, RNNConfig(rnn_type="lstm", rnn_hidden_dim=8, hidden_dims=(8,)))
    obs = torch.randn(2, 3)
    fresh = inference_policy(actor, ["policy"])
    first = fresh(obs).clone()
    policy = inference_policy(actor, ["policy"])
    for _ in range(3):
        policy(obs)
    policy.reset(torch.tensor([1, 0]).to(dtype))
    after = policy(obs)
    torch.testing.assert_close(after[0], first[0])  # env 0 starts afresh: same as a new policy
    assert not torch.allclose(after[1], first[1])  # env 1 keeps its memory
    # Twice more: the second and third reset behave like the first.
    for _ in range(2):
        policy(obs)
        policy.reset(torch.tensor([1, 0]).to(dtype))
        torch.testing.assert_close(policy(obs)[0], first[0])


def test_observation_history_reset_with_integer_dones() -> None:
    history = ObservationHistory(2, 3, 1, "cpu")
    history.push(torch.tensor([[1.0], [1.0]]))
    history.push(torch.tensor([[2.0], [2.0]]))
    history.reset(torch.tensor([1, 0]))
    out = history.push(torch.tensor([[5.0], [5.0]]))
    assert out.tolist() == [[5.0, 5.0, 5.0], [1.0, 2.0, 5.0]]
    assert history.start.dtype == torch.bool


def test_model_parameters_are_registered_in_rsl_rl_lib_order() -> None:
    """Adam's state is matched to parameters by position: rsl-rl-lib registers normaliser, distribution, then MLP."""
    actor = MLPModel.from_config(4, 2, ActorConfig(hidden_dims=(8,), obs_normalization=True))
    names = [n for n, _ in actor.named_parameters()]
    assert names == ["distribution.log_std_param", "mlp.0.weight", "mlp.0.bias", "mlp.2.weight", "mlp.2.bias"]


def test_rnn_parameter_names_and_defaults_follow_rsl_rl_lib() -> None:
    cfg = RNNConfig()
    assert (cfg.rnn_type, cfg.rnn_hidden_dim, cfg.rnn_num_layers) == ("lstm", 256, 1)
    actor = RNNModel.from_config(3, 2, RNNConfig(rnn_hidden_dim=8, hidden_dims=(8,)))
    names = [n for n, _ in actor.named_parameters()]
    assert names == [
        "distribution.log_std_param",
        *(f"mlp.{i}.{p}" for i in (0, 2) for p in ("weight", "bias")),
        *(f"rnn.rnn.{p}_l0" for p in ("weight_ih", "weight_hh", "bias_ih", "bias_hh")),
    ], names


def test_state_dicts_of_the_previous_layout_still_load() -> None:
    """Checkpoints written before the rename (``rnn.weight_*``) load into ``rnn.rnn.weight_*``."""
    torch.manual_seed(0)
    actor = RNNModel.from_config(3, 2, RNNConfig(rnn_type="gru", rnn_hidden_dim=8, hidden_dims=(8,)))
    old = {k.replace("rnn.rnn.", "rnn."): v.clone() for k, v in actor.state_dict().items()}
    fresh = RNNModel.from_config(3, 2, RNNConfig(rnn_type="gru", rnn_hidden_dim=8, hidden_dims=(8,)))
    fresh.load_state_dict(old)
    for key, value in actor.state_dict().items():
        torch.testing.assert_close(fresh.state_dict()[key], value)


def test_world_size_above_one_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("WORLD_SIZE", "2")
    with pytest.raises(RuntimeError, match="WORLD_SIZE=2"):
        OnPolicyRunner(PointMassVecEnv(), _cfg(), None, "cpu", show_progress=False)


def test_a_model_class_from_another_module_is_not_silently_replaced() -> None:
    cfg = _cfg()
    cfg["actor"]["class_name"] = "my_package.models:MLPModel"
    with pytest.raises(ValueError, match="my_package.models:MLPModel"):
        OnPolicyRunner(PointMassVecEnv(), cfg, None, "cpu", show_progress=False)
    cfg = _cfg()
    cfg["actor"]["class_name"] = "rsl_rl.models:MLPModel"  # our own class by its full path is fine
    OnPolicyRunner(PointMassVecEnv(), cfg, None, "cpu", show_progress=False)
    cfg["algorithm"]["class_name"] = "my_package.algorithms:PPO"
    with pytest.raises(ValueError, match="my_package.algorithms:PPO"):
        OnPolicyRunner(PointMassVecEnv(), cfg, None, "cpu", show_progress=False)


def _cfg() -> dict:
    cfg = rsl_rl_train_cfg(logger=None)
    cfg["actor"]["hidden_dims"] = cfg["critic"]["hidden_dims"] = [16]
    return cfg


FIXTURES = Path(__file__).parents[1] / "fixtures"


@pytest.mark.parametrize("kind", ["mlp", "rnn"])
def test_format_1_checkpoints_resume_with_their_optimizer_state_on_the_right_parameters(kind: str) -> None:
    """Checkpoints of this library's format 1 (written by commit 5c19ff0, ``tests/fixtures/format_1``) listed the
    optimiser's parameters MLP/RNN first; their Adam state must land on the same-named parameters today."""
    cfg = _cfg()
    cfg["actor"]["hidden_dims"] = cfg["critic"]["hidden_dims"] = [16]
    if kind == "rnn":
        for section in ("actor", "critic"):
            cfg[section].update(class_name="RNNModel", rnn_type="lstm", rnn_hidden_dim=8)
    path = FIXTURES / "format_1" / f"{kind}.pt"
    saved = torch.load(path, weights_only=True)
    assert saved["format_version"] == 1
    old_names = [
        *(f"actor.{n}" for n in _format_1_names(saved["actor_state_dict"])),
        *(f"critic.{n}" for n in _format_1_names(saved["critic_state_dict"])),
    ]
    runner = OnPolicyRunner(PointMassVecEnv(num_envs=8), cfg, None, "cpu", show_progress=False)
    runner.load(path)
    alg = runner.alg
    params = dict(
        [(f"actor.{n}", p) for n, p in alg.actor.named_parameters()]
        + [(f"critic.{n}", p) for n, p in alg.critic.named_parameters()]
    )
    for index, name in enumerate(old_names):
        expected = saved["optimizer_state_dict"]["state"][index]["exp_avg"]
        torch.testing.assert_close(
            alg.optimizer.state[params[name.replace("rnn.", "rnn.rnn.", 1)]]["exp_avg"], expected
        )
    runner.learn(1)  # the fused step runs with the loaded state
    assert all(torch.isfinite(p).all() for p in params.values())


def _format_1_names(state_dict: dict[str, torch.Tensor]) -> list[str]:
    """Parameter names in format 1's registration order: RNN, MLP, distribution (buffers left out)."""
    rank = {"rnn": 0, "mlp": 1, "distribution": 2}
    names = [n for n in state_dict if n.split(".")[0] in rank]
    return sorted(names, key=lambda n: (rank[n.split(".")[0]], list(state_dict).index(n)))


# --- checkpoints and one update of rsl-rl-lib 5.5.1 itself (tests/fixtures/rsl_rl_lib, see its README) -------------

PEER = FIXTURES / "rsl_rl_lib"


class FixtureShapedEnv(VecEnv):
    """An rsl-rl-lib style env with the fixtures' shapes: ``policy`` [8, 5], ``critic`` [8, 7], 3 actions."""

    def __init__(self, num_envs: int = 8) -> None:
        self.num_envs, self.num_actions, self.max_episode_length, self.device = num_envs, 3, 10, "cpu"
        self.cfg: dict = {}
        self.episode_length_buf = torch.zeros(num_envs, dtype=torch.long)
        self.generator = torch.Generator().manual_seed(0)

    def get_observations(self) -> TensorDict:
        critic = torch.randn(self.num_envs, 7, generator=self.generator)
        return TensorDict({"policy": critic[:, :5], "critic": critic}, batch_size=[self.num_envs])

    def step(self, actions: torch.Tensor) -> tuple[TensorDict, torch.Tensor, torch.Tensor, dict]:
        self.episode_length_buf += 1
        time_outs = self.episode_length_buf >= self.max_episode_length
        self.episode_length_buf[time_outs] = 0
        return self.get_observations(), -actions.square().sum(-1), time_outs, {"time_outs": time_outs}


def _probe(name: str) -> dict:
    return torch.load(PEER / f"{name}_probe.pt", weights_only=True)


def test_an_rsl_rl_lib_mlp_checkpoint_acts_the_same_here_and_resumes_with_its_optimizer() -> None:
    probe = _probe("mlp")
    runner = OnPolicyRunner(FixtureShapedEnv(), probe["train_cfg"], None, "cpu", show_progress=False)
    runner.load(PEER / "mlp_checkpoint.pt")  # full load, optimizer included, as Isaac Lab's runner.load(path)
    obs = TensorDict(probe["obs"], batch_size=[20])
    actions = runner.get_inference_policy()(obs)
    assert (actions - probe["actions"]).abs().max() < 1e-5
    values = runner.alg.critic(torch.cat([obs["policy"], obs["critic"]], dim=-1))
    assert (values - probe["values"]).abs().max() < 1e-5
    # Adam's state sits on the parameters rsl-rl-lib saved it for, and the fused step runs with it.
    saved = torch.load(PEER / "mlp_checkpoint.pt", weights_only=True)["optimizer_state_dict"]
    params = [*runner.alg.actor.parameters(), *runner.alg.critic.parameters()]
    for index, param in enumerate(params):
        torch.testing.assert_close(runner.alg.optimizer.state[param]["exp_avg_sq"], saved["state"][index]["exp_avg_sq"])
    assert all(group["fused"] for group in runner.alg.optimizer.param_groups)
    assert float(runner.alg.learning_rate) == pytest.approx(saved["param_groups"][0]["lr"])
    runner.learn(2)
    assert all(torch.isfinite(p).all() for p in params)


def test_an_rsl_rl_lib_lstm_checkpoint_acts_the_same_over_a_sequence_with_long_dones_resets() -> None:
    probe = _probe("rnn")
    runner = OnPolicyRunner(FixtureShapedEnv(), probe["train_cfg"], None, "cpu", show_progress=False)
    runner.load(PEER / "rnn_checkpoint.pt")
    policy = runner.get_inference_policy()
    steps = probe["actions"].shape[0]
    for t in range(steps):
        obs = TensorDict({k: v[t] for k, v in probe["obs"].items()}, batch_size=[4])
        assert (policy(obs) - probe["actions"][t]).abs().max() < 1e-5, t
        if t == probe["reset_after_step"]:
            policy.reset(probe["dones"])  # int64, as Isaac Lab's play script passes them


def test_one_ppo_update_from_identical_weights_and_rollout_matches_rsl_rl_lib() -> None:
    """rsl-rl-lib's recorded rollout (time-outs and terminations inside) fed to our PPO with its initial weights;
    ``timeout_bootstrap="current_value"`` is rsl-rl-lib's r += γ·V(s_t) (ours defaults to the exact V(final_obs))."""
    case = torch.load(PEER / "ppo_update.pt", weights_only=True)
    cfg = dict(case["cfg"])
    cfg["algorithm"] = {**cfg["algorithm"], "timeout_bootstrap": "current_value"}
    runner = OnPolicyRunner(FixtureShapedEnv(), cfg, None, "cpu", show_progress=False)
    alg = runner.alg
    alg.actor.load_state_dict(case["actor_init"])
    alg.critic.load_state_dict(case["critic_init"])
    steps, num_envs = case["actions"].shape[:2]
    with torch.inference_mode():
        for t in range(steps):
            obs = TensorDict({k: v[t] for k, v in case["obs"].items()}, batch_size=[num_envs])
            alg.act(obs)
            s = alg.storage
            s.actions[t].copy_(case["actions"][t])  # rsl-rl-lib's sampled actions replace ours
            s.log_prob[t].copy_(gaussian_log_prob(case["actions"][t], s.action_mean[t], s.action_std[t]))
            next_obs = (
                TensorDict({k: v[t + 1] for k, v in case["obs"].items()}, batch_size=[num_envs])
                if t + 1 < steps
                else TensorDict(case["last_obs"], batch_size=[num_envs])
            )
            alg.process_env_step(next_obs, case["rewards"][t], case["dones"][t], {"time_outs": case["time_outs"][t]})
        alg.compute_returns(TensorDict(case["last_obs"], batch_size=[num_envs]))
    torch.testing.assert_close(alg.storage.values, case["values"].reshape(steps, num_envs), atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(alg.storage.returns, case["returns"].reshape(steps, num_envs), atol=1e-4, rtol=1e-5)
    alg.update()
    for ours, theirs in ((alg.actor, case["actor_final"]), (alg.critic, case["critic_final"])):
        for name, value in ours.state_dict().items():
            torch.testing.assert_close(value, theirs[name], atol=1e-5, rtol=1e-4, msg=name)
    assert float(alg.learning_rate) == pytest.approx(case["learning_rate"])


@pytest.mark.parametrize("kind", ["mlp", "rnn"])
def test_torchscript_export_is_stateful_with_reset_as_rsl_rl_lib(kind: str, tmp_path: Path) -> None:
    """rsl-rl-lib's ``policy.pt``: ``forward(obs) → actions`` and ``reset()``; a recurrent one carries its state."""
    probe = _probe(kind)
    runner = OnPolicyRunner(FixtureShapedEnv(), probe["train_cfg"], None, "cpu", show_progress=False)
    runner.load(PEER / f"{kind}_checkpoint.pt")
    runner.export_policy_to_jit(tmp_path)
    jit = torch.jit.load(str(tmp_path / "policy.pt"))
    assert hasattr(jit, "reset")
    if kind == "mlp":
        jit.reset()
        assert (jit(probe["obs"]["policy"]) - probe["actions"]).abs().max() < 1e-5
        return
    for t in range(probe["reset_after_step"] + 1):  # before any reset: the recorded actions of all 4 envs
        assert (jit(probe["obs"]["policy"][t]) - probe["actions"][t]).abs().max() < 1e-5, t
    jit.reset()  # forgets every env's state, as a fresh policy
    policy = runner.get_inference_policy()
    policy.reset()
    for t in range(probe["reset_after_step"] + 1, probe["actions"].shape[0]):
        obs = probe["obs"]["policy"][t]
        assert (jit(obs) - policy(obs)).abs().max() < 1e-5, t
    assert jit(probe["obs"]["policy"][0][:1]).shape == (1, 3)  # another batch size starts from zeros


def test_an_isaac_lab_distillation_config_trains_after_runner_load_of_the_teacher(tmp_path: Path) -> None:
    """rsl-rl-lib's flow: a ``teacher`` section, ``runner.load(ppo_checkpoint)`` fills the teacher only, ``loss_type``;
    checkpoints hold ``student_state_dict`` and ``teacher_state_dict``."""
    teacher_run = OnPolicyRunner(PointMassVecEnv(num_envs=8), _cfg(), None, "cpu", show_progress=False)
    teacher_run.learn(2)
    teacher_run.save(tmp_path / "teacher.pt")
    model = {"class_name": "MLPModel", "hidden_dims": [16], "activation": "elu", "obs_normalization": True}
    gaussian = {"class_name": "GaussianDistribution", "init_std": 1.0, "std_type": "scalar"}
    cfg = {
        "class_name": "DistillationRunner",
        "num_steps_per_env": 8,
        "max_iterations": 2,
        "save_interval": 50,
        "experiment_name": "point_mass_distillation",
        "obs_groups": {"student": ["policy"], "teacher": ["policy"]},
        "logger": None,
        "algorithm": {
            "class_name": "Distillation",
            "num_learning_epochs": 2,
            "learning_rate": 1e-3,
            "gradient_length": 15,
            "max_grad_norm": 1.0,
            "optimizer": "adam",
            "loss_type": "huber",
            "rnd_cfg": None,
            "symmetry_cfg": None,
        },
        "student": {**model, "distribution_cfg": gaussian},
        "teacher": {**model, "hidden_dims": [16], "distribution_cfg": gaussian},
    }
    runner = DistillationRunner(PointMassVecEnv(num_envs=8), cfg, None, "cpu", show_progress=False)
    assert runner.alg.cfg.loss == "huber" and not runner.alg.teacher_loaded
    with pytest.raises(ValueError, match="teacher has no trained weights"):
        runner.learn(1)
    student_before = {k: v.clone() for k, v in runner.alg.student.state_dict().items()}
    runner.load(tmp_path / "teacher.pt")  # a PPO checkpoint: the teacher only, not the student, not the iteration
    assert runner.alg.teacher_loaded and runner.current_learning_iteration == 0
    for key, value in teacher_run.alg.actor.state_dict().items():
        torch.testing.assert_close(runner.alg.teacher.state_dict()[key], value)
    for key, value in student_before.items():
        torch.testing.assert_close(runner.alg.student.state_dict()[key], value)
    runner.learn(2)
    runner.save(tmp_path / "distilled.pt")
    saved = torch.load(tmp_path / "distilled.pt", weights_only=True)
    assert {"student_state_dict", "teacher_state_dict", "optimizer_state_dict"} <= set(saved)
    assert "actor_state_dict" not in saved
    again = DistillationRunner(PointMassVecEnv(num_envs=8), cfg, None, "cpu", show_progress=False)
    again.load(tmp_path / "distilled.pt")  # a distillation checkpoint: student, teacher, optimizer, iteration
    assert again.alg.teacher_loaded and again.current_learning_iteration == runner.current_learning_iteration
    for key, value in runner.alg.student.state_dict().items():
        torch.testing.assert_close(again.alg.student.state_dict()[key], value)
    cfg["algorithm"]["rnd_cfg"] = {"weight": 1.0}
    with pytest.raises(ValueError, match="rnd_cfg"):
        DistillationRunner(PointMassVecEnv(num_envs=8), cfg, None, "cpu", show_progress=False)


def test_provided_rsl_rl_lib_metadata_satisfies_version_checks_and_pip(tmp_path: Path) -> None:
    """Frameworks check ``importlib.metadata.version("rsl-rl-lib")``; pip must see the requirement satisfied."""
    import importlib.metadata
    import subprocess
    import sys

    from packaging.requirements import Requirement
    from packaging.version import Version

    from rsl_rl.cli.main import main

    assert main(["provide-rsl-rl-lib", "--site-dir", str(tmp_path)]) == 0
    dist = next(iter(importlib.metadata.distributions(name="rsl-rl-lib", path=[str(tmp_path)])))
    assert Version(dist.version) >= Version("5.5.1")
    assert Requirement("rsl-rl-lib==5.5.1").specifier.contains(dist.version)
    assert Requirement("rsl-rl-lib>=5.0.0").specifier.contains(dist.version)
    listed = subprocess.run(
        [sys.executable, "-m", "pip", "list", "--path", str(tmp_path), "--format", "freeze"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert "rsl-rl-lib==5.5.1+forge" in listed
    record = (Path(dist._path) / "RECORD").read_text().split()  # type: ignore[attr-defined]
    assert {line.split(",")[0].split("/")[-1] for line in record} == {"METADATA", "INSTALLER", "RECORD"}
    # Run twice: replaces its own; a real rsl-rl-lib's metadata is refused with the reason.
    assert main(["provide-rsl-rl-lib", "--site-dir", str(tmp_path)]) == 0
    (tmp_path / "rsl_rl_lib-5.5.1.dist-info").mkdir()
    with pytest.raises(ValueError, match="real rsl-rl-lib"):
        from rsl_rl.cli.provide import provide_rsl_rl_lib

        provide_rsl_rl_lib(tmp_path)


class FrameworkRunner(OnPolicyRunner):
    """A runner subclass written the way Isaac Lab / mjlab projects write them against rsl-rl-lib 5.x."""

    def save(self, path: str, infos: dict | None = None) -> None:  # type: ignore[override]
        saved = self.alg.save()
        saved["iter"] = self.current_learning_iteration
        saved["infos"] = {**(infos or {}), "env_state": {"common_step_counter": 123}}
        torch.save(saved, path)
        policy = self.alg.get_policy()
        onnx_model = policy.as_onnx(verbose=False)
        onnx_model.to("cpu").eval()
        torch.onnx.export(
            onnx_model,
            onnx_model.get_dummy_inputs(),
            str(Path(path).with_suffix(".onnx")),
            input_names=onnx_model.input_names,
            output_names=onnx_model.output_names,
            dynamic_axes={},
            dynamo=False,
        )

    def load(self, path: str, load_cfg: dict | None = None, strict: bool = True, map_location: str | None = None):  # type: ignore[override]  # noqa: ANN201
        loaded = torch.load(path, weights_only=False, map_location=map_location)
        if self.alg.load(loaded, load_cfg, strict):
            self.current_learning_iteration = loaded["iter"]
        return loaded["infos"]


def test_a_framework_style_runner_subclass_trains_saves_loads_and_exports(tmp_path: Path) -> None:
    import onnxruntime as ort

    cfg = _cfg()
    runner = FrameworkRunner(PointMassVecEnv(), cfg, str(tmp_path), "cpu", show_progress=False)
    runner.add_git_repo_to_log(__file__)
    runner.learn(num_learning_iterations=3, init_at_random_ep_len=True)
    saved = sorted(p.name for p in tmp_path.glob("model_*.pt"))
    assert saved == ["model_0.pt", "model_2.pt"], saved
    other = FrameworkRunner(PointMassVecEnv(), _cfg(), None, "cpu", show_progress=False)
    infos = other.load(str(tmp_path / "model_2.pt"))
    assert infos["env_state"]["common_step_counter"] == 123
    for key, value in runner.alg.actor.state_dict().items():
        torch.testing.assert_close(other.alg.actor.state_dict()[key], value)
    obs = torch.randn(1, 4)
    session = ort.InferenceSession(str(tmp_path / "model_2.onnx"))
    (actions,) = session.run(None, {session.get_inputs()[0].name: obs.numpy()})
    expected = other.get_inference_policy()(obs).detach().numpy()
    assert abs(actions - expected).max() < 1e-5
    other.learn(1)  # continues with the loaded optimizer state


PEER_PYTHON = Path(__file__).parents[2] / "bench" / ".venv-rsl_rl" / "bin" / "python"


@pytest.mark.skipif(
    not PEER_PYTHON.exists(), reason="needs rsl-rl-lib 5.5.1 in bench/.venv-rsl_rl (bench/peer_venv.py)"
)
@pytest.mark.parametrize("kind", ["mlp", "rnn"])
def test_our_checkpoints_load_in_rsl_rl_lib_itself_and_act_the_same(kind: str, tmp_path: Path) -> None:
    """The other direction: rsl-rl-lib 5.5.1's own runner loads our checkpoint (optimizer included), acts exactly as
    ours and trains on from it (tests/fixtures/rsl_rl_lib/ours_to_theirs.py, run in its venv)."""
    import subprocess

    probe = _probe(kind)
    runner = OnPolicyRunner(FixtureShapedEnv(), probe["train_cfg"], None, "cpu", show_progress=False)
    runner.learn(3)
    runner.save(tmp_path / "ours.pt")
    policy = runner.get_inference_policy()
    if kind == "mlp":
        ours = policy(TensorDict(probe["obs"], batch_size=[20]))
    else:
        policy.reset()
        steps = probe["actions"].shape[0]
        ours = torch.stack(
            [policy(TensorDict({k: v[t] for k, v in probe["obs"].items()}, batch_size=[4])) for t in range(steps)]
        )
    torch.save({"train_cfg": probe["train_cfg"], "obs": probe["obs"]}, tmp_path / "probe.pt")
    script = PEER / "ours_to_theirs.py"
    subprocess.run(
        [
            str(PEER_PYTHON),
            str(script),
            str(tmp_path / "ours.pt"),
            str(tmp_path / "probe.pt"),
            str(tmp_path / "out.pt"),
        ],
        check=True,
        capture_output=True,
    )
    theirs = torch.load(tmp_path / "out.pt", weights_only=True)
    assert theirs["load_error"] is None and theirs["learn_error"] is None, theirs
    assert theirs["iter_after_load"] == 2  # rsl-rl-lib's iter: the index of the last of our 3 iterations
    assert (theirs["actions"].reshape(ours.shape) - ours.detach()).abs().max() < 1e-6
