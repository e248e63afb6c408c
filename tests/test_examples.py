"""Every script in examples/ runs, at its smallest setting, so that none can rot: each is run
as a reader would run it, in its own Python process, and what it says it writes is checked.

A new example must say here how it runs small: the first test fails for a script without an
entry in `SMALLEST`.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from reportgen.training import synthetic
from reportgen.training.train import CHECKPOINT_NAME, TrainConfig, train

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = ROOT / "examples"


def wikitext_like(folder: Path) -> list[str]:
    """The proof's smallest run: the built-in corpus in place of WikiText-2 (valid.txt trains,
    test.txt is split into validation and analysed text), a one-epoch 16-unit model, 1,000
    analysed tokens."""
    corpus = synthetic.write_corpus(folder / "corpus", seed=0, n_train=20_000, n_valid=6_000,
                                    n_test=4_000)
    return ["--data", str(corpus), "--work", str(folder / "work"), "--epochs", "1", "--nhid",
            "16", "--valid-lines", "40", "--max-tokens", "1000", "--threads", "1"]


def awd_lstm_like(folder: Path) -> list[str]:
    """The AWD-LSTM example's smallest run: the built-in corpus, 16/24/16 units trained for a
    second, 1,000 analysed tokens."""
    corpus = synthetic.write_corpus(folder / "corpus", seed=0, n_train=20_000, n_valid=6_000,
                                    n_test=4_000)
    return ["--data", str(corpus), "--work", str(folder / "work"), "--emsize", "16", "--nhid",
            "24", "--minutes", "0.02", "--valid-lines", "40", "--max-tokens", "1000"]


def tiny_model(folder: Path) -> list[str]:
    """The agreement figures of a 2x16 model trained for one short epoch on the built-in
    corpus, whose vocabulary has the agreement lexicon's pairs."""
    corpus = synthetic.write_corpus(folder / "corpus", seed=0, n_train=20_000, n_valid=2_000,
                                    n_test=2_000)
    config = TrainConfig(emsize=16, nhid=16, nlayers=2, epochs=1, batch_size=20, bptt=20,
                         dropout=0.0, seed=1, device="cpu")
    train(corpus, folder / "model", config)
    return [str(corpus), str(folder / "model" / CHECKPOINT_NAME)]


# script -> (its arguments in a work folder, the file it must have written there, or None for
# a script that only prints)
SMALLEST: dict[str, tuple[Callable[[Path], list[str]], str | None]] = {
    "notebook_api.py": (lambda folder: ["--quick", str(folder / "out")], "out/index.html"),
    "dropout_sweep.py": (lambda folder: ["--quick", str(folder / "out")], "out/index.html"),
    "wikitext2_proof.py": (wikitext_like, "work/report/index.html"),
    "awd_lstm_wikitext2.py": (awd_lstm_like, "work/report/index.html"),
    "agreement_figures.py": (tiny_model, None),
}


def test_every_example_has_its_smallest_setting() -> None:
    assert {path.name for path in EXAMPLES.glob("*.py")} == set(SMALLEST)


@pytest.mark.slow
@pytest.mark.parametrize("script", sorted(SMALLEST))
def test_the_example_runs(script: str, tmp_path: Path) -> None:
    arguments, written = SMALLEST[script]
    env = {**os.environ, "TMPDIR": str(tmp_path),  # the folders the examples keep their models in
           "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))}
    result = subprocess.run([sys.executable, str(EXAMPLES / script), *arguments(tmp_path)],
                            cwd=tmp_path, env=env, capture_output=True, text=True, timeout=1200)
    assert result.returncode == 0, result.stderr[-3000:]
    if written is None:
        assert "items scored" in result.stdout, result.stdout[-2000:]
    else:
        assert (tmp_path / written).is_file(), result.stdout[-2000:]
