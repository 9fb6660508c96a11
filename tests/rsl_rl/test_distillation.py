"""Distillation: hand-computed losses, a student that matches a real PPO teacher (means, std, return under partial
observation), export parity of the student and a CLI smoke run."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch
from memory import PartialPendulum

import tasks.classic  # noqa: F401 -- registers pendulum
from deploy.export import read_metadata
from rsl_rl.algorithms.distillation import DistillationConfig, ObservationHistory
from rsl_rl.algorithms.losses import (
    adaptive_kl_loss,
    adaptive_kl_weights,
    forward_kl_loss,
    huber_loss,
    mse_loss,
    reverse_kl_loss,
)
from rsl_rl.cli.main import main
from rsl_rl.export import export_onnx
from rsl_rl.models import RNNModel
from rsl_rl.modules import ActorConfig, RNNConfig
from rsl_rl.modules.distribution import DistributionConfig
from rsl_rl.runners import DistillationRunner, DistillationTrainConfig
from tasks.classic.pendulum import PendulumCfg, PendulumEnv

# --- losses: hand values ---------------------------------------------------------------------------------------------

S_MEAN = torch.tensor([[0.0, 1.0], [2.0, -1.0]])
T_MEAN = torch.tensor([[1.0, 1.0], [0.0, 3.0]])
S_STD = torch.tensor([1.0, 2.0])
T_STD = torch.tensor([[0.5, 2.0], [1.0, 1.0]])


def test_mse_and_huber_hand_values() -> None:
    torch.testing.assert_close(mse_loss(S_MEAN, T_MEAN), torch.tensor([0.5, 10.0]))  # (1+0)/2, (4+16)/2
    # errors 1, 0 | 2, 4 with δ=1: ½·1 → 0.5, 0 | 1.5, 3.5  → means 0.25, 2.5
    torch.testing.assert_close(huber_loss(S_MEAN, T_MEAN, delta=1.0), torch.tensor([0.25, 2.5]))
    torch.testing.assert_close(huber_loss(S_MEAN, T_MEAN, delta=10.0), mse_loss(S_MEAN, T_MEAN) / 2)


def test_gaussian_kl_closed_form_hand_value_and_torch_distributions() -> None:
    # Row 0, dim 0: KL(N(1, .5²) ‖ N(0, 1²)) = log(1/.5) + (.25 + 1)/2 − ½ = log 2 + 0.125; dim 1: equal → 0.
    forward = forward_kl_loss(S_MEAN, S_STD, T_MEAN, T_STD)
    assert forward[0].item() == pytest.approx(math.log(2.0) + 0.125, abs=1e-6)
    normal = torch.distributions.Normal
    s_std = S_STD.expand_as(S_MEAN)
    ref_f = torch.distributions.kl_divergence(normal(T_MEAN, T_STD), normal(S_MEAN, s_std)).sum(-1)
    ref_r = torch.distributions.kl_divergence(normal(S_MEAN, s_std), normal(T_MEAN, T_STD)).sum(-1)
    torch.testing.assert_close(forward, ref_f)
    torch.testing.assert_close(reverse_kl_loss(S_MEAN, S_STD, T_MEAN, T_STD), ref_r)


def test_adaptive_kl_weights_hand_values_and_no_gradient_through_weights() -> None:
    w_f, w_r = adaptive_kl_weights(S_MEAN, S_STD, T_MEAN, T_STD)
    # Row 0: g_mean = 1 + 0, g_std = .5 + 0 → 2/3, 1/3. Row 1: g_mean = 2 + 4, g_std = 0 + 1 → 6/7, 1/7.
    torch.testing.assert_close(w_f, torch.tensor([2 / 3, 6 / 7]))
    torch.testing.assert_close(w_r, torch.tensor([1 / 3, 1 / 7]))
    mean = S_MEAN.clone().requires_grad_(True)
    std = S_STD.clone().requires_grad_(True)
    adaptive_kl_loss(mean, std, T_MEAN, T_STD).sum().backward()
    assert mean.grad is not None and std.grad is not None
    w_f, w_r = adaptive_kl_weights(mean, std, T_MEAN, T_STD)
    assert not w_f.requires_grad and not w_r.requires_grad
    mean2 = S_MEAN.clone().requires_grad_(True)
    std2 = S_STD.clone().requires_grad_(True)
    fixed = w_f * forward_kl_loss(mean2, std2, T_MEAN, T_STD) + w_r * reverse_kl_loss(mean2, std2, T_MEAN, T_STD)
    fixed.sum().backward()
    torch.testing.assert_close(mean.grad, mean2.grad)
    torch.testing.assert_close(std.grad, std2.grad)
    # Equal Gaussians: weights 0 (no 0/0), loss 0.
    w_f, w_r = adaptive_kl_weights(T_MEAN, T_STD, T_MEAN, T_STD)
    assert torch.equal(w_f, torch.zeros(2)) and torch.equal(w_r, torch.zeros(2))


def test_config_validation_and_history() -> None:
    with pytest.raises(ValueError, match="algorithm.loss"):
        DistillationConfig(loss="l1")
    with pytest.raises(ValueError, match=r"allowed: \['Distillation'\]"):
        DistillationConfig(class_name="PPO")
    history = ObservationHistory(2, 3, 1, "cpu")
    torch.testing.assert_close(history.push(torch.tensor([[1.0], [5.0]])), torch.tensor([[1.0] * 3, [5.0] * 3]))
    torch.testing.assert_close(history.push(torch.tensor([[2.0], [6.0]])), torch.tensor([[1.0, 1, 2], [5, 5, 6]]))
    history.reset(torch.tensor([False, True]))
    torch.testing.assert_close(history.push(torch.tensor([[3.0], [7.0]])), torch.tensor([[1.0, 2, 3], [7, 7, 7]]))


# --- a real teacher --------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def teacher(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A pendulum PPO teacher (~2 s: the default config reaches ≥ −200 in ~30 iterations)."""
    run = tmp_path_factory.mktemp("teacher")
    argv = ["train", "--task", "pendulum", "--run-dir", str(run), "--logger", "none", "--max-iterations", "30"]
    assert main(argv) == 0
    return run / "model_29.pt"


