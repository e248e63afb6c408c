"""AWD-LSTM checkpoints (salesforce and fastai layouts) and old whole-module pickles load into
reportgen's own classes, and their perplexity matches an independent evaluation through each
layout's own classes (tests/awd_transcriptions.py) within 1e-4 relative."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from awd_transcriptions import (
    fastai_language_model,
    fastai_perplexity,
    save_legacy_examples,
    save_salesforce,
)

from reportgen.capture.core import CaptureOptions, capture, next_word_log_probs
from reportgen.cli.main import main as cli_main
from reportgen.errors import ReportgenError
from reportgen.inputs.checkpoint import LoadedModel, load_checkpoint, save_checkpoint
from reportgen.inputs.model import LayeredModel

NTOKEN = 60
# 400/1150/400 scaled down: emsize 12, inner layers 30, the tied last layer 12
EMSIZE, NHID, NLAYERS = 12, 30, 3


def text_ids(n: int = 400, ntoken: int = NTOKEN, seed: int = 5) -> torch.Tensor:
    return torch.randint(0, ntoken, (n,), generator=torch.Generator().manual_seed(seed))


def report_perplexity(loaded: LoadedModel, ids: torch.Tensor, chunk_size: int = 128) -> float:
    """The perplexity reportgen's capture gives; the chunks carry the state across them."""
    words = [f"w{i}" for i in range(loaded.hyperparameters.ntoken)]
    tokens = [words[i] for i in ids.tolist()]
    captured = capture(loaded.model, ids.numpy(), tokens, words,
                       CaptureOptions(device="cpu", chunk_size=chunk_size, progress=False))
    return captured.perplexity()


@pytest.mark.parametrize("wdrop, forward_first", [(0.5, True), (0.5, False), (0.0, True)])
def test_salesforce_model_pt_with_layers_of_different_widths(
        tmp_path: Path, wdrop: float, forward_first: bool) -> None:
    ids = text_ids()
    path, expected, _ = save_salesforce(tmp_path, "model.pt", 1, NTOKEN, EMSIZE, NHID, NLAYERS,
                                        [], ids, wdrop=wdrop, forward_first=forward_first)
    if not forward_first:  # the file was saved before any forward: evaluate it afresh
        _, expected, _ = save_salesforce(tmp_path, "again.pt", 1, NTOKEN, EMSIZE, NHID, NLAYERS,
                                         [], ids, wdrop=wdrop)
    loaded = load_checkpoint(path)
    assert loaded.format == "salesforce awd-lstm pickle"
    assert isinstance(loaded.model, LayeredModel)
    hyper = loaded.hyperparameters
    assert hyper.widths == [NHID, NHID, EMSIZE] and hyper.tied and hyper.splits is None
    assert hyper.dropout == pytest.approx(0.4)
    assert report_perplexity(loaded, ids) == pytest.approx(expected, rel=1e-4)


@pytest.mark.parametrize("splits", [[20, 45], [20, 45, 70], [7]])
def test_split_softmax_follows_the_criterion(tmp_path: Path, splits: list[int]) -> None:
    """[20, 45, 70] leaves the last cluster empty in a vocabulary of 60: its head entry still
    takes its share of the head's softmax. With two clusters, the first takes the last tail
    vector, as the criterion reads column -k."""
    ids = text_ids()
    path, expected, _ = save_salesforce(tmp_path, "model.pt", 2, NTOKEN, EMSIZE, NHID, NLAYERS,
                                        splits, ids)
    loaded = load_checkpoint(path)
    assert loaded.hyperparameters.splits == splits
    assert report_perplexity(loaded, ids) == pytest.approx(expected, rel=1e-4)
    log_p = next_word_log_probs(loaded.model, torch.randn(5, EMSIZE))  # (5, V)
    total = log_p.exp().sum(dim=1)  # the empty cluster's share is missing from the words
    assert bool((total <= 1 + 1e-5).all()) and bool((total > 0.2).all())
    if len(splits) == 2:
        assert torch.allclose(total, torch.ones(5), atol=1e-5)


