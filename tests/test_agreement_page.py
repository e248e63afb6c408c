"""The Agreement page and its exports, on real runs: the tiny model on the planted corpus with
a user's file, a vocabulary without a single usable pair, hostile words, --no-agreement, and a
malformed file stopping the command with one line."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
from clitools import assert_one_line_error

from reportgen.analysis.ablation import AblationOptions
from reportgen.inputs.agreement_suites import AgreementOptions
from reportgen.render.pages import SiteOptions
from reportgen.runs.report import ReportConfig, build_report
from reportgen.training.train import TrainConfig, train

PAYLOAD = "</script><img/src=x/onerror=alert(1)>"
FORMULA = "=HYPERLINK(1)"


def quick_config(checkpoint: Path, out: Path, data: Path, **agreement) -> ReportConfig:
    return ReportConfig(checkpoint, out, data=data, quiet=True, embed_states=(),
                        ablation=AblationOptions(tokens=0),
                        site=SiteOptions(images=False, top_neurons=2, expectancy_tokens=200),
                        agreement=AgreementOptions(**agreement))


@pytest.fixture(scope="module")
def tiny_site(tiny_corpus: Path, tiny_model: Path, tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("agreement-site")
    na = folder / "mine.tsv"
    na.write_text("the army near the towers is\tSP\tcorrect\t1\n"
                  "the army near the towers are\tSP\twrong\t1\n"
                  "the zyzzyva is\tS\tcorrect\t2\n"
                  "the zyzzyva are\tS\twrong\t2\n", encoding="utf-8")
    return build_report(quick_config(tiny_model, folder / "site", tiny_corpus, files=(na,),
                                     per_condition=10))


def test_the_overview_links_the_page_and_it_shows_every_suite(tiny_site: Path) -> None:
    assert 'href="agreement.html"' in (tiny_site / "index.html").read_text(encoding="utf-8")
    page = (tiny_site / "agreement.html").read_text(encoding="utf-8")
    assert "built-in" in page and "mine.tsv" in page
    assert "1 skipped for a word outside the vocabulary" in page
    assert "noun PP" in page and "Number units" in page
    unit_pages = [path.read_text(encoding="utf-8") for path in tiny_site.glob("neuron/L*-h-*.html")]
    assert unit_pages and all("Number agreement" in text for text in unit_pages)  # all 48 ablated


def test_the_exports_hold_every_condition_and_item(tiny_site: Path) -> None:
    scores = pd.read_csv(tiny_site / "data" / "agreement.csv")
    assert list(scores.columns[:7]) == ["task", "condition", "n", "correct", "accuracy",
                                        "ci_low", "ci_high"]
    built_in = scores[scores["suite"] == "built-in"]
    assert set(built_in["n"]) == {10}  # balanced: 10 items per template and condition
    assert (scores["ci_low"] <= scores["accuracy"]).all()
    assert (scores["accuracy"] <= scores["ci_high"]).all()
    assert scores[scores["suite"] == "mine.tsv"][["task", "condition", "n"]].values.tolist() == [
        ["mine", "SP", 1]]
    items = pd.read_csv(tiny_site / "data" / "agreement_items.csv.gz")
    assert len(items) == scores["n"].sum()
    assert ((items["log_p_correct"] > items["log_p_wrong"]) == items["right"]).all()
    for _, row in scores.iterrows():
        members = items[(items["suite"] == row["suite"]) & (items["task"] == row["task"])
                        & (items["condition"] == row["condition"])]
        assert members["right"].mean() == pytest.approx(row["accuracy"])
    units = pd.read_csv(tiny_site / "data" / "number_units.csv")
    assert len(units) == 2 * 24 and set(units["state"]) == {"h"}
    assert units["screen_rank"].sort_values().tolist() == list(range(1, 49))


@pytest.fixture(scope="module")
def hostile_model(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A model whose vocabulary has no singular/plural pair, and hostile words."""
    data = tmp_path_factory.mktemp("no-pairs-data")
    line = f"the cat {PAYLOAD} sat on {FORMULA} the mat .\n"
    for name in ("train.txt", "valid.txt", "test.txt"):
        (data / name).write_text(line * 40, encoding="utf-8")
    out = tmp_path_factory.mktemp("no-pairs-model")
    config = TrainConfig(emsize=8, nhid=8, nlayers=1, epochs=1, batch_size=4, bptt=10,
                         dropout=0.0)
    return data, train(data, out, config, progress=False).checkpoint


