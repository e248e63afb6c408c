"""The catalogue of bad inputs: each mistake a user can make, run through the real command.

Every case runs the CLI in a child process of its own and must end with a non-zero status and
exactly one line on stderr, `reportgen: error: ...`, that names what is wrong and what to do,
with no traceback. Command lines argparse cannot parse exit with 2, the rest with 1. A failed
run changes nothing in its working folder.

The catalogue's children are forked from one process that imported the CLI once (see
`clitools.CliServer`): forty fresh interpreters would spend a minute of two cores importing
torch. `test_forked_runs_match_fresh_interpreters` checks that a fork says exactly what
`python -m reportgen.cli.main` says, and the tests of debugging, malicious pickles and Ctrl-C run
fresh interpreters.

The checkpoints here are untrained: every error comes before the weights would matter.
"""

from __future__ import annotations

import gzip
import hashlib
import importlib
import json
import os
import pickle
import shutil
import signal
import tempfile
import threading
import tracemalloc
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import pytest
import torch
from awd_transcriptions import fastai_language_model, salesforce_code, save_salesforce
from clitools import (
    CliServer,
    assert_one_line_error,
    file_digests,
    finish,
    run_cli,
    start_cli,
    temporary_folders,
    wait_for,
)
from test_model import save_with_examples_module

from reportgen.cli.main import main
from reportgen.inputs.checkpoint import save_checkpoint
from reportgen.inputs.corpus import EOS, tokenize, vocabulary_from_folder
from reportgen.inputs.model import RNNModel
from reportgen.render.atomic import SITE_MARKER
from reportgen.render.pages import SiteOptions
from reportgen.runs.report import ReportConfig, build_report

LINE = "the cat sat on the mat .\n"
LATIN1_LINE = 3  # the line of latin1.txt that holds the byte 0xe9


def untrained_model(vocabulary_size: int, nlayers: int = 2) -> RNNModel:
    torch.manual_seed(0)
    return RNNModel("LSTM", vocabulary_size, 4, 6, nlayers, 0.0)


def write_folder(folder: Path, files: dict[str, str | bytes]) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for name, content in files.items():
        path = folder / name
        path.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(content, bytes):
            path.write_bytes(content)
        else:
            path.write_text(content, encoding="utf-8")


def malformed_checkpoints(root: Path, model: RNNModel, words: list[str]) -> None:
    """State dicts and own-format checkpoints that are damaged or crafted: wrong ranks, zero
    sizes, strings where numbers belong, missing keys, and small files that claim huge models."""
    state = model.state_dict()

    def state_with(**changes: object) -> dict:
        return {**state, **{key.replace("__", "."): value for key, value in changes.items()}}

    torch.save(state_with(encoder__weight=torch.zeros(7)), root / "rank-1-encoder.pt")
    torch.save(state_with(rnn__weight_hh_l0=torch.zeros(0, 6)), root / "zero-size.pt")
    torch.save(state_with(encoder__weight=torch.zeros(7, 4, dtype=torch.int64)),
               root / "integer-weights.pt")
    torch.save(state_with(rnn__bias_ih_l0=torch.zeros(5)), root / "wrong-bias.pt")
    claims = 5_000_000  # a few KB on disk: one stored value, viewed with stride 0
    torch.save(state_with(encoder__weight=torch.zeros(1).expand(claims, 4),
                          decoder__weight=torch.zeros(1).expand(claims, 6),
                          decoder__bias=torch.zeros(1).expand(claims)),
               root / "huge-claim.pt")
    torch.save(state_with(encoder__weight=torch.zeros(1).expand(20_000_000, 4),
                          decoder__weight=torch.zeros(1).expand(20_000_000, 6),
                          decoder__bias=torch.zeros(1).expand(20_000_000)),
               root / "huge-vocabulary.pt")
    save_checkpoint(model, root / "own.pt", words)
    own = torch.load(root / "own.pt", weights_only=True)

    def own_with(name: str, hyperparameters: dict | None = None, **changes: object) -> None:
        payload = {**own, **changes}
        if hyperparameters is not None:
            payload["hyperparameters"] = {**own["hyperparameters"], **hyperparameters}
        torch.save({key: value for key, value in payload.items() if value is not None},
                   root / name)

    own_with("own-string-size.pt", {"nhid": "6"})
    own_with("own-billion-words.pt", {"ntoken": 10**9})
    own_with("own-zero-layers.pt", {"nlayers": 0})
    own_with("own-unknown-type.pt", {"rnn_type": "Transformer"})
    own_with("own-without-weights.pt", state_dict=None)
    own_with("own-short-vocabulary.pt", vocabulary=words[:3])
    own_with("own-wider-than-weights.pt", {"nhid": 8})
    own_with("own-weights-not-a-table.pt", state_dict=[1, 2, 3])