def test_state_dict_with_tail_vectors_takes_the_splits_of_main_py(tmp_path: Path) -> None:
    """Above 75,000 words main.py splits at [2800, 20000, 76000]: with 75,001 words the last
    cluster is empty, and its head entry still counts. A state dict that carries the
    criterion's tail vectors gets those splits back."""
    ntoken = 75_001
    ids = text_ids(80, ntoken)
    path, expected, state = save_salesforce(tmp_path, "model.pt", 10, ntoken, 4, 6, 2,
                                            [2800, 20000, 76000], ids)
    whole = load_checkpoint(path)
    assert whole.hyperparameters.splits == [2800, 20000, 76000]
    state.update(tail_vectors=whole.model.tail_vectors.detach(),
                 tail_bias=whole.model.tail_bias.detach())
    torch.save(state, tmp_path / "state.pt")
    loaded = load_checkpoint(tmp_path / "state.pt")
    assert loaded.hyperparameters.splits == [2800, 20000, 76000]
    assert report_perplexity(loaded, ids) == pytest.approx(expected, rel=1e-4)


def test_split_softmax_top_guesses_are_the_most_likely_words(tmp_path: Path) -> None:
    ids = text_ids()
    path, _, _ = save_salesforce(tmp_path, "model.pt", 3, NTOKEN, EMSIZE, NHID, NLAYERS,
                                 [20, 45], ids)
    loaded = load_checkpoint(path)
    words = [f"w{i}" for i in range(NTOKEN)]
    captured = capture(loaded.model, ids.numpy(), [words[i] for i in ids.tolist()], words,
                       CaptureOptions(device="cpu", progress=False))
    h = torch.from_numpy(np.asarray(captured.states[(NLAYERS, "h")][:10]))
    best = next_word_log_probs(loaded.model, h).topk(5, dim=1)
    assert np.array_equal(captured.top_ids[:10], best.indices.numpy())
    assert np.allclose(captured.top_log_probs[:10], best.values.numpy(), atol=1e-5)


@pytest.mark.parametrize("wdrop", [0.5, 0.0])
def test_salesforce_state_dicts_load(tmp_path: Path, wdrop: float) -> None:
    ids = text_ids()
    _, expected, state = save_salesforce(tmp_path, "model.pt", 4, NTOKEN, EMSIZE, NHID, NLAYERS,
                                         [], ids, wdrop=wdrop)
    assert any(".module.weight_hh_l0_raw" in key for key in state) == bool(wdrop)
    torch.save(state, tmp_path / "state.pt")
    loaded = load_checkpoint(tmp_path / "state.pt")
    assert loaded.format == "salesforce awd-lstm state dict"
    assert loaded.hyperparameters.widths == [NHID, NHID, EMSIZE]
    assert report_perplexity(loaded, ids) == pytest.approx(expected, rel=1e-4)


def test_gru_layers(tmp_path: Path) -> None:
    """salesforce's GRU layers end at emsize tied or not; untied, its init_hidden and decoder
    expect nhid, so only the tied GRU runs in its own code."""
    ids = text_ids()
    path, expected, _ = save_salesforce(tmp_path, "model.pt", 5, NTOKEN, EMSIZE, NHID, 2, [],
                                        ids, rnn_type="GRU")
    loaded = load_checkpoint(path)
    assert loaded.hyperparameters.rnn_type == "GRU"
    assert loaded.hyperparameters.widths == [NHID, EMSIZE]
    assert report_perplexity(loaded, ids) == pytest.approx(expected, rel=1e-4)


@pytest.mark.parametrize("old_copy", [False, True])
def test_fastai_language_model_state_dict(tmp_path: Path, old_copy: bool) -> None:
    """fastai v1 kept the dropped copy `module.weight_hh_l0` as well; it is spoilt here, so
    only a loader that takes `weight_hh_l0_raw` matches."""
    ids = text_ids()
    model = fastai_language_model(NTOKEN, EMSIZE, NHID, NLAYERS, seed=6, old_copy=old_copy)
    expected = fastai_perplexity(model, ids)
    state = model.state_dict()
    assert "0.encoder_dp.emb.weight" in state and "0.rnns.0.weight_hh_l0_raw" in state
    assert ("0.rnns.0.module.weight_hh_l0" in state) == old_copy
    if old_copy:
        state = {key: torch.zeros_like(value) if key.endswith("module.weight_hh_l0") else value
                 for key, value in state.items()}
    torch.save(state, tmp_path / "lm.pth")
    loaded = load_checkpoint(tmp_path / "lm.pth")
    assert loaded.format == "fastai state dict"
    assert loaded.hyperparameters.widths == [NHID, NHID, EMSIZE] and loaded.hyperparameters.tied
    assert report_perplexity(loaded, ids) == pytest.approx(expected, rel=1e-4)