def test_a_vocabulary_without_pairs_gives_a_page_that_says_so(hostile_model, tmp_path) -> None:
    data, checkpoint = hostile_model
    site = build_report(quick_config(checkpoint, tmp_path / "site", data))
    page = (site / "agreement.html").read_text(encoding="utf-8")
    assert "This vocabulary gives no usable item" in page
    assert "is/are" in page  # the lexicon entries it lacked are listed
    assert "no number-unit finder" in page
    assert pd.read_csv(site / "data" / "agreement.csv").empty


def test_hostile_words_are_escaped_and_neutralised(hostile_model, tmp_path) -> None:
    data, checkpoint = hostile_model
    na = tmp_path / "hostile.tsv"
    na.write_text(f"the cat {PAYLOAD} {FORMULA}\t{PAYLOAD}\tcorrect\t1\n"
                  f"the cat {PAYLOAD} sat\t{PAYLOAD}\twrong\t1\n"
                  f"{FORMULA} cat sat\t{FORMULA}\tcorrect\t2\n"
                  f"{FORMULA} cat mat\t{FORMULA}\twrong\t2\n", encoding="utf-8")
    site = build_report(quick_config(checkpoint, tmp_path / "site", data, files=(na,)))
    page = (site / "agreement.html").read_text(encoding="utf-8")
    assert "<img" not in page and "&lt;/script&gt;&lt;img" in page
    items = pd.read_csv(site / "data" / "agreement_items.csv.gz")
    assert items["prefix"].tolist() == [f"the cat {PAYLOAD}", f"'{FORMULA} cat"]
    assert items["wrong"].tolist() == ["sat", "mat"] and items["correct"][0] == f"'{FORMULA}"
    assert pd.read_csv(site / "data" / "agreement.csv")["condition"].tolist() == [
        PAYLOAD, f"'{FORMULA}"]


def test_no_agreement_leaves_out_the_page(hostile_model, tmp_path) -> None:
    data, checkpoint = hostile_model
    site = build_report(quick_config(checkpoint, tmp_path / "site", data, enabled=False))
    assert not (site / "agreement.html").exists()
    assert "agreement.html" not in (site / "index.html").read_text(encoding="utf-8")
    assert not (site / "data" / "agreement.csv").exists()


def test_a_malformed_file_is_one_line_before_anything_slow(cli, hostile_model,
                                                           tmp_path) -> None:
    data, checkpoint = hostile_model
    bad = tmp_path / "bad.tsv"
    bad.write_text("the cat sat\tS\tcorrect\t1\nthe cat\tS\twrong\t1\n", encoding="utf-8")
    result = cli.run(["report", str(checkpoint), "--data", str(data), "--out",
                      str(tmp_path / "out"), "--agreement", str(bad), "--quiet"], tmp_path)
    assert_one_line_error(result, "bad.tsv:2:", "differ only in their last word")
    assert not (tmp_path / "out").exists()


def test_the_comparison_plots_each_task_against_dropout() -> None:
    import numpy as np

    from reportgen.analysis.comparison import Comparison, ModelFigures, StateFigures
    states = [StateFigures((1, "h"), 2, 0.1, 0, np.array([0.1, 0.2]))]

    def model(name: str, dropout: float | None, agreement: dict[str, float]) -> ModelFigures:
        return ModelFigures(name, dropout, 1, 10.0, 100, "t", "s", "v", 5, None, None, states,
                            agreement=agreement)

    comparison = Comparison([model("a", 0.0, {"simple": 0.9, "noun PP": 0.6}),
                             model("b", 0.5, {"simple": 0.95, "noun PP": 0.7}),
                             model("c", None, {"simple": 0.5})])
    assert sorted((r["model"], r["task"], r["accuracy"]) for r in comparison.agreement_records()) == [
        ("a", "noun PP", 0.6), ("a", "simple", 0.9), ("b", "noun PP", 0.7), ("b", "simple", 0.95)]
    assert "agreement" in comparison.charts()
    assert "agreement" not in Comparison([model("c", None, {"simple": 0.5})]).charts()
