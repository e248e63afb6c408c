"""Shared fixtures: a small corpus with planted structure and a model trained on it in seconds.

Everything is real: the corpus is the built-in generator's, the model is trained by
`reportgen.training.train`, and the capture runs the model. Session-scoped so the suite trains once.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from clitools import CliServer

from reportgen.capture.core import Capture, capture
from reportgen.inputs.checkpoint import load_checkpoint
from reportgen.inputs.corpus import tokenize, vocabulary_from_folder
from reportgen.runs.demo import prepare_demo_model
from reportgen.training import synthetic
from reportgen.training.train import TrainConfig, train

TINY_TRAIN = TrainConfig(emsize=16, nhid=24, nlayers=2, epochs=1, batch_size=10, bptt=20,
                         dropout=0.0, seed=3)


@pytest.fixture(scope="module")
def cli() -> Iterator[CliServer]:
    """One `CliServer` (tests/clitools.py) for all the runs of a test module."""
    server = CliServer()
    yield server
    server.close()


@pytest.fixture(scope="session", autouse=True)
def capture_cache(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """The capture cache of every report the tests build, kept out of the user's own; the
    environment is given back as it was when the session ends."""
    folder = tmp_path_factory.mktemp("capture-cache")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("REPORTGEN_CACHE", str(folder))
        yield folder


@pytest.fixture(scope="session")
def tiny_corpus(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """train/valid/test of the built-in corpus, small enough to train on in seconds."""
    folder = tmp_path_factory.mktemp("tiny-corpus")
    return synthetic.write_corpus(folder, seed=7, n_train=60_000, n_valid=2_000, n_test=2_000)


@pytest.fixture(scope="session")
def tiny_model(tiny_corpus: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 2-layer LSTM trained one epoch on the tiny corpus; returns its checkpoint."""
    out = tmp_path_factory.mktemp("tiny-model")
    return train(tiny_corpus, out, TINY_TRAIN, progress=False).checkpoint


@pytest.fixture(scope="session")
def demo_model(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """The demo's corpus folder and checkpoint, trained exactly as `reportgen demo` trains them.

    Training takes minutes, so the tests that use this are marked `slow` and share it. Set
    REPORTGEN_DEMO_WORK to a folder to keep the model between sessions; `prepare_demo_model`
    trains again when the recipe cached there differs.
    """
    kept = os.environ.get("REPORTGEN_DEMO_WORK")
    work = Path(kept) if kept else tmp_path_factory.mktemp("demo")
    return prepare_demo_model(work, seed=0, quiet=True)


@pytest.fixture(scope="session")
def demo_capture(demo_model: tuple[Path, Path]) -> Capture:
    """The demo model's capture of the demo corpus's test split, shared by the slow tests that
    look for the planted structure, so the model runs over the text once."""
    corpus, checkpoint = demo_model
    vocabulary = vocabulary_from_folder(corpus)
    text = tokenize(corpus / "test.txt", vocabulary)
    return capture(load_checkpoint(checkpoint).model, text.ids, text.tokens, vocabulary.words)