def _distill(teacher: Path, student: ActorConfig, groups: list[str], iterations: int, **alg: object):  # noqa: ANN202
    torch.manual_seed(0)
    env = PartialPendulum(PendulumEnv(PendulumCfg(num_envs=64), seed=0))
    cfg = DistillationTrainConfig(
        num_steps_per_env=32,
        logger="none",
        teacher_checkpoint=str(teacher),
        obs_groups={"student": groups},
        algorithm=DistillationConfig(**alg),  # type: ignore[arg-type]
        student=student,
    )
    runner = DistillationRunner(env, cfg, None, "cpu", show_progress=False)
    runner.learn(iterations)
    eval_env = PartialPendulum(PendulumEnv(PendulumCfg(num_envs=32), seed=1))
    return runner, float(runner.evaluate(eval_env).mean()), float(runner.teacher_returns(eval_env).mean())


def _mlp(init_std: float = 0.5) -> ActorConfig:
    return ActorConfig(hidden_dims=(64, 64), activation="tanh", distribution_cfg=DistributionConfig(init_std=init_std))


@pytest.mark.slow
def test_mse_student_matches_teacher_means(teacher: Path) -> None:
    runner, student, teacher_return = _distill(teacher, _mlp(), ["policy"], 100, loss="mse")
    last = runner.logger.history[-1]
    print(f"MSE student: |μ_S − μ_T| {last['Loss/mean_abs_error']:.4f}, return {student:.1f} vs {teacher_return:.1f}")
    assert last["Loss/mean_abs_error"] < 0.02  # on the states the student visits; measured 0.002
    assert student >= teacher_return - 80.0  # measured −247 vs −233
    assert runner.alg.student.std().item() == pytest.approx(0.5)  # MSE does not train the std


