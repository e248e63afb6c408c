"""Checkpoints load safely in all three formats, and nothing else loads."""

from __future__ import annotations

import os
import pickle
import sys
import textwrap
from pathlib import Path

import pytest
import torch

from reportgen.errors import ReportgenError
from reportgen.inputs.checkpoint import load_checkpoint, save_checkpoint
from reportgen.inputs.model import RNNModel

EXAMPLES_MODEL_PY = textwrap.dedent('''
    import torch.nn as nn

    class RNNModel(nn.Module):
        """pytorch/examples word_language_model/model.py, as far as pickling sees it."""
        def __init__(self, rnn_type, ntoken, ninp, nhid, nlayers, dropout=0.5, tie_weights=False):
            super(RNNModel, self).__init__()
            self.ntoken = ntoken
            self.drop = nn.Dropout(dropout)
            self.encoder = nn.Embedding(ntoken, ninp)
            if rnn_type in ['LSTM', 'GRU']:
                self.rnn = getattr(nn, rnn_type)(ninp, nhid, nlayers, dropout=dropout)
            else:
                nonlinearity = {'RNN_TANH': 'tanh', 'RNN_RELU': 'relu'}[rnn_type]
                self.rnn = nn.RNN(ninp, nhid, nlayers, nonlinearity=nonlinearity, dropout=dropout)
            self.decoder = nn.Linear(nhid, ntoken)
            if tie_weights:
                self.decoder.weight = self.encoder.weight
            self.init_weights()
            self.rnn_type = rnn_type
            self.nhid = nhid
            self.nlayers = nlayers

        def init_weights(self):
            initrange = 0.1
            nn.init.uniform_(self.encoder.weight, -initrange, initrange)
            nn.init.zeros_(self.decoder.bias)
            nn.init.uniform_(self.decoder.weight, -initrange, initrange)

    class TransformerModel(nn.Module):
        def __init__(self):
            super().__init__()
            self.encoder = nn.Embedding(10, 4)
''')


def save_with_examples_module(tmp_path: Path, build: str, name: str) -> tuple[Path, dict]:
    """Pickle an object of a class from a real module named `model`, then forget the module,
    so loading it cannot borrow that code."""
    (tmp_path / "model.py").write_text(EXAMPLES_MODEL_PY, encoding="utf-8")
    sys.path.insert(0, str(tmp_path))
    try:
        import model as examples_model  # noqa: PLC0415

        obj = eval(build, {"model": examples_model, "torch": torch})
        path = tmp_path / name
        torch.save(obj, path)
        return path, {k: v.clone() for k, v in obj.state_dict().items()}
    finally:
        sys.path.remove(str(tmp_path))
        sys.modules.pop("model", None)
        (tmp_path / "model.py").unlink()


@pytest.mark.parametrize(
    "rnn_type, tied", [("LSTM", False), ("LSTM", True), ("GRU", False), ("RNN_TANH", False),
                       ("RNN_RELU", True)],
)
def test_examples_pickle_loads_with_its_weights(tmp_path: Path, rnn_type: str, tied: bool) -> None:
    path, expected = save_with_examples_module(
        tmp_path, f"model.RNNModel('{rnn_type}', 30, 12, 12, 2, 0.35, {tied})", "m.pt")
    loaded = load_checkpoint(path)
    assert loaded.format == "pytorch-examples pickle"
    hyper = loaded.hyperparameters
    assert (hyper.rnn_type, hyper.ntoken, hyper.emsize, hyper.nhid, hyper.nlayers) == (rnn_type, 30, 12, 12, 2)
    assert hyper.dropout == pytest.approx(0.35) and hyper.tied == tied
    assert isinstance(loaded.model, RNNModel) and not loaded.model.training
    for key, value in expected.items():
        assert torch.equal(loaded.model.state_dict()[key], value), key


def test_transformer_from_the_same_script_is_refused_by_name(tmp_path: Path) -> None:
    path, _ = save_with_examples_module(tmp_path, "model.TransformerModel()", "t.pt")
    with pytest.raises(ReportgenError, match=r"holds a Transformer \(model.TransformerModel\), "
                                             "which reportgen does not read") as refused:
        load_checkpoint(path)
    assert "--allow-unsafe-pickle" not in str(refused.value)  # the first message says it all


