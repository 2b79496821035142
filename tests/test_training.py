"""The training objective, the variance search, learning, resuming and evaluation."""

from __future__ import annotations

import errno
import math
import os
import signal
from dataclasses import replace
from pathlib import Path

import pytest
import torch

from bd3lm_core import BD3LMError, load_network
from bd3lm_core.training import Trainer
from bd3lm_core.training import trainer as trainer_module
from bd3lm_core.training.data import TextOptions, clean_text, make_rows, split_documents, split_tail
from bd3lm_core.training.evaluation import candidate_windows, nelbo, pick_window
from bd3lm_core.training.objective import block_losses, sample_block_times, token_losses
from model_factory import make_model_folder, toy_settings


def test_token_losses_equal_the_hand_computed_nelbo() -> None:
    mask = 4
    logits = torch.tensor([[[1.0, 2.0, 0.5, -1.0, 3.0], [0.0, 0.0, 1.0, 2.0, 5.0]]])
    x0 = torch.tensor([[1, 3]])
    xt = torch.tensor([[mask, 3]])  # first token masked, second kept
    t = torch.tensor([[0.25, 0.25]])
    losses = token_losses(logits, xt, x0, t, mask)
    # -log softmax over the 4 real ids (the mask id never predicted), weighted by 1/t
    expected_first = -(2.0 - math.log(math.exp(1.0) + math.exp(2.0) + math.exp(0.5) + math.exp(-1.0))) / 0.25
    assert losses[0, 0].item() == pytest.approx(expected_first, rel=1e-6)
    assert losses[0, 1].item() == 0.0


def test_block_times_are_constant_per_block_and_stratified() -> None:
    t = sample_block_times(4, 8, 0.3, 0.8, torch.Generator().manual_seed(0))
    assert t.shape == (4, 8)
    assert t.min() >= 0.3 and t.max() <= 0.8
    strata = ((t.flatten() - 0.3) / 0.5 * 32).floor().sort().values  # antithetic: one draw per 1/32 of the range
    assert torch.equal(strata, torch.arange(32.0))