def test_fastai_learner_save_with_its_optimizer(tmp_path: Path) -> None:
    model = fastai_language_model(NTOKEN, EMSIZE, NHID, 2, seed=7)
    torch.save({"model": model.state_dict(), "opt": {"state": {}, "hypers": [{"lr": 0.01}]}},
               tmp_path / "learner.pth")
    loaded = load_checkpoint(tmp_path / "learner.pth")
    assert loaded.format == "fastai state dict"
    assert loaded.hyperparameters.widths == [NHID, EMSIZE]


def test_legacy_whole_module_pickle_of_an_old_pytorch(tmp_path: Path) -> None:
    ids = text_ids()
    path, expected = save_legacy_examples(tmp_path, "legacy.pt", 8, NTOKEN, 20, 2, ids)
    assert not path.read_bytes().startswith(b"PK")  # the non-zip format of PyTorch < 1.6
    loaded = load_checkpoint(path)
    assert loaded.format == "pytorch-examples pickle (legacy format)"
    assert (loaded.hyperparameters.nhid, loaded.hyperparameters.nlayers) == (20, 2)
    assert report_perplexity(loaded, ids) == pytest.approx(expected, rel=1e-4)


def test_own_format_keeps_the_widths_and_the_split_softmax(tmp_path: Path) -> None:
    ids = text_ids()
    path, expected, _ = save_salesforce(tmp_path, "model.pt", 9, NTOKEN, EMSIZE, NHID, NLAYERS,
                                        [25], ids)
    save_checkpoint(load_checkpoint(path).model, tmp_path / "own.pt", None)
    again = load_checkpoint(tmp_path / "own.pt")
    assert again.format == "reportgen" and isinstance(again.model, LayeredModel)
    assert (again.hyperparameters.widths, again.hyperparameters.splits) == ([NHID, NHID, EMSIZE],
                                                                            [25])
    assert report_perplexity(again, ids) == pytest.approx(expected, rel=1e-4)


def test_qrnn_layers_are_refused_by_name(tmp_path: Path) -> None:
    path, _, _ = save_salesforce(tmp_path, "qrnn.pt", 1, NTOKEN, EMSIZE, NHID, 2, [],
                                 text_ids(), rnn_type="QRNN", forward_first=False)
    with pytest.raises(ReportgenError, match=r"holds QRNN layers \(torchqrnn.qrnn.QRNNLayer\)"):
        load_checkpoint(path)


def test_mismatched_tied_widths_are_refused(tmp_path: Path) -> None:
    _, _, state = save_salesforce(tmp_path, "model.pt", 1, NTOKEN, EMSIZE, NHID, 2, [],
                                  text_ids(), forward_first=False)
    top = {"rnns.1.module.weight_ih_l0": (4 * NHID, NHID), "rnns.1.module.weight_hh_l0_raw":
           (4 * NHID, NHID), "rnns.1.module.bias_ih_l0": (4 * NHID,),
           "rnns.1.module.bias_hh_l0": (4 * NHID,)}
    state.update({key: torch.zeros(shape) for key, shape in top.items()})
    torch.save(state, tmp_path / "state.pt")
    with pytest.raises(ReportgenError, match=r"tied to the embedding \(12 wide\), but the last "
                                             r"layer is 30 wide"):
        load_checkpoint(tmp_path / "state.pt")


def test_large_salesforce_state_dict_without_its_criterion_is_refused(tmp_path: Path) -> None:
    model = fastai_language_model(75_001, 4, 6, 2, seed=1).state_dict()
    state = {key.removeprefix("0.").removeprefix("1.").replace("rnns.0.weight_hh_l0_raw",
             "rnns.0.module.weight_hh_l0_raw").replace("rnns.1.weight_hh_l0_raw",
             "rnns.1.module.weight_hh_l0_raw"): value for key, value in model.items()
             if "encoder_dp" not in key}
    torch.save(state, tmp_path / "big.pt")
    with pytest.raises(ReportgenError, match="split softmax whose tail vectors live in the "
                                             "criterion"):
        load_checkpoint(tmp_path / "big.pt")