def test_plain_module_is_refused_by_name(tmp_path: Path) -> None:
    path = tmp_path / "seq.pt"
    torch.save(torch.nn.Sequential(torch.nn.Linear(2, 2)), path)
    with pytest.raises(ReportgenError, match="torch.nn.modules.container.Sequential"):
        load_checkpoint(path)


class _CreatesFile:
    """Unpickling this runs a shell command: the classic code-in-a-checkpoint attack."""

    def __init__(self, target: Path):
        self.target = target

    def __reduce__(self):
        return (os.system, (f"touch '{self.target}'",))


def test_malicious_pickle_never_runs(tmp_path: Path) -> None:
    target = tmp_path / "pwned"
    path = tmp_path / "evil.pt"
    torch.save({"state_dict": _CreatesFile(target)}, path)
    with pytest.raises(ReportgenError, match=r"names (posix|os)\.system"):
        load_checkpoint(path)
    assert not target.exists()
    raw = tmp_path / "evil.pkl"
    raw.write_bytes(pickle.dumps(_CreatesFile(target)))
    with pytest.raises(ReportgenError):
        load_checkpoint(raw)
    assert not target.exists()


def test_own_format_round_trips_with_vocabulary_and_metadata(tmp_path: Path) -> None:
    model = RNNModel("GRU", 20, 8, 8, 1, 0.1)
    save_checkpoint(model, tmp_path / "own.pt", [f"w{i}" for i in range(20)], {"seed": 5})
    loaded = load_checkpoint(tmp_path / "own.pt")
    assert loaded.format == "reportgen" and loaded.vocabulary[3] == "w3"
    assert loaded.metadata == {"seed": 5} and loaded.hyperparameters.rnn_type == "GRU"
    for key, value in model.state_dict().items():
        assert torch.equal(loaded.model.state_dict()[key], value)


def test_state_dict_hyperparameters_are_inferred(tmp_path: Path) -> None:
    model = RNNModel("LSTM", 25, 10, 14, 3, 0.0)
    torch.save(model.state_dict(), tmp_path / "sd.pt")
    loaded = load_checkpoint(tmp_path / "sd.pt")
    hyper = loaded.hyperparameters
    assert (hyper.rnn_type, hyper.ntoken, hyper.emsize, hyper.nhid, hyper.nlayers, hyper.tied) == (
        "LSTM", 25, 10, 14, 3, False)


def test_a_plain_rnn_state_dict_needs_its_rnn_type(tmp_path: Path) -> None:
    """A state dict of RNN_RELU and one of RNN_TANH hold the same tensors: guessing tanh gave a
    ReLU model a perplexity of 4,904 instead of 1,299, with no error."""
    model = RNNModel("RNN_RELU", 25, 10, 14, 2, 0.0)
    torch.save(model.state_dict(), tmp_path / "sd.pt")
    with pytest.raises(ReportgenError, match="--rnn-type RNN_TANH or --rnn-type RNN_RELU"):
        load_checkpoint(tmp_path / "sd.pt")
    relu = load_checkpoint(tmp_path / "sd.pt", rnn_type="RNN_RELU")
    assert relu.hyperparameters.rnn_type == "RNN_RELU" and relu.model.rnn.nonlinearity == "relu"
    tanh = load_checkpoint(tmp_path / "sd.pt", rnn_type="RNN_TANH")
    assert tanh.model.rnn.nonlinearity == "tanh"
    ids = torch.randint(0, 25, (40, 1))
    with torch.no_grad():
        saved, _ = model.eval()(ids, model.init_hidden(1))
        as_relu, _ = relu.model(ids, relu.model.init_hidden(1))
        as_tanh, _ = tanh.model(ids, tanh.model.init_hidden(1))
    torch.testing.assert_close(as_relu, saved)  # the override makes the saved model's numbers
    assert not torch.allclose(as_tanh, saved, atol=1e-3)  # and the other type gives others


@pytest.mark.parametrize("saved, given", [("GRU", "LSTM"), ("LSTM", "RNN_RELU"), ("GRU", "RNN_TANH")])
def test_an_rnn_type_that_contradicts_the_state_dict_is_refused(tmp_path: Path, saved: str,
                                                                 given: str) -> None:
    torch.save(RNNModel(saved, 25, 10, 14, 1, 0.0).state_dict(), tmp_path / "sd.pt")
    with pytest.raises(ReportgenError, match=f"--rnn-type {given} .* {saved}"):
        load_checkpoint(tmp_path / "sd.pt", rnn_type=given)