def awd_checkpoints(root: Path) -> None:
    """AWD-LSTM files that cannot be read: QRNN layers, an optimizer outside the allowlist,
    tied widths that differ; and readable ones that the command must refuse."""
    ids = torch.arange(10) % 7
    save_salesforce(root, "awd.pt", 1, 60, 4, 6, 2, [], ids)
    save_salesforce(root, "qrnn.pt", 1, 7, 4, 6, 2, [], ids, rnn_type="QRNN",
                    forward_first=False)
    _, _, state = save_salesforce(root, "awd-state.pt", 1, 7, 4, 6, 2, [], ids,
                                  forward_first=False)
    state.update({"rnns.1.module.weight_ih_l0": torch.zeros(24, 6),
                  "rnns.1.module.weight_hh_l0_raw": torch.zeros(24, 6),
                  "rnns.1.module.bias_ih_l0": torch.zeros(24),
                  "rnns.1.module.bias_hh_l0": torch.zeros(24)})
    torch.save(state, root / "tied-widths.pt")
    torch.save(fastai_language_model(7, 4, 6, 2, seed=1).state_dict(), root / "fastai.pth")
    with salesforce_code(root) as code:
        model = code["RNNModel"]("LSTM", 7, 4, 6, 2, wdrop=0.5, tie_weights=True)
        torch.save([model, torch.optim.RMSprop(model.parameters())], root / "rmsprop.pt")
    shutil.rmtree(root / "salesforce-code")


