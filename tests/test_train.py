"""Training that diverges stops at once with one clear line, keeping the last good model."""

from __future__ import annotations

import importlib
import math
from pathlib import Path

import pytest

from reportgen.cli.main import main
from reportgen.errors import ReportgenError
from reportgen.inputs.checkpoint import load_checkpoint
from reportgen.training.train import TrainConfig

training = importlib.import_module("reportgen.training.train")  # the module; reportgen.training.train is the function
SMALL = dict(emsize=16, nhid=24, batch_size=10, bptt=20, seed=3)


def test_divergence_in_the_first_epoch_saves_nothing(tiny_corpus: Path, tmp_path: Path,
                                                     capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "model"
    code = main(["train", "--data", str(tiny_corpus), "--out", str(out), "--emsize", "16",
                 "--nhid", "24", "--epochs", "2", "--lr", "1e6", "--clip", "1e9", "--quiet"])
    error = capsys.readouterr().err
    assert code == 1 and error.count("\n") == 1
    assert "training diverged in epoch 1" in error and "lower --lr or --clip" in error
    assert not (out / "model.pt").exists()


def test_a_later_divergence_keeps_the_best_model_before_it(tiny_corpus: Path, tmp_path: Path,
                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    losses = iter([4.0, 3.5, math.nan])  # valid, valid, then NaN in epoch 3
    evaluate = training.evaluate
    calls = {"n": 0}

    def scripted(model, data, bptt):
        calls["n"] += 1
        if calls["n"] <= 3:
            value = next(losses)
            evaluate(model, data, bptt)
            return value
        return evaluate(model, data, bptt)  # the test split, after training

    monkeypatch.setattr(training, "evaluate", scripted)
    out = tmp_path / "model"
    with pytest.raises(ReportgenError, match="diverged in epoch 3.*valid perplexity 33.12"):
        training.train(tiny_corpus, out, TrainConfig(epochs=5, **SMALL), progress=False)
    loaded = load_checkpoint(out / "model.pt")
    assert loaded.metadata["valid_perplexity"] == pytest.approx(math.exp(3.5))