@pytest.mark.slow
@pytest.mark.parametrize("loss", ["kl_forward", "kl_adaptive"])
def test_kl_student_matches_teacher_mean_and_std(teacher: Path, loss: str) -> None:
    runner, _, _ = _distill(teacher, _mlp(0.5), ["policy"], 80, loss=loss, teacher_std=0.2)
    last = runner.logger.history[-1]
    std = runner.alg.student.std().item()
    print(f"{loss} student: |μ_S − μ_T| {last['Loss/mean_abs_error']:.4f}, std {std:.3f} (teacher 0.2)")
    assert last["Loss/mean_abs_error"] < 0.05
    assert std == pytest.approx(0.2, abs=0.03)


@pytest.mark.slow
def test_recurrent_student_on_partial_observations_approaches_teacher(teacher: Path) -> None:
    """The student sees cos θ, sin θ only (no θ̇); a GRU infers the velocity from the angle history."""
    student = RNNConfig(
        rnn_type="gru",
        rnn_hidden_dim=32,
        hidden_dims=(64,),
        activation="tanh",
        distribution_cfg=DistributionConfig(init_std=0.5),
    )
    runner, ret, teacher_return = _distill(teacher, student, ["student"], 80, learning_rate=3e-3, gradient_length=0)
    print(f"GRU student on partial obs: return {ret:.1f} vs teacher {teacher_return:.1f}")
    assert ret >= teacher_return - 100.0  # measured −253 vs −233


def test_history_student_and_teacher_rollout_schedule(teacher: Path) -> None:
    runner, _, _ = _distill(
        teacher, _mlp(), ["student"], 3, history_length=3, teacher_rollout_prob=0.6, teacher_rollout_anneal_iterations=2
    )
    assert runner.alg.student.obs_dim == 6
    probs = [r["Distillation/teacher_rollout_prob"] for r in runner.logger.history]
    assert probs == pytest.approx([0.6, 0.3, 0.0])


@pytest.mark.parametrize("rnn_type", ["gru", "lstm"])
def test_exported_student_onnx_equals_torch(teacher: Path, tmp_path: Path, rnn_type: str) -> None:
    import onnxruntime as ort

    student = RNNConfig(rnn_type=rnn_type, rnn_hidden_dim=16, hidden_dims=(32,), obs_normalization=True)
    runner, _, _ = _distill(teacher, student, ["student"], 2, gradient_length=8)
    runner.export_policy_to_onnx(tmp_path)
    actor = runner.alg.get_policy()
    assert isinstance(actor, RNNModel)
    actor.eval()
    session = ort.InferenceSession(str(tmp_path / "policy.onnx"), providers=["CPUExecutionProvider"])
    obs = torch.randn(50, 4, 2)
    hidden = actor.initial_hidden(4)
    names = ["h_in"] if rnn_type == "gru" else ["h_in", "c_in"]
    state = [h.numpy() for h in hidden]
    worst = 0.0
    with torch.no_grad():
        for x in obs:
            expected, hidden = actor.step(x, hidden)
            got, *state = session.run(None, {"obs": x.numpy(), **dict(zip(names, state, strict=True))})
            worst = max(worst, float(np.abs(got - expected.numpy()).max()))
    assert worst <= 1e-5
    export_onnx(actor, tmp_path / "again.onnx")  # the plain export helper accepts the student too