def test_an_rnn_type_that_contradicts_a_whole_checkpoint_is_refused(tmp_path: Path) -> None:
    save_checkpoint(RNNModel("RNN_TANH", 20, 8, 8, 1), tmp_path / "own.pt")
    with pytest.raises(ReportgenError, match="--rnn-type RNN_RELU .* RNN_TANH"):
        load_checkpoint(tmp_path / "own.pt", rnn_type="RNN_RELU")
    assert load_checkpoint(tmp_path / "own.pt", rnn_type="RNN_TANH").model.rnn.nonlinearity == "tanh"


def test_state_dict_with_missing_keys_fails_clearly(tmp_path: Path) -> None:
    state = RNNModel("LSTM", 25, 10, 14, 2, 0.0).state_dict()
    del state["rnn.weight_ih_l1"]
    torch.save(state, tmp_path / "sd.pt")
    with pytest.raises(ReportgenError, match="does not fit the model"):
        load_checkpoint(tmp_path / "sd.pt")


@pytest.mark.parametrize("cut", [0.5, 0.9])
def test_truncated_checkpoint_fails_clearly(tmp_path: Path, cut: float) -> None:
    save_checkpoint(RNNModel("LSTM", 20, 8, 8, 1), tmp_path / "full.pt")
    data = (tmp_path / "full.pt").read_bytes()
    (tmp_path / "cut.pt").write_bytes(data[: int(len(data) * cut)])
    with pytest.raises(ReportgenError, match="not a readable PyTorch checkpoint"):
        load_checkpoint(tmp_path / "cut.pt")


def test_text_file_is_not_a_checkpoint(tmp_path: Path) -> None:
    (tmp_path / "notes.pt").write_text("hello", encoding="utf-8")
    with pytest.raises(ReportgenError, match="not a readable PyTorch checkpoint|not a PyTorch"):
        load_checkpoint(tmp_path / "notes.pt")


def test_the_dropout_of_a_state_dict_is_unknown(tmp_path: Path) -> None:
    """A state dict does not hold its dropout: the report says unknown, not 0.0."""
    import json  # noqa: PLC0415

    from reportgen.render.pages import SiteOptions  # noqa: PLC0415
    from reportgen.runs.report import ReportConfig, build_report  # noqa: PLC0415

    model = RNNModel("LSTM", 7, 4, 6, 1, 0.5)
    torch.save(model.state_dict(), tmp_path / "sd.pt")
    assert load_checkpoint(tmp_path / "sd.pt").hyperparameters.dropout is None
    save_checkpoint(model, tmp_path / "own.pt")
    assert load_checkpoint(tmp_path / "own.pt").hyperparameters.dropout == 0.5
    data = tmp_path / "data"
    data.mkdir()
    for name in ("train.txt", "valid.txt", "test.txt"):
        (data / name).write_text("the cat sat on the mat .\n" * 3, encoding="utf-8")
    out = build_report(ReportConfig(tmp_path / "sd.pt", tmp_path / "site", data=data, quiet=True,
                                    embed_states=(), cache=None,
                                    site=SiteOptions(top_neurons=1, images=False)))
    summary = json.loads((out / "data" / "report.json").read_text(encoding="utf-8"))
    assert summary["model"]["hyperparameters"]["dropout"] is None
    pages = "".join(page.read_text(encoding="utf-8") for page in out.glob("*.html"))
    assert "<th>dropout</th><td>unknown</td>" in pages
    assert "<th>dropout</th><td>0.0</td>" not in pages


@pytest.mark.parametrize("rnn_type, tied", [("LSTM", True), ("LSTM", False), ("GRU", True),
                                            ("RNN_RELU", True)])
def test_same_seed_gives_the_examples_model(tmp_path: Path, rnn_type: str, tied: bool) -> None:
    """pytorch/examples main.py seeds, then builds RNNModel, whose init_weights draws the tied
    weight twice: `reportgen train` must give the very same weights for the same seed."""
    _, theirs = save_with_examples_module(
        tmp_path, f"(torch.manual_seed(11), model.RNNModel('{rnn_type}', 30, 12, 12, 2, 0.2, "
        f"{tied}))[1]", "m.pt")
    torch.manual_seed(11)
    ours = RNNModel(rnn_type, 30, 12, 12, 2, 0.2, tied).state_dict()
    assert ours.keys() == theirs.keys()
    for key, value in theirs.items():
        assert torch.equal(ours[key], value), key