def test_block_size_one_is_exact_autoregression(tmp_path: Path) -> None:
    model = load_network(make_model_folder(tmp_path, block_size=1, model_length=16))
    x0 = torch.randint(0, model.config.mask_id, (2, 16), generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        losses, t = block_losses(model, x0, 0.3, 0.8)
        xt = torch.full_like(x0, model.config.mask_id)
        logits = model.forward_train(xt, x0)
    logits[..., model.config.mask_id] = -math.inf
    nll = torch.nn.functional.cross_entropy(logits.transpose(1, 2), x0, reduction="none")
    assert torch.all(t == 1.0)
    assert torch.allclose(losses, nll, atol=1e-5)
    assert nelbo(model, x0).nelbo_per_token == pytest.approx(nll.mean().item(), rel=1e-5)


def test_variance_search_picks_the_quietest_window() -> None:
    windows = candidate_windows()
    assert len(windows) == 11 + 9 + 7 + 5 + 3
    assert all(0 <= a < b <= 1 and round(b - a, 2) in (0.5, 0.6, 0.7, 0.8, 0.9) for a, b in windows)
    target = (0.3, 0.8)

    def synthetic(window):  # noise grows with the distance from the target window
        spread = 0.1 + abs(window[0] - target[0]) + abs(window[1] - target[1])
        return torch.randn(500, generator=torch.Generator().manual_seed(1)) * spread

    best, variances = pick_window(windows, synthetic)
    assert best == target
    assert variances[target] == min(variances.values())


def test_document_rules_and_rows() -> None:
    text = "One story.\n\nIts second paragraph.\nA new story.\n"
    assert split_documents(text, "newline") == ["One story.\n\nIts second paragraph.", "A new story."]
    assert split_documents(text, "blank") == ["One story.", "Its second paragraph.\nA new story."]
    assert split_documents("a<|endoftext|>b", "marker:<|endoftext|>") == ["a", "b"]
    fixed = clean_text("She said, â€œhi.â€ It’s", TextOptions(fix_mojibake=True, ascii_punctuation=True))
    assert fixed == "She said, \"hi.\" It's"
    head, tail = split_tail(["aaaa", "bbbb", "cccc"], 6)
    assert head == ["aaaa"] and tail == ["bbbb", "cccc"]
    rows = make_rows([[1, 2, 3], [4, 5]], length=4, bos_id=0, eos_id=0)
    assert rows.tolist() == [[0, 1, 2, 3], [0, 0, 4, 5]]


def test_a_few_dozen_steps_lower_the_held_out_loss(tmp_path: Path) -> None:
    trainer = Trainer(toy_settings(tmp_path), report=lambda _: None)
    before = nelbo(trainer.model, trainer.held_rows, samples=2).nelbo_per_token
    trainer.run()
    after = nelbo(trainer.ema, trainer.held_rows, samples=2).nelbo_per_token
    assert after < 0.8 * before
    # the run folder is a model in the published layout
    reloaded = load_network(Path(trainer.settings.out))
    for a, b in zip(reloaded.state_dict().values(), trainer.ema.state_dict().values()):
        assert torch.equal(a, b)


def test_resume_gives_the_same_weights(tmp_path: Path) -> None:
    straight = Trainer(toy_settings(tmp_path / "a", steps=12, eval_every=6), report=lambda _: None)
    straight.run()
    first = Trainer(toy_settings(tmp_path / "b", steps=6, eval_every=6), report=lambda _: None)
    first.run()
    resumed = Trainer(toy_settings(tmp_path / "b", steps=12, eval_every=6), resume=True, report=lambda _: None)
    assert resumed.step == 6
    resumed.run()
    for name, value in straight.model.state_dict().items():
        assert torch.equal(value, resumed.model.state_dict()[name]), name
    for name, value in straight.ema.state_dict().items():
        assert torch.equal(value, resumed.ema.state_dict()[name]), name


def test_the_best_evaluation_is_kept(tmp_path: Path, monkeypatch) -> None:
    trainer = Trainer(toy_settings(tmp_path, steps=6, eval_every=2), report=lambda _: None)
    scores = iter([3.0, 2.0, 2.5])  # the second evaluation is the best
    snapshots = []

    def fake_evaluate() -> float:
        snapshots.append({k: v.clone() for k, v in trainer.ema.state_dict().items()})
        return next(scores)

    monkeypatch.setattr(trainer, "evaluate", fake_evaluate)
    trainer.run()
    best = load_network(Path(trainer.settings.out) / "best").state_dict()
    assert any(not torch.equal(snapshots[1][k], snapshots[2][k]) for k in best)  # the weights did move after it
    for name, value in snapshots[1].items():
        assert torch.equal(best[name], value), name
    assert trainer.best == 2.0
    assert Trainer(toy_settings(tmp_path, steps=6, eval_every=2), resume=True, report=lambda _: None).best == 2.0


def test_an_unwritable_out_folder_fails_before_any_work(tmp_path: Path) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    with pytest.raises(BD3LMError, match="cannot write to .*pass an --out folder"):
        Trainer(toy_settings(tmp_path, out=str(blocker / "run")), report=lambda _: None)


def test_a_missing_tokenizer_names_the_option(tmp_path: Path) -> None:
    with pytest.raises(BD3LMError, match="--tokenizer .*missing.json does not exist"):
        Trainer(toy_settings(tmp_path, tokenizer=str(tmp_path / "missing.json")), report=lambda _: None)


def test_a_full_disk_keeps_the_last_save_and_says_to_resume(tmp_path: Path, monkeypatch) -> None:
    trainer = Trainer(toy_settings(tmp_path, steps=4, eval_every=2), report=lambda _: None)
    real_fsync = os.fsync
    saved: dict[str, bytes] = {}

    def fsync_until_full(fd: int) -> None:  # a full disk surfaces when the data is flushed
        if trainer.step >= 4:
            if not saved:  # what the save at step 2 left
                saved.update({p.name: p.read_bytes() for p in run.iterdir() if p.is_file()})
            raise OSError(errno.ENOSPC, "No space left on device")
        real_fsync(fd)

    run = Path(trainer.settings.out)
    monkeypatch.setattr(os, "fsync", fsync_until_full)
    with pytest.raises(BD3LMError, match="could not save step 4 .*No space left on device.*--resume"):
        trainer.run()
    monkeypatch.setattr(os, "fsync", real_fsync)
    assert {p.name: p.read_bytes() for p in run.iterdir() if p.is_file()} == saved  # no temporary file left either
    resumed = Trainer(toy_settings(tmp_path, steps=4, eval_every=2), resume=True, report=lambda _: None)
    assert resumed.step == 2  # the save before the failed one is whole


def test_ctrl_c_during_a_save_waits_for_it_then_stops_the_run(tmp_path: Path, monkeypatch) -> None:
    trainer = Trainer(toy_settings(tmp_path, steps=6, eval_every=2), report=lambda _: None)
    real_save_state = trainer_module.save_state

    def save_state_pressing_ctrl_c(*args, **kwargs) -> None:
        os.kill(os.getpid(), signal.SIGINT)  # a second Ctrl+C, in the middle of the save
        real_save_state(*args, **kwargs)

    monkeypatch.setattr(trainer_module, "save_state", save_state_pressing_ctrl_c)
    assert trainer.run() == trainer_module.INTERRUPTED
    assert trainer.step == 2  # stopped right after the save it did not cut short
    monkeypatch.setattr(trainer_module, "save_state", real_save_state)
    resumed = Trainer(toy_settings(tmp_path, steps=6, eval_every=2), resume=True, report=lambda _: None)
    assert resumed.step == 2
    for name, value in trainer.model.state_dict().items():
        assert torch.equal(value, resumed.model.state_dict()[name]), name


# --- issue 21: one writer per run folder, resume on the run's own data, a diverged run keeps its last good save ---
def test_a_second_training_into_the_same_folder_is_refused_with_the_first_ones_pid(tmp_path: Path) -> None:
    from bd3lm_core.training.trainer import run_folder_lock

    out = tmp_path / "run"
    with run_folder_lock(out):  # what a training holds while it runs
        with pytest.raises(BD3LMError, match=rf"{out} is being trained by process {os.getpid()}; wait for it"):
            Trainer(toy_settings(tmp_path, out=str(out), steps=2, eval_every=2), report=lambda _: None)
    Trainer(toy_settings(tmp_path, out=str(out), steps=2, eval_every=2), report=lambda _: None).run()  # free again


def test_resume_with_other_data_is_refused_naming_both(tmp_path: Path) -> None:
    Trainer(toy_settings(tmp_path, steps=2, eval_every=2), report=lambda _: None).run()
    other = tmp_path / "other.txt"
    other.write_text("Some other text.\n\n" * 200, encoding="utf-8")
    with pytest.raises(BD3LMError, match=rf"--data {other} is not the data of the run being resumed"):
        Trainer(toy_settings(tmp_path, data=[str(other)], steps=4, eval_every=2), resume=True, report=lambda _: None)


def test_a_loss_that_becomes_nan_stops_with_one_line_and_keeps_the_last_good_save(tmp_path: Path) -> None:
    trainer = Trainer(toy_settings(tmp_path, steps=2, eval_every=2), report=lambda _: None)
    trainer.run()
    out = Path(trainer.settings.out)
    saved = {p.name: p.read_bytes() for p in out.iterdir() if p.is_file() and p.suffix != ".jsonl"}

    diverging = Trainer(toy_settings(tmp_path, steps=6, eval_every=2), resume=True, report=lambda _: None)
    diverging.settings = replace(diverging.settings, lr=1e30)  # resuming keeps the run's rate: raise it here
    with pytest.raises(BD3LMError, match=r"training diverged\. Stopped; the last save \(step 2\) is kept") as err:
        diverging.run()
    assert "\n" not in str(err.value)
    assert {p.name: p.read_bytes() for p in out.iterdir() if p.is_file() and p.suffix != ".jsonl"} == saved