def test_cli_distill_smoke(teacher: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    base = ["distill", "--task", "pendulum", "--teacher", str(teacher), "--num-envs", "16", "--max-iterations", "3"]
    run = tmp_path / "gru"
    argv = [*base, "--run-dir", str(run), "--student-rnn", "gru", "--loss", "kl_adaptive", "--logger", "none"]
    assert main(argv) == 0
    assert "distilled 3 iterations" in capsys.readouterr().out
    summary = json.loads((run / "summary.json").read_text())
    assert summary["iterations"] == 3 and summary["exported"]["parity_max_abs_diff"] <= 1e-5
    assert (run / "exported" / "policy.onnx").stat().st_size > 0
    state = torch.load(run / "model_2.pt", weights_only=True)
    assert "teacher_state_dict" in state and state["obs_groups"]["teacher"] == ["policy"]
    assert state["config"]["algorithm"]["loss"] == "kl_adaptive"
    # `rsl-rl export` rebuilds the recurrent student from the distillation checkpoint alone.
    assert main(["export", "--checkpoint", str(tmp_path / "gru"), "--out-dir", str(tmp_path / "re")]) == 0
    meta = read_metadata(tmp_path / "re" / "policy.onnx")
    assert meta["recurrent"]["type"] == "gru" and meta["observation"]["groups"] == ["policy"]
    run = tmp_path / "history"
    assert main([*base, "--run-dir", str(run), "--history-length", "2", "--loss", "huber"]) == 0
    assert (run / "exported" / "policy.onnx").exists()
    assert main(["export", "--checkpoint", str(run), "--out-dir", str(tmp_path / "re2")]) == 0
    meta = read_metadata(tmp_path / "re2" / "policy.onnx")  # one pendulum obs per step, 2 steps stacked
    assert meta["observation"]["dim"] == 3 and meta["history"]["length"] == 2
    assert main([*base, "--run-dir", str(tmp_path / "bad"), "--loss", "l1"]) == 2


# --- non-finite labels: skipped, counted, reported ---------------------------------------------------------------


class NaNTeacherPendulum(PartialPendulum):
    """PartialPendulum whose teacher group (``policy``) holds NaN in env 0 at the chosen acting steps (counted from
    0 over the whole run), and in every env from ``all_from`` on; the student group stays finite."""

    def __init__(self, env: PendulumEnv, nan_steps: set[int], all_from: int | None = None) -> None:
        super().__init__(env)
        self.nan_steps, self.all_from, self.t = nan_steps, all_from, 0

    def step(self, actions: torch.Tensor):  # noqa: ANN201
        obs, reward, terminated, truncated, extras = super().step(actions)
        self.t += 1  # obs is the observation the student acts on at step t
        if self.t in self.nan_steps:
            obs["policy"][0] = float("nan")
        if self.all_from is not None and self.t >= self.all_from:
            obs["policy"][:] = float("nan")
        return obs, reward, terminated, truncated, extras


def _nan_runner(teacher: Path, env: NaNTeacherPendulum, student: ActorConfig) -> DistillationRunner:
    torch.manual_seed(0)
    cfg = DistillationTrainConfig(
        num_steps_per_env=32,
        logger="none",
        teacher_checkpoint=str(teacher),
        obs_groups={"student": ["student"]},
        algorithm=DistillationConfig(num_learning_epochs=3, num_mini_batches=4, gradient_length=8),
        student=student,
    )
    return DistillationRunner(env, cfg, None, "cpu", show_progress=False)


STUDENTS = {
    "mlp": _mlp(),
    "gru": RNNConfig(
        rnn_type="gru", rnn_hidden_dim=16, hidden_dims=(32,), distribution_cfg=DistributionConfig(init_std=0.5)
    ),
}


@pytest.mark.parametrize("student", ["mlp", "gru"])
def test_nan_labels_skip_and_count_their_mini_batches_every_time(
    teacher: Path, student: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """One NaN label in each of three iterations: every epoch skips exactly the one mini-batch that holds it (the
    second and third time as the first), training goes on with finite losses and parameters, and each iteration
    warns."""
    env = NaNTeacherPendulum(PendulumEnv(PendulumCfg(num_envs=16), seed=0), nan_steps={5, 40, 70})
    runner = _nan_runner(teacher, env, STUDENTS[student])
    runner.learn(3)
    for record in runner.logger.history:
        assert record["discarded_steps"] == 3  # one mini-batch per epoch
        assert math.isfinite(record["Loss/distillation"]) and math.isfinite(record["Loss/mean_abs_error"])
    assert all(torch.isfinite(p).all() for p in runner.alg.student.parameters())
    err = capsys.readouterr().err
    for it in (1, 2, 3):
        assert f"iteration {it}: 3 mini-batches had non-finite gradients and were discarded" in err


@pytest.mark.parametrize("student", ["mlp", "gru"])
def test_an_iteration_without_a_finite_mini_batch_stops_with_a_clear_error(teacher: Path, student: str) -> None:
    """From step 64 (iteration 3) every label is NaN: iterations 1 and 2 train, iteration 3 discards every mini-batch
    (the parameters stay those of iteration 2) and the runner raises, naming the iteration and the loss."""
    env = NaNTeacherPendulum(PendulumEnv(PendulumCfg(num_envs=16), seed=0), nan_steps=set(), all_from=64)
    runner = _nan_runner(teacher, env, STUDENTS[student])
    runner.learn(2)
    after_two = [p.detach().clone() for p in runner.alg.student.parameters()]
    with pytest.raises(FloatingPointError, match=r"iteration 3: non-finite loss .*Loss/distillation"):
        runner.learn(1)
    assert all(torch.equal(a, b) for a, b in zip(after_two, runner.alg.student.parameters(), strict=True))
    # It stays an error on later iterations too.
    with pytest.raises(FloatingPointError, match=r"iteration 4: non-finite loss"):
        runner.learn(1)


# --- exact resume ----------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("student", ["gru", "lstm", "history"])
def test_distillation_resume_equals_uninterrupted_run(teacher: Path, tmp_path: Path, student: str) -> None:
    """The student's and teacher's hidden states (GRU/LSTM student) and the observation history (MLP-history
    student) are part of the checkpoint: a run resumed from iteration 2 ends with the uninterrupted run's student
    and optimiser state, and the same memory."""
    from rsl_rl.cli.run_support import seed_everything

    def runner(log_dir: Path | None, seed: int) -> DistillationRunner:
        seed_everything(seed, deterministic=True)
        history = 3 if student == "history" else 1
        rnn = RNNConfig(rnn_type=student, rnn_hidden_dim=16, hidden_dims=(16,)) if student != "history" else None
        cfg = DistillationTrainConfig(
            num_steps_per_env=8,
            save_interval=1000,
            logger="none",
            teacher_checkpoint=str(teacher),
            obs_groups={"student": ["policy"]},
            algorithm=DistillationConfig(history_length=history, num_mini_batches=2, num_learning_epochs=2),
            student=rnn or _mlp(),
        )
        env = PendulumEnv(PendulumCfg(num_envs=16), seed=seed)
        return DistillationRunner(env, cfg, log_dir, "cpu", show_progress=False)

    straight = runner(None, seed=3)
    straight.learn(4)
    first = runner(tmp_path, seed=3)
    first.learn(2)
    resumed = runner(None, seed=999)
    resumed.load(tmp_path / "model_1.pt")
    resumed.learn(2)
    a, b = straight.alg.student.state_dict(), resumed.alg.student.state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a)
    state, other = straight.alg.optimizer.state_dict()["state"], resumed.alg.optimizer.state_dict()["state"]
    assert all(torch.equal(state[k]["exp_avg"], other[k]["exp_avg"]) for k in state)
    for name, hidden in straight.alg.hidden.items():
        assert all(torch.equal(x, y) for x, y in zip(hidden, resumed.alg.hidden[name], strict=True)), name
    if student == "history":
        assert straight.alg.history is not None and resumed.alg.history is not None
        assert torch.equal(straight.alg.history.buffer, resumed.alg.history.buffer)
    else:
        assert straight.alg.hidden["student"][0].abs().sum() > 0