@pytest.fixture(scope="module")
def workspace(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A folder of good and bad inputs; every case runs with it as the working folder."""
    root = tmp_path_factory.mktemp("bad-input")
    splits = {name: LINE for name in ("train.txt", "valid.txt", "test.txt")}
    write_folder(root / "data", splits)
    write_folder(root / "other-data", {name: "a b c d e f g h\n" for name in splits})
    vocabulary = vocabulary_from_folder(root / "data")  # 6 words and <eos>, no <unk>
    model = untrained_model(len(vocabulary))
    save_checkpoint(model, root / "model.pt", vocabulary.words)
    torch.save(model.state_dict(), root / "state.pt")
    partial = dict(model.state_dict())
    del partial["rnn.weight_ih_l1"]
    torch.save(partial, root / "missing-keys.pt")
    torch.save({"weight": torch.zeros(3, 3)}, root / "foreign-state.pt")
    torch.manual_seed(0)
    torch.save(RNNModel("RNN_RELU", len(vocabulary), 4, 6, 1, 0.0).state_dict(),
               root / "rnn-state.pt")
    diverged = untrained_model(len(vocabulary))
    with torch.no_grad():
        diverged.decoder.weight[0, 0] = float("inf")
    save_checkpoint(diverged, root / "inf-weights.pt", vocabulary.words)
    nan_state = dict(model.state_dict())
    nan_state["rnn.weight_hh_l1"] = torch.full_like(nan_state["rnn.weight_hh_l1"], float("nan"))
    torch.save(nan_state, root / "nan-state.pt")
    malformed_checkpoints(root, model, vocabulary.words)
    whole = (root / "model.pt").read_bytes()
    (root / "truncated.pt").write_bytes(whole[: len(whole) // 2])
    (root / "empty.pt").write_bytes(b"")
    torch.save(torch.nn.Sequential(torch.nn.Linear(2, 2)), root / "sequential.pt")
    torch.save(torch.nn.LSTM(4, 6), root / "bare-lstm.pt")
    save_with_examples_module(root, "model.TransformerModel()", "transformer.pt")
    awd_checkpoints(root)
    save_with_examples_module(  # an RNNModel pickle from code that never set rnn_type
        root, f"[m := model.RNNModel('LSTM', {len(vocabulary)}, 4, 6, 2, 0.0), "
              "delattr(m, 'rnn_type'), m][2]", "no-rnn-type.pt")
    (root / "no-such-class.pt").write_bytes(  # a protocol-2 pickle of reportgen.inputs.model.NoSuchModel
        b"\x80\x02creportgen.inputs.model\nNoSuchModel\nq\x00)\x81q\x01.")
    latin1 = (LINE * (LATIN1_LINE - 1) + "the café\n").encode("latin-1")
    write_folder(root, {
        "text.txt": LINE * 3,
        "empty.txt": "",
        "only-eos.txt": f"{EOS}\n\n   \n{EOS} {EOS}\n",
        "latin1.txt": latin1,
        "zebra.txt": LINE + "the zebra sat .\n",
        "notes.txt": "not a report folder\n",
        "thesis/chapter1.tex": "\\chapter{Results}\n",
        "old-report/" + SITE_MARKER: "reportgen\n",
        "old-report/mine.txt": LINE,
    })
    return root


@dataclass(frozen=True)
class Case:
    """One mistake: the command line, and what its one line of stderr must say."""

    name: str
    args: tuple[str, ...]
    says: tuple[str, ...]
    status: int = 1

    def __str__(self) -> str:
        return self.name


def report(*args: str) -> tuple[str, ...]:
    return ("report", *args, "--quiet")


OUT = "--out", "new-report"  # never created: every case fails before writing

CASES = [
    Case("checkpoint missing", report("absent.pt", "--text", "text.txt", *OUT),
         ("absent.pt: no such checkpoint file",)),
    Case("checkpoint is a folder", report("data", "--text", "text.txt", *OUT),
         ("data: is a folder, expected a checkpoint file",)),
    Case("checkpoint empty", report("empty.pt", "--text", "text.txt", *OUT),
         ("empty.pt: not a readable PyTorch checkpoint: the file is empty",)),
    Case("checkpoint truncated", report("truncated.pt", "--text", "text.txt", *OUT),
         ("truncated.pt: not a readable PyTorch checkpoint", "cut short")),
    Case("checkpoint is a text file", report("text.txt", "--text", "text.txt", *OUT),
         ("text.txt: not a readable PyTorch checkpoint", "neither a torch.save zip")),
    Case("checkpoint of the examples' Transformer",
         report("transformer.pt", "--text", "text.txt", *OUT),
         ("holds a Transformer (model.TransformerModel), which reportgen does not read",
          "recurrent language models")),
    Case("AWD-LSTM of QRNN layers", report("qrnn.pt", "--data", "data", *OUT),
         ("qrnn.pt: the checkpoint holds QRNN layers (torchqrnn.qrnn.QRNNLayer)",)),
    Case("AWD-LSTM saved with a class outside the allowlist",
         report("rmsprop.pt", "--data", "data", *OUT),
         ("names torch.optim.rmsprop.RMSprop, which reportgen does not load",)),
    Case("AWD-LSTM whose embedding has more rows than the vocabulary",
         report("awd.pt", "--data", "data", *OUT),
         ("has 7 words but the model has 60",)),
    Case("fastai model without --vocabulary", report("fastai.pth", "--data", "data", *OUT),
         ("a fastai language model numbers its words by its itos list", "--vocabulary FILE")),
    Case("AWD-LSTM state dict of mismatched tied widths",
         report("tied-widths.pt", "--data", "data", *OUT),
         ("tied to the embedding (4 wide), but the last layer is 6 wide",)),
    Case("examples' RNNModel pickle without rnn_type",
         report("no-rnn-type.pt", "--text", "text.txt", *OUT),
         ("no-rnn-type.pt: a damaged RNNModel pickle (it lacks rnn_type", "--rnn-type")),
    Case("unsafe pickle naming a module that is not importable",
         report("transformer.pt", "--text", "text.txt", "--allow-unsafe-pickle", *OUT),
         ("transformer.pt: the pickle names the module 'model', which cannot be imported",)),
    Case("unsafe pickle naming a class its module lacks",
         report("no-such-class.pt", "--text", "text.txt", "--allow-unsafe-pickle", *OUT),
         ("names reportgen.inputs.model.NoSuchModel, which the module 'reportgen.inputs.model'",)),
    Case("checkpoint of a plain nn.Module", report("sequential.pt", "--text", "text.txt", *OUT),
         ("names torch.nn.modules.container.Sequential",)),
    Case("checkpoint of a bare nn.LSTM", report("bare-lstm.pt", "--text", "text.txt", *OUT),
         ("holds a LSTM, not an RNNModel",)),
    Case("state dict with missing keys", report("missing-keys.pt", "--data", "data", *OUT),
         ("does not fit the model", "rnn.weight_ih_l1")),
    Case("state dict of another model", report("foreign-state.pt", "--data", "data", *OUT),
         ("lacks encoder.weight", "not an RNNModel's")),
    Case("checkpoint with an Inf weight", report("inf-weights.pt", "--text", "text.txt", *OUT),
         ("inf-weights.pt: the weight decoder.weight holds 1 value that is not finite",)),
    Case("state dict with NaN weights", report("nan-state.pt", "--data", "data", *OUT),
         ("nan-state.pt: the weight rnn.weight_hh_l1 holds 144 values that are not finite",)),
    Case("state dict of a plain RNN without --rnn-type",
         report("rnn-state.pt", "--data", "data", *OUT),
         ("rnn-state.pt: a state dict of a plain RNN", "--rnn-type RNN_TANH or --rnn-type RNN_RELU")),
    Case("--rnn-type that contradicts the state dict",
         report("rnn-state.pt", "--data", "data", "--rnn-type", "GRU", *OUT),
         ("--rnn-type GRU does not fit", "RNN_TANH or RNN_RELU")),
    Case("unknown --rnn-type",
         report("rnn-state.pt", "--data", "data", "--rnn-type", "relu", *OUT),
         ("argument --rnn-type: invalid choice: 'relu'",), status=2),
    Case("state dict with a 1-D encoder", report("rank-1-encoder.pt", "--data", "data", *OUT),
         ("rank-1-encoder.pt: encoder.weight has shape (7,), not that of a matrix",)),
    Case("state dict with a zero size", report("zero-size.pt", "--data", "data", *OUT),
         ("zero-size.pt: rnn.weight_hh_l0 has shape (0, 6)",)),
    Case("state dict with integer weights", report("integer-weights.pt", "--data", "data", *OUT),
         ("the weight encoder.weight is a torch.int64 tensor",)),
    Case("state dict with a bias of the wrong size",
         report("wrong-bias.pt", "--data", "data", *OUT),
         ("size mismatch for rnn.bias_ih_l0: the checkpoint has (5,), the model needs (24,)",)),
    Case("small state dict claiming five million words",
         report("huge-claim.pt", "--data", "data", *OUT),
         ("the weight encoder.weight claims 20,000,000 values but the file holds 1",)),
    Case("small state dict claiming twenty million words",
         report("huge-vocabulary.pt", "--data", "data", *OUT),
         ("the model's ntoken is 20,000,000, outside 1 to 10,000,000",)),
    Case("own checkpoint with a string for a size",
         report("own-string-size.pt", "--text", "text.txt", *OUT),
         ("damaged reportgen checkpoint (nhid is '6', not a whole number)",)),
    Case("own checkpoint claiming a billion words",
         report("own-billion-words.pt", "--text", "text.txt", *OUT),
         ("the model's ntoken is 1,000,000,000, outside 1 to 10,000,000",)),
    Case("own checkpoint with zero layers",
         report("own-zero-layers.pt", "--text", "text.txt", *OUT),
         ("the model's nlayers is 0, outside 1 to 64",)),
    Case("own checkpoint of an unknown type",
         report("own-unknown-type.pt", "--text", "text.txt", *OUT),
         ("rnn_type 'Transformer' is not one of LSTM, GRU",)),
    Case("own checkpoint without weights",
         report("own-without-weights.pt", "--text", "text.txt", *OUT),
         ("damaged reportgen checkpoint (it lacks state_dict)",)),
    Case("own checkpoint whose vocabulary is short",
         report("own-short-vocabulary.pt", "--text", "text.txt", *OUT),
         ("its vocabulary has 3 words, its model 7",)),
    Case("own checkpoint wider than its weights",
         report("own-wider-than-weights.pt", "--text", "text.txt", *OUT),
         ("size mismatch for rnn.weight_ih_l0: the checkpoint has (24, 4), the model needs "
          "(32, 4)",)),
    Case("own checkpoint whose weights are a list",
         report("own-weights-not-a-table.pt", "--text", "text.txt", *OUT),
         ("its state dict is a list, not a table of tensors",)),
    Case("vocabulary size differs", report("state.pt", "--data", "other-data", *OUT),
         ("has 9 words but the model has 7",)),
    Case("word outside a vocabulary without <unk>",
         report("model.pt", "--text", "zebra.txt", *OUT),
         ("zebra.txt:2: word 'zebra' is not in the vocabulary",)),
    Case("no vocabulary anywhere", report("state.pt", "--text", "text.txt", *OUT),
         ("stores no vocabulary", "give --data DIR")),
    Case("no text given", report("model.pt", *OUT), ("say which text to analyse",)),
    Case("data folder missing", report("state.pt", "--data", "absent", *OUT),
         ("absent: no such data folder",)),
    Case("data is a file", report("state.pt", "--data", "text.txt", *OUT),
         ("text.txt: --data expects a folder",)),
    Case("text missing", report("model.pt", "--text", "absent.txt", *OUT),
         ("absent.txt: no such file",)),
    Case("text is a folder", report("model.pt", "--text", "data", *OUT),
         ("data: is a folder, expected a text file",)),
    Case("text empty", report("model.pt", "--text", "empty.txt", *OUT),
         ("empty.txt: the text is empty",)),
    Case("text of only <eos> and blank lines", report("model.pt", "--text", "only-eos.txt", *OUT),
         ("only-eos.txt: the text has no words", "only blank lines or <eos>")),
    Case("text not UTF-8", report("model.pt", "--text", "latin1.txt", *OUT),
         (f"latin1.txt:{LATIN1_LINE}: not UTF-8 text (byte 0xe9)", "iconv")),
    Case("binary file as text", report("model.pt", "--text", "model.pt", *OUT),
         ("model.pt: looks like a binary file, not a text",)),
    Case("endless text without line breaks", report("model.pt", "--text", "/dev/zero", *OUT),
         ("/dev/zero:1: a line longer than 10 MiB", "endless stream")),
    Case("endless text with --max-tokens",
         report("model.pt", "--text", "/dev/zero", "--max-tokens", "10", *OUT),
         ("/dev/zero:1: a line longer than 10 MiB",)),
    Case("--max-tokens 0", report("model.pt", "--text", "text.txt", "--max-tokens", "0", *OUT),
         ("argument --max-tokens: must be at least 1, not 0",), status=2),
    Case("--max-tokens 1", report("model.pt", "--text", "text.txt", "--max-tokens", "1", *OUT),
         ("--max-tokens must be at least 2, not 1",)),
    Case("--max-tokens not a number",
         report("model.pt", "--text", "text.txt", "--max-tokens", "lots", *OUT),
         ("must be a whole number, not 'lots'",), status=2),
    Case("--tokens-per-page 0",
         report("model.pt", "--text", "text.txt", "--tokens-per-page", "0", *OUT),
         ("argument --tokens-per-page: must be at least 1",), status=2),
    Case("unknown --rank-by", report("model.pt", "--text", "text.txt", "--rank-by", "loud", *OUT),
         ("argument --rank-by: invalid choice: 'loud'",), status=2),
    Case("unknown layer in --maps",
         report("model.pt", "--text", "text.txt", "--maps", "L9-h", *OUT),
         ("--maps names L9-h, which this model does not have; it has L1-h, L1-c",)),
    Case("unknown state in --maps",
         report("model.pt", "--text", "text.txt", "--maps", "L1-x", *OUT),
         ("argument --maps: 'L1-x' is not a layer and state; write them as L1-h or L2-c",),
         status=2),
    Case("--max-points 0", report("model.pt", "--text", "text.txt", "--max-points", "0", *OUT),
         ("--max-points must be at least 1, got 0",)),
    Case("negative --perplexity",
         report("model.pt", "--text", "text.txt", "--perplexity=-1", *OUT),
         ("--perplexity must be positive, got -1.0",)),
    Case("--perplexity nan", report("model.pt", "--text", "text.txt", "--perplexity", "nan", *OUT),
         ("argument --perplexity: must be a finite number, not 'nan'",), status=2),
    Case("--perplexity inf", report("model.pt", "--text", "text.txt", "--perplexity", "inf", *OUT),
         ("argument --perplexity: must be a finite number, not 'inf'",), status=2),
    Case("--cell-interval nan",
         report("model.pt", "--text", "text.txt", "--cell-interval", "nan", *OUT),
         ("argument --cell-interval: must be a finite number, not 'nan'",), status=2),
    Case("--distance-threshold nan",
         report("model.pt", "--text", "text.txt", "--distance-threshold", "NaN", *OUT),
         ("argument --distance-threshold: must be a finite number, not 'NaN'",), status=2),
    Case("--label-threshold nan",
         report("model.pt", "--text", "text.txt", "--label-threshold", "nan", *OUT),
         ("argument --label-threshold: must be a finite number, not 'nan'",), status=2),
    Case("--seed -1", report("model.pt", "--text", "text.txt", "--seed=-1", *OUT),
         ("argument --seed: must be a whole number from 0 to 4294967295, not -1",), status=2),
    Case("--seed 2**32", report("model.pt", "--text", "text.txt", "--seed", "4294967296", *OUT),
         ("argument --seed: must be a whole number from 0 to 4294967295, not 4294967296",),
         status=2),
    Case("--seed not a number", report("model.pt", "--text", "text.txt", "--seed", "1.5", *OUT),
         ("argument --seed: must be a whole number from 0 to 4294967295, not '1.5'",), status=2),
    Case("negative --cell-interval",
         report("model.pt", "--text", "text.txt", "--cell-interval=-1", *OUT),
         ("--cell-interval must be a number in (0, 50], got -1.0",)),
    Case("--decoder-dtype, removed: bfloat16 never passed its 1e-3 gate",
         report("model.pt", "--text", "text.txt", "--decoder-dtype", "bfloat16", *OUT),
         ("unrecognized arguments: --decoder-dtype bfloat16",), status=2),
    Case("unknown option", report("model.pt", "--text", "text.txt", "--colour", "red", *OUT),
         ("unrecognized arguments: --colour red",), status=2),
    Case("--out missing", report("model.pt", "--text", "text.txt"),
         ("the following arguments are required: --out",), status=2),
    Case("unknown --device", report("model.pt", "--text", "text.txt", "--device", "gpu0", *OUT),
         ("--device 'gpu0' is not a device name",)),
    Case("--out inside the data folder", report("state.pt", "--data", "data", "--out", "data/r"),
         ("--out data/r lies inside the --data folder data",)),
    Case("--out holds an input",
         report("model.pt", "--text", "old-report/mine.txt", "--out", "old-report"),
         ("--out old-report holds the --text old-report/mine.txt",)),
    Case("--out is a folder that is not a report",
         report("model.pt", "--text", "text.txt", "--out", "thesis"),
         ("thesis: exists, is not empty and is not a reportgen report",)),
    Case("--out is a file", report("model.pt", "--text", "text.txt", "--out", "notes.txt"),
         ("notes.txt: exists and is not a folder",)),
    Case("--cache inside --out",
         report("model.pt", "--text", "text.txt", *OUT, "--cache", "new-report/cache"),
         ("the capture cache new-report/cache lies inside --out new-report",)),
    Case("--cache is --out",
         report("model.pt", "--text", "text.txt", "--out", "old-report", "--cache", "old-report"),
         ("the capture cache old-report lies inside --out old-report",)),
    Case("--out inside an existing report",
         report("model.pt", "--text", "text.txt", "--out", "old-report/sub"),
         ("--out old-report/sub lies inside the reportgen report old-report",)),
    Case("--out deep inside an existing report",
         report("model.pt", "--text", "text.txt", "--out", "old-report/a/b"),
         ("--out old-report/a/b lies inside the reportgen report old-report",)),
    Case("demo inside an existing report", ("demo", "--out", "old-report/demo", "--work", "w"),
         ("--out old-report/demo lies inside the reportgen report old-report",)),
    Case("train --epochs 0", ("train", "--data", "data", "--out", "run", "--epochs", "0"),
         ("--epochs must be at least 1, not 0",)),
    Case("train negative --dropout", ("train", "--data", "data", "--out", "run", "--dropout=-0.5"),
         ("--dropout must be in [0, 1), not -0.5",)),
    Case("train --lr nan", ("train", "--data", "data", "--out", "run", "--lr", "nan"),
         ("argument --lr: must be a finite number, not 'nan'",), status=2),
    Case("train --clip inf", ("train", "--data", "data", "--out", "run", "--clip", "inf"),
         ("argument --clip: must be a finite number, not 'inf'",), status=2),
    Case("train --dropout nan", ("train", "--data", "data", "--out", "run", "--dropout", "nan"),
         ("argument --dropout: must be a finite number, not 'nan'",), status=2),
    Case("train --seed -1", ("train", "--data", "data", "--out", "run", "--seed=-1"),
         ("argument --seed: must be a whole number from 0 to 4294967295, not -1",), status=2),
    Case("train negative --max-train-tokens",
         ("train", "--data", "data", "--out", "run", "--max-train-tokens=-5"),
         ("--max-train-tokens must be at least 1, not -5",)),
    Case("cache clear with a negative --older-than",
         ("cache", "clear", "--older-than=-1", "--cache", "old-report"),
         ("--older-than must be a number of days, 0 or more, not -1.0",)),
    Case("train without a data folder", ("train", "--data", "absent", "--out", "run"),
         ("absent: no such data folder",)),
    Case("demo into a folder that is not a report", ("demo", "--out", "thesis", "--work", "w"),
         ("thesis: exists, is not empty and is not a reportgen report",)),
]


@pytest.mark.parametrize("case", CASES, ids=str)
def test_bad_input_ends_in_one_clear_line(case: Case, cli: CliServer, workspace: Path) -> None:
    before = file_digests(workspace)
    result = cli.run(list(case.args), workspace)
    assert_one_line_error(result, *case.says, status=case.status)
    assert file_digests(workspace) == before, "a failed run changed the working folder"


def test_forked_runs_match_fresh_interpreters(cli: CliServer, workspace: Path) -> None:
    """The catalogue's cheap forked children say exactly what `python -m reportgen.cli.main` says."""
    cases = [case for case in CASES if case.name in ("--max-tokens 0", "checkpoint truncated")]
    with ThreadPoolExecutor(max_workers=len(cases)) as pool:
        fresh = list(pool.map(lambda case: run_cli(list(case.args), workspace), cases))
    for case, result in zip(cases, fresh):
        forked = cli.run(list(case.args), workspace)
        assert (forked.returncode, forked.stdout, forked.stderr) == (
            result.returncode, result.stdout, result.stderr)


def test_catalogue_is_large_and_its_cases_distinct() -> None:
    assert len(CASES) >= 20
    assert len({case.name for case in CASES}) == len({case.args for case in CASES}) == len(CASES)


def test_debug_shows_the_traceback(workspace: Path) -> None:
    result = run_cli(list(report("absent.pt", "--text", "text.txt", *OUT, "--debug")), workspace)
    assert result.returncode != 0
    assert "Traceback" in result.stderr
    assert result.stderr_lines[-1] == (
        "reportgen.errors.ReportgenError: absent.pt: no such checkpoint file; check the path")


class CreatesFile:
    """Unpickling this runs a shell command: the classic code-in-a-checkpoint attack."""

    def __init__(self, target: Path):
        self.target = target

    def __reduce__(self):
        return (os.system, (f"touch '{self.target}'",))


def test_malicious_checkpoint_never_runs_through_the_command(cli: CliServer, workspace: Path,
                                                             tmp_path: Path) -> None:
    """torch.save's own pickle and a raw protocol-2 pickle are refused by the class they name;
    a protocol-5 pickle already by its framing. The file the payload would create never is."""
    target = tmp_path / "pwned"
    torch.save({"state_dict": CreatesFile(target)}, tmp_path / "evil.pt")
    (tmp_path / "evil-2.pkl").write_bytes(pickle.dumps(CreatesFile(target), protocol=2))
    (tmp_path / "evil-5.pkl").write_bytes(pickle.dumps(CreatesFile(target), protocol=5))
    system = f"names {os.system.__module__}.system"
    fresh = run_cli(list(report(str(tmp_path / "evil.pt"), "--data", "data", *OUT)), workspace)
    assert_one_line_error(fresh, system, "--allow-unsafe-pickle runs the pickle's code")
    forked = cli.run(list(report(str(tmp_path / "evil-2.pkl"), "--data", "data", *OUT)), workspace)
    assert_one_line_error(forked, system)
    forked = cli.run(list(report(str(tmp_path / "evil-5.pkl"), "--data", "data", *OUT)), workspace)
    assert_one_line_error(forked, "not a readable PyTorch checkpoint")
    assert not target.exists()


def test_unsafe_pickle_flag_says_what_it_risks(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        main(["report", "--help"])
    help_text = " ".join(capsys.readouterr().out.split())
    flag = help_text[help_text.index("--allow-unsafe-pickle"):]
    assert "DANGEROUS" in flag and "runs any code" in flag and "trust" in flag


@pytest.fixture(scope="module")
def first_report(workspace: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("first") / "report"
    return build_report(ReportConfig(workspace / "model.pt", out, text=workspace / "text.txt",
                                     quiet=True, embed_states=(), site=SiteOptions(top_neurons=1)))


@pytest.fixture
def earlier_report(first_report: Path, tmp_path: Path) -> Path:
    """A finished report of the workspace model, which a failed run must leave as it was."""
    return Path(shutil.copytree(first_report, tmp_path / "report"))


def rerun_args(workspace: Path, out: Path) -> list[str]:
    return list(report("model.pt", "--text", "text.txt", "--top-neurons", "1", "--no-clusters",
                       "--out", str(out)))


@pytest.mark.parametrize("fault, says", [
    ("enospc", "reportgen: error: no space left on the device; free some space or write --out "
               "on another disk"),
    ("eacces", f"{SITE_MARKER}: permission denied; check the file's permissions"),
])
def test_full_or_forbidden_disk_keeps_the_earlier_report(cli: CliServer, workspace: Path,
                                                         earlier_report: Path, fault: str,
                                                         says: str) -> None:
    before = file_digests(earlier_report)
    result = cli.run(rerun_args(workspace, earlier_report), workspace, fault=fault)
    assert says in assert_one_line_error(result)
    assert file_digests(earlier_report) == before
    assert temporary_folders(earlier_report) == []


@pytest.mark.parametrize("signum, status, says", [
    (signal.SIGINT, 130, "reportgen: interrupted; no report was written or changed"),
    (signal.SIGTERM, 143, "reportgen: terminated; no report was written or changed"),
])
def test_ctrl_c_or_sigterm_in_mid_render_keeps_the_earlier_report(
        workspace: Path, earlier_report: Path, tmp_path: Path, signum: int, status: int,
        says: str) -> None:
    before = file_digests(earlier_report)
    marker = tmp_path / "stalled"
    process = start_cli(rerun_args(workspace, earlier_report), workspace, f"stall:{marker}")
    wait_for(marker.exists, process)
    assert len(temporary_folders(earlier_report)) == 1  # the half-written site
    process.send_signal(signum)
    result = finish(process)
    assert result.returncode == status
    assert result.stderr_lines == [says]
    assert file_digests(earlier_report) == before
    assert temporary_folders(earlier_report) == []


def test_text_from_a_pipe_is_read_once_and_hashed_whole(cli: CliServer, workspace: Path,
                                                         tmp_path: Path) -> None:
    """`--text <(cat file)` and a FIFO can be read only once: a second open waits forever for a
    writer that is gone. The report must read the text once, and its hash must be that of every
    byte the pipe gave, even those after --max-tokens."""
    fifo = tmp_path / "text.fifo"
    os.mkfifo(fifo)
    content = (workspace / "text.txt").read_bytes() * 5

    def write() -> None:
        with open(fifo, "wb") as pipe:
            pipe.write(content)

    writer = threading.Thread(target=write, daemon=True)
    writer.start()
    out = tmp_path / "site"
    result = cli.run(list(report("model.pt", "--text", str(fifo), "--max-tokens", "5",
                                 "--top-neurons", "1", "--no-clusters", "--out", str(out))),
                     workspace, timeout=LIMIT_SECONDS)
    writer.join(timeout=5)
    if writer.is_alive():  # the run ended without reading: unblock the writer
        os.close(os.open(fifo, os.O_RDONLY | os.O_NONBLOCK))
    assert result.returncode == 0, result.stderr or f"killed after {LIMIT_SECONDS} s"
    summary = json.loads((out / "data" / "report.json").read_text(encoding="utf-8"))
    assert summary["model"]["text_sha256"] == hashlib.sha256(content).hexdigest()
    assert summary["model"]["n_tokens"] == 5


# Limits: inputs far beyond what the tests above use must work, or fail clearly, with memory
# that does not grow with them where --max-tokens says it should not.

LIMIT_SECONDS = 60  # a limits run takes seconds; one that takes minutes has gone quadratic


def report_of(cli: CliServer, folder: Path, vocabulary: list[str] | None) -> Path:
    """Render an untrained model over folder/data, the first 300 tokens of test.txt."""
    size = len(vocabulary) if vocabulary else len(vocabulary_from_folder(folder / "data"))
    save_checkpoint(untrained_model(size, 1), folder / "model.pt", vocabulary)
    args = report("model.pt", "--data", "data", "--max-tokens", "300", "--no-clusters",
                  "--top-neurons", "1", "--out", "site")
    result = cli.run(list(args), folder, timeout=LIMIT_SECONDS)
    assert result.returncode == 0, result.stderr or f"killed after {LIMIT_SECONDS} s"
    return folder / "site"


def test_token_of_ten_thousand_characters_is_reported(cli: CliServer, tmp_path: Path) -> None:
    long_word = "x" * 10_000
    write_folder(tmp_path / "data", {name: f"a {long_word} b .\n" * 20
                                     for name in ("train.txt", "valid.txt", "test.txt")})
    site = report_of(cli, tmp_path, None)
    page = (site / "expectancy.html").read_text(encoding="utf-8")
    assert long_word in page
    tokens = gzip.decompress((site / "data" / "tokens.csv.gz").read_bytes()).decode("utf-8")
    assert tokens.count(long_word) == 2 * 20  # as token and as next token, once a line


def test_line_of_a_hundred_thousand_tokens_costs_only_what_is_analysed(cli: CliServer,
                                                                       tmp_path: Path) -> None:
    words = [f"w{i % 50}" for i in range(100_000)]
    line = " ".join(words) + "\n"
    write_folder(tmp_path / "data", {"train.txt": line, "valid.txt": "w0\n", "test.txt": line})
    vocabulary = vocabulary_from_folder(tmp_path / "data")
    full = tokenize(tmp_path / "data" / "test.txt", vocabulary)
    assert full.tokens == words + [EOS]

    def peak_bytes(max_tokens: int | None) -> int:
        tracemalloc.start()
        text = tokenize(tmp_path / "data" / "test.txt", vocabulary, max_tokens)
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
        assert len(text) == (max_tokens or len(words) + 1)
        return peak

    assert peak_bytes(300) * 4 < peak_bytes(None)
    site = report_of(cli, tmp_path, vocabulary.words)
    tokens = gzip.decompress((site / "data" / "tokens.csv.gz").read_bytes()).decode("utf-8")
    assert tokens.count("\n") == 1 + 300


def test_vocabulary_of_a_hundred_thousand_words_keeps_memory_and_pages_bounded(
        cli: CliServer, tmp_path: Path) -> None:
    """Each capture chunk holds a (chunk, V) matrix of log-probabilities. Thirteen times more
    tokens must not cost more memory; before chunks were sized by V, 4,000 tokens took 1.4 GB
    more than 300. The long run stops at its first write, once the capture and analyses are
    done, so that it does not spend seconds rendering 4,000 tokens."""
    words = [f"word{i}" for i in range(100_000)]
    lines = "".join(" ".join(words[i:i + 20]) + "\n" for i in range(0, len(words), 20))
    write_folder(tmp_path / "data", {"train.txt": lines, "valid.txt": "word1\n",
                                     "test.txt": lines})
    save_checkpoint(untrained_model(len(words) + 1, 1), tmp_path / "model.pt")  # and <eos>
    args = list(report("model.pt", "--data", "data", "--no-clusters", "--top-neurons", "1"))
    short = cli.run(args + ["--max-tokens", "300", "--out", "site"], tmp_path,
                    timeout=LIMIT_SECONDS)
    assert short.returncode == 0, short.stderr
    long = cli.run(args + ["--max-tokens", "4000", "--out", "long"], tmp_path, fault="eacces",
                   timeout=LIMIT_SECONDS)
    assert_one_line_error(long, "permission denied")
    assert long.peak_rss_kb - short.peak_rss_kb < 200_000
    summary = json.loads((tmp_path / "site" / "data" / "report.json").read_text(encoding="utf-8"))
    assert summary["model"]["vocabulary_size"] == len(words) + 1
    pages = list((tmp_path / "site").rglob("*.html"))
    assert pages and max(page.stat().st_size for page in pages) < 1_000_000


def test_train_leaves_no_torchinductor_folder_in_tmpdir(workspace: Path, tmp_path: Path,
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    """torch makes `$TMPDIR/torchinductor_<user>` when a compiler module is first imported,
    which some devices' code paths do during training; training compiles nothing, so it must
    leave TMPDIR as it found it. The command runs as users run it, and in-process a training
    epoch asks for the folder as `import torch._dynamo` does, since a CPU build's epoch does not."""
    from torch._inductor.runtime.cache_dir_utils import cache_dir  # noqa: PLC0415

    command_tmp = tmp_path / "command-tmp"
    command_tmp.mkdir()
    result = run_cli(["train", "--data", "data", "--out", str(tmp_path / "run"), "--epochs", "1",
                      "--batch-size", "1", "--emsize", "4", "--nhid", "4", "--quiet"],
                     workspace, env={"TMPDIR": str(command_tmp)})
    assert result.returncode == 0, result.stderr
    assert list(command_tmp.iterdir()) == []

    training = importlib.import_module("reportgen.training.train")
    own_tmp = tmp_path / "own-tmp"
    own_tmp.mkdir()
    (own_tmp / "torchinductor_someone").mkdir()  # not made by this run: kept
    monkeypatch.setattr(tempfile, "tempdir", str(own_tmp))
    monkeypatch.delenv("TORCHINDUCTOR_CACHE_DIR", raising=False)
    epoch = training.train_epoch

    def epoch_that_imports_dynamo(*args: object) -> None:
        cache_dir()
        epoch(*args)

    monkeypatch.setattr(training, "train_epoch", epoch_that_imports_dynamo)
    training.train(workspace / "data", tmp_path / "run-in-process",
                   training.TrainConfig(epochs=1, batch_size=1, emsize=4, nhid=4), progress=False)
    assert [path.name for path in own_tmp.iterdir()] == ["torchinductor_someone"]