@pytest.fixture(scope="module")
def widths_workspace(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A salesforce model.pt of widths 30/30/12, a fastai state dict of widths 20/12, a
    vocabulary file and a text in the models' tokens."""
    root = tmp_path_factory.mktemp("widths")
    ids = text_ids(600, seed=9)
    save_salesforce(root, "awd.pt", 11, NTOKEN, EMSIZE, NHID, NLAYERS, [20, 45], ids)
    torch.save(fastai_language_model(NTOKEN, EMSIZE, 20, 2, seed=12).state_dict(),
               root / "fastai.pth")
    words = ["<eos>", *(f"w{i}" for i in range(1, NTOKEN))]  # the text's line ends
    (root / "vocab.txt").write_text("".join(word + "\n" for word in words), encoding="utf-8")
    lines = [" ".join(words[i] for i in ids[start : start + 12].tolist())
             for start in range(0, len(ids), 12)]
    (root / "text.txt").write_text("\n".join(lines) + "\n", encoding="utf-8")
    return root


def run_report(root: Path, *args: str) -> Path:
    out = root / f"report-{len(list(root.glob('report-*')))}"
    status = cli_main(["report", *args, "--vocabulary", str(root / "vocab.txt"), "--text",
                       str(root / "text.txt"), "--out", str(out), "--quiet", "--no-images",
                       "--max-points", "300", "--ablation-tokens", "60", "--top-neurons", "3",
                       "--device", "cpu"])
    assert status == 0
    return out


def test_every_stage_takes_layers_of_different_widths(widths_workspace: Path) -> None:
    out = run_report(widths_workspace, str(widths_workspace / "awd.pt"), "--maps", "L3-c")
    neurons = pd.read_csv(out / "data" / "neurons.csv")
    counts = neurons.groupby(["layer", "state"]).size().to_dict()
    assert counts == {(1, "c"): NHID, (1, "h"): NHID, (2, "c"): NHID, (2, "h"): NHID,
                      (3, "c"): EMSIZE, (3, "h"): EMSIZE}
    top = neurons[neurons.layer == NLAYERS]
    assert top["gate_f_left"].notna().all() and top["forget_time_constant"].notna().any()
    points = pd.read_csv(out / "data" / "points.csv")
    assert set(zip(points.layer, points.state)) == {(3, "c")}
    summary = json.loads((out / "data" / "report.json").read_text(encoding="utf-8"))
    assert summary["model"]["hyperparameters"]["widths"] == [NHID, NHID, EMSIZE]
    assert summary["model"]["hyperparameters"]["splits"] == [20, 45]
    page = (out / "index.html").read_text(encoding="utf-8")
    assert "30/30/12 units" in page


def test_models_of_different_widths_are_aligned_and_compared(widths_workspace: Path) -> None:
    """Layer 1 has 30 units in one model and 20 in the other: a rectangular assignment
    matches 20 of the 30, and CKA compares the layers whatever their widths."""
    root = widths_workspace
    out = run_report(root, f"awd={root / 'awd.pt'}", f"fastai={root / 'fastai.pth'}",
                     "--no-clusters")
    alignment = pd.read_csv(out / "data" / "alignment.csv")
    layer_1 = alignment[(alignment.layer == 1) & (alignment.state == "h")]
    from_awd = layer_1[layer_1.model_a == "awd"]
    assert len(from_awd) == NHID and from_awd.matched_unit.notna().sum() == 20
    from_fastai = layer_1[layer_1.model_a == "fastai"]
    assert len(from_fastai) == 20 and from_fastai.matched_unit.notna().all()
    similarity = pd.read_csv(out / "data" / "similarity.csv")
    assert len(similarity) and similarity.select_dtypes("number").notna().any().any()
    assert (out / "awd" / "index.html").is_file() and (out / "fastai" / "index.html").is_file()
