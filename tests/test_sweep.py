"""Sweeps through the real command: `reportgen train` with several dropouts, then `reportgen
report` on the models, and the comparison page checked against figures computed here from each
model's own capture.

The sweep is three tiny LSTMs (embedding 16, 24 units, one epoch) on the built-in corpus,
about two seconds each on one core; the reports skip t-SNE (--no-clusters) and read 1,500 tokens.
Commands run in children forked from one process that imported the CLI once (see clitools).
"""

from __future__ import annotations

import html
import json
import math
import re
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from browsertools import check_page, checking_context, chromium
from clitools import CliResult, CliServer, assert_one_line_error
from test_comparison import independent_kl_scores, near_zero_count, page_specs

from reportgen.capture.core import capture, state_name
from reportgen.errors import ReportgenError
from reportgen.inputs.checkpoint import load_checkpoint
from reportgen.inputs.corpus import tokenize, vocabulary_from_folder
from reportgen.runs.model_specs import (
    ModelSpec,
    parse_model_argument,
    read_models_file,
    select_models,
)
from reportgen.training import synthetic

DROPOUTS = ("0", "0.3", "0.6")
NAMES = tuple(f"lstm-d{d}-s1" for d in DROPOUTS)
TINY = ("--emsize", "16", "--nhid", "24", "--nlayers", "2", "--epochs", "1", "--batch-size",
        "10", "--bptt", "20")
MAX_TOKENS = 1500
REPORT_FLAGS = ("--no-clusters", "--no-images", "--top-neurons", "1", "--quiet")
CHART_REL = 5e-4  # a chart keeps 4 significant digits (pages.SIGNIFICANT_DIGITS)


