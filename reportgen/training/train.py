"""Training: the pytorch/examples `word_language_model` recipe, under its flag names.

Same batching (`batchify`, `get_batch` with `bptt`), same truncated back-propagation, same plain
SGD with gradient clipping, and the learning rate divided by 4 whenever validation loss stops
improving, so a model trained here behaves like one trained with `main.py`.
"""

from __future__ import annotations

import json
import math
import shutil
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch
import torch.nn as nn

from reportgen.errors import ReportgenError
from reportgen.inputs.checkpoint import save_checkpoint
from reportgen.inputs.corpus import (
    SPLITS,
    Vocabulary,
    tokenize,
    vocabulary_from_folder,
    write_vocabulary,
)
from reportgen.inputs.model import RNN_TYPES, RNNModel, resolve_device
from reportgen.progress import Progress, progress_enabled

CHECKPOINT_NAME = "model.pt"
VOCABULARY_NAME = "vocab.txt"
LOG_NAME = "train_log.json"
MAX_VALID_LOSS = 700.0  # nats a token; exp() overflows a little past 709, a model there diverged


@dataclass
class TrainConfig:
    """pytorch/examples defaults, except where noted."""

    model: str = "LSTM"  # LSTM, GRU, RNN_TANH or RNN_RELU
    emsize: int = 200  # size of word embeddings
    nhid: int = 200  # hidden units per layer
    nlayers: int = 2
    lr: float = 20.0  # initial learning rate of plain SGD
    clip: float = 0.25  # gradient norm clipping
    epochs: int = 40
    batch_size: int = 20
    bptt: int = 35  # truncated back-propagation length
    dropout: float = 0.2
    tied: bool = False
    seed: int = 1111
    device: str = "auto"  # a CUDA GPU when there is one
    max_train_tokens: int | None = None  # train on a prefix only (not in pytorch/examples)

    def validate(self) -> None:
        if self.model not in RNN_TYPES:
            raise ReportgenError(f"--model must be one of {', '.join(RNN_TYPES)}, not {self.model!r}")
        if not 0.0 <= self.dropout < 1.0:
            raise ReportgenError(f"--dropout must be in [0, 1), not {self.dropout}")
        for name in ("emsize", "nhid", "nlayers", "epochs", "batch_size", "bptt"):
            if getattr(self, name) < 1:
                raise ReportgenError(f"--{name.replace('_', '-')} must be at least 1, not {getattr(self, name)}")
        if self.lr <= 0:
            raise ReportgenError(f"--lr must be positive, not {self.lr}")
        if self.max_train_tokens is not None and self.max_train_tokens < 1:
            raise ReportgenError(f"--max-train-tokens must be at least 1, not {self.max_train_tokens}")
        if self.tied and self.emsize != self.nhid:
            raise ReportgenError("--tied needs --emsize equal to --nhid")
        resolve_device(self.device)


@dataclass
class TrainResult:
    """What one training run produced, and how well the model predicts."""

    checkpoint: Path
    vocabulary_size: int
    valid_perplexity: float
    test_perplexity: float
    unigram_test_perplexity: float  # the baseline a language model must beat
    seconds: float
    epochs: list[dict[str, float]] = field(default_factory=list)


def batchify(ids: torch.Tensor, batch_size: int) -> torch.Tensor:
    """(T,) -> (T // B, B): B parallel streams, the remainder dropped, as pytorch/examples."""
    n_batch = ids.size(0) // batch_size
    return ids[: n_batch * batch_size].view(batch_size, -1).t().contiguous()


def get_batch(source: torch.Tensor, i: int, bptt: int) -> tuple[torch.Tensor, torch.Tensor]:
    seq_len = min(bptt, len(source) - 1 - i)
    return source[i : i + seq_len], source[i + 1 : i + 1 + seq_len].reshape(-1)


def detach(hidden):
    if isinstance(hidden, torch.Tensor):
        return hidden.detach()
    return tuple(detach(h) for h in hidden)


def evaluate(model: RNNModel, source: torch.Tensor, bptt: int) -> float:
    """Mean cross-entropy per token (nats) over a batchified split."""
    model.eval()
    total, count = 0.0, 0
    hidden = model.init_hidden(source.size(1))
    with torch.no_grad():
        for i in range(0, source.size(0) - 1, bptt):
            data, targets = get_batch(source, i, bptt)
            output, hidden = model(data, hidden)
            total += nn.functional.nll_loss(output, targets, reduction="sum").item()
            count += targets.numel()
    return total / max(count, 1)


def train_epoch(model: RNNModel, source: torch.Tensor, config: TrainConfig, lr: float,
                bar: Progress) -> None:
    model.train()
    hidden = model.init_hidden(config.batch_size)
    for i in range(0, source.size(0) - 1, config.bptt):
        data, targets = get_batch(source, i, config.bptt)
        hidden = detach(hidden)
        model.zero_grad()
        output, hidden = model(data, hidden)
        loss = nn.functional.nll_loss(output, targets)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), config.clip)
        with torch.no_grad():
            for p in model.parameters():
                p.add_(p.grad, alpha=-lr)
        bar.advance(targets.numel())


def unigram_perplexity(train_ids: np.ndarray, test_ids: np.ndarray, vocabulary_size: int) -> float:
    """Perplexity of add-one smoothed word frequencies from the training split."""
    counts = np.bincount(train_ids, minlength=vocabulary_size).astype(np.float64) + 1.0
    log_p = np.log(counts / counts.sum())  # (V,)
    return float(np.exp(-log_p[test_ids].mean()))


def train(data: Path, out: Path, config: TrainConfig | None = None,
          progress: bool | None = None) -> TrainResult:
    """Train on `data/{train,valid,test}.txt`; write `out/model.pt`, `vocab.txt`, `train_log.json`.

    The checkpoint is reportgen's own format: weights, hyperparameters, the vocabulary and the
    training settings, all loadable with `weights_only=True`.
    """
    config = config or TrainConfig()
    config.validate()
    with no_stray_inductor_folder():
        return train_validated(data, out, config, progress)


def train_validated(data: Path, out: Path, config: TrainConfig,
                    progress: bool | None) -> TrainResult:
    started = time.perf_counter()
    data, out = Path(data), Path(out)
    vocabulary = vocabulary_from_folder(data)
    splits = {name: tokenize(data / name, vocabulary).ids for name in SPLITS}
    if config.max_train_tokens:
        splits["train.txt"] = splits["train.txt"][: config.max_train_tokens]
    torch.manual_seed(config.seed)
    device = resolve_device(config.device)
    train_data = batchify(torch.as_tensor(splits["train.txt"]), config.batch_size).to(device)
    valid_data = batchify(torch.as_tensor(splits["valid.txt"]), 10).to(device)
    test_data = batchify(torch.as_tensor(splits["test.txt"]), 10).to(device)
    if train_data.size(0) < 2:
        raise ReportgenError(f"{data / 'train.txt'}: too short to train on with --batch-size {config.batch_size}")
    model = RNNModel(config.model, len(vocabulary), config.emsize, config.nhid, config.nlayers,
                     config.dropout, config.tied).to(device)
    lr, best_valid, best_state, epochs, diverged = config.lr, math.inf, None, [], 0
    for epoch in range(1, config.epochs + 1):
        with Progress(f"epoch {epoch}/{config.epochs}", train_data.numel(), "tokens",
                      **progress_enabled(progress)) as bar:
            train_epoch(model, train_data, config, lr, bar)
        valid_loss = evaluate(model, valid_data, config.bptt)
        if not valid_loss <= MAX_VALID_LOSS:  # NaN, Inf or past exp()'s range: diverged
            diverged = epoch
            break
        epochs.append({"epoch": epoch, "lr": lr, "valid_perplexity": math.exp(valid_loss)})
        if valid_loss < best_valid:
            best_valid = valid_loss
            best_state = {k: v.detach().clone() for k, v in model.state_dict().items()}
        else:
            lr /= 4.0
    if best_state is None:
        raise ReportgenError(
            f"training diverged in epoch {diverged} (the validation loss is not finite) and no "
            "epoch before it gave a model to keep; lower --lr or --clip")
    model.load_state_dict(best_state)
    test_loss = evaluate(model, test_data, config.bptt)
    result = TrainResult(
        checkpoint=out / CHECKPOINT_NAME,
        vocabulary_size=len(vocabulary),
        valid_perplexity=math.exp(best_valid),
        test_perplexity=math.exp(test_loss),
        unigram_test_perplexity=unigram_perplexity(splits["train.txt"], splits["test.txt"], len(vocabulary)),
        seconds=time.perf_counter() - started,
        epochs=epochs,
    )
    write_training_outputs(model.cpu(), vocabulary, config, result, out)
    if diverged:
        raise ReportgenError(
            f"training diverged in epoch {diverged} (the validation loss is not finite); the "
            f"best model before it (valid perplexity {result.valid_perplexity:.2f}) is in "
            f"{result.checkpoint}; lower --lr or --clip to train further")
    return result


@contextmanager
def no_stray_inductor_folder() -> Iterator[None]:
    """Remove the empty `torchinductor_<user>` folder that torch makes in TMPDIR when one of
    its compiler modules is first imported (`torch._dynamo` asks for its cache folder on import,
    as some CUDA code paths do), since training compiles nothing and leaves the user's TMPDIR as
    it was. Only a folder that was not there before and holds no file is removed."""
    temporary = Path(tempfile.gettempdir())
    before = set(temporary.glob("torchinductor_*"))
    try:
        yield
    finally:
        for folder in set(temporary.glob("torchinductor_*")) - before:
            if folder.is_dir() and not folder.is_symlink() and not any(
                    path.is_file() or path.is_symlink() for path in folder.rglob("*")):
                shutil.rmtree(folder, ignore_errors=True)


def write_training_outputs(model: RNNModel, vocabulary: Vocabulary, config: TrainConfig,
                           result: TrainResult, out: Path) -> None:
    out.mkdir(parents=True, exist_ok=True)
    metadata = {
        "dropout": config.dropout,
        "seed": config.seed,
        "train_config": asdict(config),
        "valid_perplexity": result.valid_perplexity,
        "test_perplexity": result.test_perplexity,
        "unigram_test_perplexity": result.unigram_test_perplexity,
    }
    partial = out / (CHECKPOINT_NAME + ".partial")
    save_checkpoint(model, partial, vocabulary.words, metadata)
    partial.replace(out / CHECKPOINT_NAME)
    write_vocabulary(vocabulary, out / VOCABULARY_NAME)
    log = {**metadata, "seconds": result.seconds, "epochs": result.epochs}
    (out / LOG_NAME).write_text(json.dumps(log, indent=2) + "\n", encoding="utf-8")