@pytest.fixture(scope="module")
def work(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("sweep")
    synthetic.write_corpus(folder / "corpus", seed=0, n_train=60_000, n_valid=2_000,
                           n_test=2_000)
    return folder


@pytest.fixture(scope="module")
def trained(cli: CliServer, work: Path) -> CliResult:
    return cli.run(["train", "--data", "corpus", "--out", "runs", *TINY, "--dropout", *DROPOUTS,
                    "--seed", "1", "--quiet"], work)


@pytest.fixture(scope="module")
def compared(cli: CliServer, work: Path, trained: CliResult) -> CliResult:
    """Three good models (the last renamed and given a seed) and one truncated checkpoint."""
    good = (work / "runs" / NAMES[0] / "model.pt").read_bytes()
    (work / "broken.pt").write_bytes(good[: len(good) // 2])
    models = [f"runs/{NAMES[0]}/model.pt", f"runs/{NAMES[1]}/model.pt",
              f"late=runs/{NAMES[2]}/model.pt:seed=7", "broken=broken.pt"]
    return cli.run(["report", *models, "--data", "corpus", "--out", "compared",
                    "--max-tokens", str(MAX_TOKENS), "--name", "Dropout sweep",
                    *REPORT_FLAGS], work)


def test_sweep_trains_one_model_per_setting_and_prints_the_table(trained: CliResult,
                                                                 work: Path) -> None:
    assert trained.returncode == 0, trained.stderr
    table = pd.read_csv(work / "runs" / "sweep.csv")
    assert list(table.model) == list(NAMES)
    for name, dropout in zip(NAMES, DROPOUTS):
        loaded = load_checkpoint(work / "runs" / name / "model.pt")
        assert loaded.metadata["dropout"] == float(dropout) == loaded.hyperparameters.dropout
        assert loaded.metadata["seed"] == 1
        log = json.loads((work / "runs" / name / "train_log.json").read_text())
        row = table[table.model == name].iloc[0]
        assert row.valid_perplexity == pytest.approx(log["valid_perplexity"], rel=1e-5)
        assert row.test_perplexity == pytest.approx(log["test_perplexity"], rel=1e-5)
        line = next(line for line in trained.stdout.splitlines() if line.startswith(name + " "))
        assert line.split()[1:5] == [dropout, "1", f"{log['valid_perplexity']:.2f}",
                                     f"{log['test_perplexity']:.2f}"]


def test_a_failed_combination_keeps_the_others(cli: CliServer, work: Path) -> None:
    out = work / "partial"
    out.mkdir()
    (out / "lstm-d0.5-s1").write_text("a file where the model's folder should go\n")
    result = cli.run(["train", "--data", "corpus", "--out", "partial", *TINY,
                      "--max-train-tokens", "4000", "--dropout", "0", "0.5", "--seed", "1",
                      "--quiet"], work)
    assert_one_line_error(result, "1 of 2 models failed (lstm-d0.5-s1)")
    assert (out / "lstm-d0-s1" / "model.pt").is_file()
    failed = next(line for line in result.stdout.splitlines() if line.startswith("lstm-d0.5-s1 "))
    assert "failed" in failed.split()
    table = pd.read_csv(out / "sweep.csv", keep_default_na=False)
    assert table.set_index("model").error["lstm-d0-s1"] == ""
    assert "FileExistsError" in table.set_index("model").error["lstm-d0.5-s1"]


def test_bad_sweep_settings_fail_before_any_training(cli: CliServer, work: Path) -> None:
    result = cli.run(["train", "--data", "corpus", "--out", "never", "--dropout", "0", "1.5"],
                     work)
    assert_one_line_error(result, "--dropout must be in [0, 1), not 1.5")
    result = cli.run(["train", "--data", "corpus", "--out", "never", "--seed", "3", "3"], work)
    assert_one_line_error(result, "--seed lists 3 more than once")
    assert not (work / "never").exists()


@pytest.fixture
def one_torch_thread() -> Iterator[None]:
    """The captures here run on one thread: torch's pool spins on a busy machine (see clitools)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def independent_figures(work: Path, name: str) -> dict:
    """Perplexity from the model's own forward pass; per state, mean |x|, the near-zero count
    and (for h) the KL scores, from a capture run here."""
    loaded = load_checkpoint(work / "runs" / name / "model.pt")
    vocabulary = vocabulary_from_folder(work / "corpus")
    text = tokenize(work / "corpus" / "test.txt", vocabulary, MAX_TOKENS)
    with torch.no_grad():
        log_probs, _ = loaded.model(torch.as_tensor(text.ids).view(-1, 1),
                                    loaded.model.init_hidden(1))  # (T, V)
    next_log_probs = log_probs[:-1].gather(1, torch.as_tensor(text.ids[1:]).view(-1, 1))
    cap = capture(loaded.model, text.ids, text.tokens, vocabulary.words)
    states = {}
    for key, values in cap.states.items():
        states[state_name(key)] = {
            "mean_abs": float(np.abs(values.astype(np.float64)).mean()),
            "n_near_zero": near_zero_count(values),
            "kl": independent_kl_scores(values, -1.0, 1.0) if key[1] == "h" else None,
        }
    return {"perplexity": math.exp(-next_log_probs.double().mean().item()), "states": states}


def test_each_figure_equals_one_computed_from_the_models_own_capture(
        compared: CliResult, work: Path, one_torch_thread: None) -> None:
    site = work / "compared"
    table = pd.read_csv(site / "data" / "comparison.csv")
    specs = page_specs((site / "index.html").read_text(encoding="utf-8"))
    perplexity_points = {r["model"]: r for r in specs["perplexity"]["data"]["values"]}
    mean_abs_points = {(r["model"], r["state"]): r for r in specs["mean-abs"]["data"]["values"]}
    near_zero_points = {(r["model"], r["state"]): r
                        for r in specs["near-zero"]["data"]["values"]}
    kl_boxes = {(r["model"], r["state"]): r for r in specs["kl-scores"]["data"]["values"]}
    shown = dict(zip(("lstm-d0-s1", "lstm-d0.3-s1", "late"), NAMES))
    assert set(table.model) == set(shown)
    for model, trained_name in shown.items():
        truth = independent_figures(work, trained_name)
        rows = table[table.model == model]
        assert rows.perplexity.iloc[0] == pytest.approx(truth["perplexity"], rel=1e-5)
        assert perplexity_points[model]["perplexity"] == pytest.approx(truth["perplexity"],
                                                                        rel=CHART_REL)
        assert len(rows) == len(truth["states"]) == 4
        for row in rows.itertuples():
            state = f"L{row.layer}-{row.state}"
            expected = truth["states"][state]
            assert row.mean_abs == pytest.approx(expected["mean_abs"], rel=1e-6)
            assert mean_abs_points[model, state]["mean_abs"] == pytest.approx(
                expected["mean_abs"], rel=CHART_REL)
            assert row.n_near_zero == expected["n_near_zero"]
            assert near_zero_points[model, state]["near_zero_share"] == pytest.approx(
                expected["n_near_zero"] / 24, rel=CHART_REL)
            if expected["kl"] is not None:
                q1, median, q3 = np.quantile(expected["kl"], [0.25, 0.5, 0.75])
                assert row.kl_score_median == pytest.approx(median, rel=1e-5)
                box = kl_boxes[model, state]
                assert [box["kl_q1"], box["kl_median"], box["kl_q3"]] == pytest.approx(
                    [q1, median, q3], rel=CHART_REL)
                assert box["kl_max"] == pytest.approx(expected["kl"].max(), rel=CHART_REL)


def test_page_tables_show_the_same_figures_as_the_export(compared: CliResult,
                                                         work: Path) -> None:
    page = (work / "compared" / "index.html").read_text(encoding="utf-8")
    table = pd.read_csv(work / "compared" / "data" / "comparison.csv")
    for row in table.itertuples():
        state = f"L{row.layer}-{row.state}"
        cells = re.search(rf'<tr data-model="{re.escape(row.model)}" data-state="{state}">'
                          r"(.*?)</tr>", page, re.S).group(1)
        values = [float(v) for v in re.findall(r'data-value="([^"]+)"', cells)]
        # dropout, seed, neurons, mean |x|, near-zero, share, KL q1, median, q3
        assert values[3] == pytest.approx(row.mean_abs, rel=1e-7)
        assert values[4] == row.n_near_zero
        assert values[7] == pytest.approx(row.kl_score_median, rel=1e-7)
        assert f'<a href="{row.model}/index.html">' in cells


def test_settings_come_from_the_checkpoint_or_the_argument(compared: CliResult,
                                                           work: Path) -> None:
    table = pd.read_csv(work / "compared" / "data" / "comparison.csv").drop_duplicates("model")
    settings = {row.model: (row.dropout, row.seed) for row in table.itertuples()}
    assert settings == {"lstm-d0-s1": (0.0, 1), "lstm-d0.3-s1": (0.3, 1), "late": (0.6, 7)}
    report = json.loads((work / "compared" / "late" / "data" / "report.json").read_text())
    assert report["model"]["metadata"]["seed"] == 7
    assert any("seed 7" in note for note in report["notes"])


def test_a_checkpoint_that_fails_to_load_is_shown_and_the_others_reported(
        compared: CliResult, work: Path) -> None:
    line = assert_one_line_error(compared, "1 of 4 models failed", "broken: ",
                                 "not a readable PyTorch checkpoint")
    assert "compared/index.html" in line
    assert "comparison written to compared/index.html" in compared.stdout
    site = work / "compared"
    page = (site / "index.html").read_text(encoding="utf-8")
    failures = page[page.index('id="failures"'):page.index("</section>")]
    assert '<strong class="failed-model">broken</strong>' in failures
    assert html.escape("not a readable PyTorch checkpoint") in failures
    assert not (site / "broken").exists()
    for name in ("lstm-d0-s1", "lstm-d0.3-s1", "late"):
        model_page = (site / name / "index.html").read_text(encoding="utf-8")
        assert 'href="../index.html">All models' in model_page
        assert 'href="../assets/style.css"' in model_page
        assert (site / name / "data" / "neurons.csv").is_file()
    for link in re.findall(r'href="([^"#]+)"', page):
        assert (site / link).is_file(), link


@pytest.mark.browser
def test_comparison_page_and_model_pages_draw_in_a_browser(compared: CliResult,
                                                           work: Path) -> None:
    """From file://, with no request outside it: every chart drawn, every link resolving."""
    with chromium() as browser:
        context = checking_context(browser)
        checks = [check_page(context, work / "compared", page)
                  for page in ("index.html", "late/index.html", "late/neurons.html",
                               "alignment/late-L1-h.html")]
    for check in checks:
        assert check.problems() == []
    assert [chart.id for chart in checks[0].charts] == [
        "chart-perplexity", "chart-mean-abs", "chart-near-zero", "chart-kl-scores",
        "chart-agreement", "chart-alignment-curve", "chart-cka-models", "chart-cka-layers"]


def test_config_file_lists_models_and_selects_them_by_name(cli: CliServer, work: Path,
                                                           trained: CliResult) -> None:
    (work / "models.toml").write_text(
        'data = "corpus"\n'
        + "".join(f'[[models]]\nname = "m{i}"\ncheckpoint = "runs/{name}/model.pt"\n'
                  for i, name in enumerate(NAMES))
        + "dropout = 0.65\n", encoding="utf-8")  # overrides the last model's stored 0.6
    result = cli.run(["report", "--config", "models.toml", "m2", "m0", "--out", "by-config",
                      "--max-tokens", "300", *REPORT_FLAGS], work)
    assert result.returncode == 0, result.stderr
    table = pd.read_csv(work / "by-config" / "data" / "comparison.csv").drop_duplicates("model")
    assert dict(zip(table.model, table.dropout)) == {"m0": 0.0, "m2": 0.65}
    assert sorted(p.name for p in (work / "by-config").iterdir() if p.name.startswith("m")) == [
        "m0", "m2"]


def test_unknown_model_name_in_the_config_is_a_clear_error(cli: CliServer, work: Path,
                                                           trained: CliResult) -> None:
    (work / "names.toml").write_text(
        f'[[models]]\nname = "base"\ncheckpoint = "runs/{NAMES[0]}/model.pt"\n', encoding="utf-8")
    result = cli.run(["report", "--config", "names.toml", "bsae", "--out", "unknown"], work)
    assert_one_line_error(result, "names.toml lists no model named 'bsae'; it lists base")
    assert not (work / "unknown").exists()


@pytest.fixture(scope="module")
def foreign_model(cli: CliServer, work: Path) -> Path:
    """A model of another corpus: another seed of the generator orders its words otherwise."""
    synthetic.write_corpus(work / "other-corpus", seed=1, n_train=40_000, n_valid=500,
                           n_test=500)
    result = cli.run(["train", "--data", "other-corpus", "--out", "other", *TINY,
                      "--max-train-tokens", "4000", "--quiet"], work)
    assert result.returncode == 0, result.stderr
    return work / "other" / "model.pt"


@pytest.mark.parametrize("data", [(), ("--data", "corpus")], ids=["stored", "from-data"])
def test_mixed_vocabularies_stop_the_run_and_say_what_differs(
        cli: CliServer, work: Path, trained: CliResult, foreign_model: Path,
        data: tuple[str, ...]) -> None:
    other = vocabulary_from_folder(work / "other-corpus").words
    ours = vocabulary_from_folder(work / "corpus").words
    assert other != ours
    result = cli.run(["report", f"runs/{NAMES[0]}/model.pt", "other/model.pt", *data,
                      "--out", "mixed", "--max-tokens", "300", *REPORT_FLAGS], work)
    line = assert_one_line_error(result, f"models {NAMES[0]} and other have different "
                                         "vocabularies", "same corpus")
    first = next((i for i, (a, b) in enumerate(zip(ours, other)) if a != b), None)
    if first is not None:
        assert f"first difference at id {first}: {ours[first]!r} and {other[first]!r}" in line
    assert not (work / "mixed").exists()


def test_no_loadable_model_writes_nothing(cli: CliServer, work: Path) -> None:
    (work / "empty.pt").write_bytes(b"")
    result = cli.run(["report", "a=empty.pt", "b=absent.pt", "--data", "corpus", "--out",
                      "nothing"], work)
    assert_one_line_error(result, "none of the 2 models could be loaded", "the file is empty")
    assert not (work / "nothing").exists()


@pytest.mark.parametrize("argument, expected", [
    ("runs/a/model.pt", ModelSpec(Path("runs/a/model.pt"))),
    ("base=runs/a/model.pt", ModelSpec(Path("runs/a/model.pt"), "base")),
    ("b=m.pt:dropout=0.5:seed=2", ModelSpec(Path("m.pt"), "b", 0.5, 2)),
    ("m.pt:seed=3", ModelSpec(Path("m.pt"), None, None, 3)),
    ("./x=y.pt", ModelSpec(Path("./x=y.pt"))),
])
def test_model_arguments_parse(argument: str, expected: ModelSpec) -> None:
    assert parse_model_argument(argument) == expected


@pytest.mark.parametrize("argument, fragment", [
    ("m.pt:lr=2", "unknown setting 'lr'"),
    ("m.pt:dropout=high", "dropout must be a number, not 'high'"),
    ("m.pt:seed=1.5", "seed must be a whole number"),
    ("m.pt:seed=1:seed=2", "seed is given twice"),
    ("m.pt:dropout=1", "dropout must be in [0, 1)"),
    ("name=", "no checkpoint path"),
])
def test_bad_model_arguments_say_what_is_wrong(argument: str, fragment: str) -> None:
    with pytest.raises(ReportgenError, match=re.escape(fragment)):
        parse_model_argument(argument)


@pytest.mark.parametrize("text, fragment", [
    ('[[models]]\ncheckpoint = "a.pt"\nlr = 2\n', "model 1: unknown key 'lr'"),
    ('model = "a.pt"\n', "unknown key 'model'"),
    ('data = "corpus"\n', "lists no models"),
    ('[[models]]\nname = "a"\n', "model 1: needs checkpoint"),
    ('[[models]]\ncheckpoint = "a.pt"\nseed = "two"\n', "seed must be a whole number"),
    ("[[models]\n", "not valid TOML"),
])
def test_bad_config_files_say_what_is_wrong(tmp_path: Path, text: str, fragment: str) -> None:
    path = tmp_path / "models.toml"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(ReportgenError, match=re.escape(fragment)):
        read_models_file(path)


def test_config_paths_are_relative_to_the_file(tmp_path: Path) -> None:
    path = tmp_path / "sub" / "models.toml"
    path.parent.mkdir()
    path.write_text('text = "t.txt"\n[[models]]\ncheckpoint = "runs/a/model.pt"\n'
                    '[[models]]\nname = "b"\ncheckpoint = "b.pt"\nseed = 4\n', encoding="utf-8")
    models_file = read_models_file(path)
    assert models_file.text == path.parent / "t.txt" and models_file.data is None
    assert select_models(models_file, ["b", "a"]) == [
        ModelSpec(path.parent / "b.pt", "b", None, 4), ModelSpec(path.parent / "runs/a/model.pt")]


@pytest.mark.parametrize("content, says", [
    (b"[[models]]\ncheckpoint = '\xff\xfe'\n", "not UTF-8 text"),
    (b"x = " + b"[" * 5000 + b"]" * 5000 + b"\n", "nested too deeply"),
])
def test_a_config_that_is_not_utf8_or_nested_too_deep_is_one_error(tmp_path, content, says):
    from reportgen.runs.model_specs import read_models_file

    path = tmp_path / "models.toml"
    path.write_bytes(content)
    with pytest.raises(ReportgenError, match=says):
        read_models_file(path)
