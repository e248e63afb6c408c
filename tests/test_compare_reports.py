"""`reportgen compare` over separately rendered reports, against the multi-model `reportgen
report` of the same models, through the real command.

Two tiny LSTMs (dropout 0 and 0.4) trained on the built-in corpus, reported on 1,500 tokens
without t-SNE. The alignment and CKA the pages show are recomputed here from the models' own
captures at the sampled positions, by `np.corrcoef`, scipy's Hungarian algorithm and CKA's Gram
form, so a wrong sample, a wrong matching or a wrong formula fails.
"""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from clitools import CliResult, CliServer, assert_one_line_error
from sitelinks import broken_links
from test_alignment import gram_cka, independent_match
from test_comparison import page_specs

from reportgen.analysis.state_sample import SAMPLE_POSITIONS, sample_positions
from reportgen.capture.core import capture, state_name
from reportgen.inputs.checkpoint import load_checkpoint
from reportgen.inputs.corpus import tokenize, vocabulary_from_folder
from reportgen.training import synthetic

NAMES = ("lstm-d0-s1", "lstm-d0.4-s1")
TINY = ("--emsize", "16", "--nhid", "24", "--nlayers", "2", "--epochs", "1", "--batch-size",
        "10", "--bptt", "20")
MAX_TOKENS = 1500
REPORT_FLAGS = ("--no-clusters", "--no-images", "--top-neurons", "2", "--quiet",
                "--max-tokens", str(MAX_TOKENS))
SAME_FILES = ("index.html", "data/comparison.csv", "data/alignment.csv", "data/similarity.csv")
KEYS = [(1, "h"), (1, "c"), (2, "h"), (2, "c")]


@pytest.fixture(scope="module")
def work(tmp_path_factory: pytest.TempPathFactory, cli: CliServer) -> Path:
    """The corpus, the two models, their multi-model report and their separate reports."""
    folder = tmp_path_factory.mktemp("compare")
    synthetic.write_corpus(folder / "corpus", seed=0, n_train=60_000, n_valid=2_000,
                           n_test=2_000)
    trained = cli.run(["train", "--data", "corpus", "--out", "runs", *TINY, "--dropout", "0",
                       "0.4", "--seed", "1", "--quiet"], folder)
    assert trained.returncode == 0, trained.stderr
    models = [f"runs/{name}/model.pt" for name in NAMES]
    multi = cli.run(["report", *models, "--data", "corpus", "--out", "multi", *REPORT_FLAGS],
                    folder)
    assert multi.returncode == 0, multi.stderr
    for name, model in zip(NAMES, models):
        single = cli.run(["report", model, "--data", "corpus", "--out", f"reports/{name}",
                          "--comparison-positions", str(SAMPLE_POSITIONS), *REPORT_FLAGS],
                         folder)
        assert single.returncode == 0, single.stderr
    return folder


@pytest.fixture(scope="module")
def combined(cli: CliServer, work: Path) -> CliResult:
    result = cli.run(["compare", *(f"reports/{name}" for name in NAMES), "--out", "combined",
                      "--quiet"], work)
    assert result.returncode == 0, result.stderr
    return result


def own_sample(work: Path, name: str) -> dict:
    """The model's states at the sampled positions, from a capture run here, as float16."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        vocabulary = vocabulary_from_folder(work / "corpus")
        text = tokenize(work / "corpus" / "test.txt", vocabulary, MAX_TOKENS)
        cap = capture(load_checkpoint(work / "runs" / name / "model.pt").model, text.ids,
                      text.tokens, vocabulary.words)
    finally:
        torch.set_num_threads(threads)
    positions = sample_positions(cap.n_tokens)
    return {key: values[positions].astype(np.float16) for key, values in cap.states.items()}


def test_compare_over_separate_reports_equals_the_multi_model_report(combined: CliResult,
                                                                     work: Path) -> None:
    pages = sorted(p.relative_to(work / "multi").as_posix()
                   for p in (work / "multi" / "alignment").glob("*.html"))
    assert len(pages) == len(NAMES) * len(KEYS)
    for path in [*SAME_FILES, *pages]:
        assert (work / "combined" / path).read_bytes() == (work / "multi" / path).read_bytes(), path
    for name in NAMES:
        assert (work / "combined" / name / "index.html").is_file()
    for kind in ("png", "svg"):
        for chart in ("alignment-curve", "cka-models", "cka-layers"):
            assert (work / "combined" / "img" / f"comparison-{chart}.{kind}").stat().st_size > 0


def test_alignment_and_cka_equal_those_of_the_models_own_captures(combined: CliResult,
                                                                  work: Path) -> None:
    samples = {name: own_sample(work, name) for name in NAMES}
    for name in NAMES:
        stored = work / "reports" / name / "data" / "comparable"
        for key in KEYS:
            np.testing.assert_array_equal(np.load(stored / f"{state_name(key)}.npy"),
                                          samples[name][key])
    alignment = pd.read_csv(work / "combined" / "data" / "alignment.csv")
    similarity = pd.read_csv(work / "combined" / "data" / "similarity.csv")
    specs = page_specs((work / "combined" / "index.html").read_text(encoding="utf-8"))
    assert {"alignment-curve", "cka-models", "cka-layers"} <= set(specs)
    curve = pd.DataFrame(specs["alignment-curve"]["data"]["values"])
    cka_cells = pd.DataFrame(specs["cka-models"]["data"]["values"])
    a, b = NAMES
    for key in KEYS:
        matched, r = independent_match(samples[a][key], samples[b][key])
        rows = alignment[(alignment.model_a == a) & (alignment.layer == key[0])
                         & (alignment.state == key[1])].sort_values("unit")
        assert rows.matched_unit.tolist() == matched.tolist()
        np.testing.assert_allclose(rows.matched_r, r[np.arange(len(matched)), matched],
                                   rtol=1e-5, atol=1e-6)
        back = alignment[(alignment.model_a == b) & (alignment.layer == key[0])
                         & (alignment.state == key[1])].sort_values("unit")
        assert back.matched_unit.to_numpy()[matched].tolist() == list(range(len(matched)))
        drawn = curve[curve.state == state_name(key)].abs_r.to_numpy()
        np.testing.assert_allclose(drawn, np.sort(np.abs(r[np.arange(24), matched]))[::-1],
                                   rtol=5e-4)  # charts keep 4 significant digits
        cka = gram_cka(samples[a][key], samples[b][key])
        row = similarity[(similarity.model_a == a) & (similarity.model_b == b)
                         & (similarity.layer_a == key[0]) & (similarity.state_a == key[1])]
        assert row.linear_cka.iloc[0] == pytest.approx(cka, rel=1e-5)
        cell = cka_cells[(cka_cells.panel == state_name(key)) & (cka_cells.row == a)
                         & (cka_cells.column == b)]
        assert cell.cka.iloc[0] == pytest.approx(cka, rel=5e-4)
    within = similarity[similarity.model_a == similarity.model_b]
    assert len(within) == len(NAMES) * 6


def test_unit_pages_of_a_multi_model_report_link_their_row_of_the_alignment(
        work: Path) -> None:
    site = work / "multi"
    unit_pages = sorted((site / NAMES[0] / "neuron").glob("*.html"))
    assert unit_pages
    for page in unit_pages:
        link = re.search(r'href="\.\./\.\./(alignment/[^"#]+)#(unit-\d+)">this unit',
                         page.read_text(encoding="utf-8"))
        assert link, page
        target = (site / link.group(1)).read_text(encoding="utf-8")
        unit = int(link.group(2).split("-")[1])
        assert f'id="unit-{unit}"' in target
        assert page.name.startswith(link.group(1).split(f"{NAMES[0]}-")[1][:-5])


MATCH_ROW = re.compile(r'<tr><td>([^<]+)</td><td class="num">(?:<a href="([^"]+)">(\d+)</a>|–)'
                       r'</td><td class="num">([^<]+)</td><td class="num"><a href="([^"]+)">'
                       r'(\d+)</a></td><td class="num">([^<]+)</td></tr>')


def listed_matches(page: Path) -> list[tuple[str, ...]]:
    """The rows of the page's "In the other models" table: (model, match href, match, r, best
    href, best, r)."""
    html = page.read_text(encoding="utf-8")
    assert "<h2>In the other models</h2>" in html, page
    table = html.split('<table class="data matches">')[1].split("</table>")[0]
    return MATCH_ROW.findall(table)


def resolves(page: Path, href: str, site: Path) -> Path:
    """The file a link leads to, which must exist, and whose anchor (if any) must exist."""
    path, _, anchor = href.partition("#")
    target = (page.parent / path).resolve()
    assert target.is_file() and target.is_relative_to(site.resolve()), (page, href)
    if anchor:
        assert f'id="{anchor}"' in target.read_text(encoding="utf-8"), (page, href)
    return target


def test_unit_pages_list_their_match_and_best_match_in_the_other_model(work: Path) -> None:
    """Each unit page's match and best match are scipy's Hungarian matching and the highest |r|
    of np.corrcoef over the model's own sampled states, agree with alignment.csv, and link to
    the other unit's page when it has one, else to its row of the alignment page."""
    site = work / "multi"
    samples = {name: own_sample(work, name) for name in NAMES}
    alignment = pd.read_csv(site / "data" / "alignment.csv")
    checked = 0
    for name, other in (NAMES, NAMES[::-1]):
        for page in sorted((site / name / "neuron").glob("*.html")):
            layer, state, unit = re.fullmatch(r"L(\d)-([hc])-(\d{4})\.html", page.name).groups()
            key, unit = (int(layer), state), int(unit)
            matched, r = independent_match(samples[name][key], samples[other][key])
            best = int(np.abs(r[unit]).argmax())
            row = alignment[(alignment.model_a == name) & (alignment.layer == key[0])
                            & (alignment.state == key[1]) & (alignment.unit == unit)].iloc[0]
            [listed] = listed_matches(page)
            model, match_href, match, match_r, best_href, best_unit, best_r = listed
            assert model == other
            assert int(match) == matched[unit] == row.matched_unit
            assert int(best_unit) == best == row.best_unit
            assert float(match_r) == pytest.approx(r[unit, matched[unit]], abs=6e-4)
            assert float(best_r) == pytest.approx(r[unit, best], abs=6e-4)
            for href, target_unit in ((match_href, int(match)), (best_href, best)):
                target = resolves(page, href, site)
                own_page = site / other / "neuron" / f"L{layer}-{state}-{target_unit:04d}.html"
                expected = own_page if own_page.is_file() else (
                    site / "alignment" / f"{other}-L{layer}-{state}.html")
                assert target == expected.resolve(), (page, href)
                assert own_page.is_file() or href.endswith(f"#unit-{target_unit}")
            checked += 1
    assert checked >= 2 * len(NAMES) * len(KEYS)


def test_a_single_model_reports_unit_pages_list_no_other_models(work: Path) -> None:
    pages = sorted((work / "reports" / NAMES[0] / "neuron").glob("*.html"))
    assert pages
    for page in pages:
        html = page.read_text(encoding="utf-8")
        assert "In the other models" not in html and "alignment/" not in html, page


def test_without_the_cache_the_second_pass_gives_the_same_unit_pages(cli: CliServer,
                                                                      work: Path) -> None:
    """--no-cache analyses each model again to write it: the same units get pages, and each
    lists the same matches, as with the cache."""
    models = [f"runs/{name}/model.pt" for name in NAMES]
    result = cli.run(["report", *models, "--data", "corpus", "--out", "multi-no-cache",
                      "--no-cache", *REPORT_FLAGS], work)
    assert result.returncode == 0, result.stderr
    for name in NAMES:
        cached = sorted((work / "multi" / name / "neuron").glob("*.html"))
        uncached = sorted((work / "multi-no-cache" / name / "neuron").glob("*.html"))
        assert [p.name for p in uncached] == [p.name for p in cached]
        for a, b in zip(cached, uncached):
            assert listed_matches(b) == listed_matches(a), b


def test_alignment_page_links_resolve(combined: CliResult, work: Path) -> None:
    site = work / "combined"
    for page in (site / "alignment").glob("*.html"):
        for link in re.findall(r'href="([^"#]+)"', page.read_text(encoding="utf-8")):
            assert (page.parent / link).resolve().is_file(), (page, link)
    index = (site / "index.html").read_text(encoding="utf-8")
    for link in re.findall(r'href="([^"#]+)"', index):
        assert (site / link).is_file(), link


def test_reports_without_states_still_combine(cli: CliServer, work: Path,
                                              combined: CliResult) -> None:
    """A report rendered as one model is by default keeps its figures but no states: it
    compares on every figure, and the page and the exit message say what alignment needs."""
    plain = cli.run(["report", f"runs/{NAMES[1]}/model.pt", "--data", "corpus", "--out",
                     "plain", *REPORT_FLAGS], work)
    assert plain.returncode == 0, plain.stderr
    assert not (work / "plain" / "data" / "comparable" / "positions.npy").exists()
    result = cli.run(["compare", f"reports/{NAMES[0]}", f"{NAMES[1]}=plain", "--out",
                      "without-states", "--no-images", "--quiet"], work)
    assert result.returncode == 0, result.stderr
    assert f"no unit alignment and no CKA: {NAMES[1]} kept no states" in result.stdout
    assert f"--comparison-positions {SAMPLE_POSITIONS}" in result.stdout
    site = work / "without-states"
    # the same models on the same text: every figure as with the states
    assert ((site / "data" / "comparison.csv").read_bytes()
            == (work / "combined" / "data" / "comparison.csv").read_bytes())
    assert not (site / "alignment").exists() and not (site / "data" / "alignment.csv").exists()
    page = (site / "index.html").read_text(encoding="utf-8")
    note = re.search(r'<p class="note" id="without-states">(.*?)</p>', page, re.S)
    assert note and NAMES[1] in note.group(1) and NAMES[0] not in note.group(1)
    assert f"--comparison-positions {SAMPLE_POSITIONS}" in note.group(1)
    assert {"perplexity", "mean-abs", "near-zero", "kl-scores"} <= set(page_specs(page))
    assert "alignment-curve" not in page_specs(page)
    assert broken_links(site) == []


@pytest.mark.parametrize("case", ["not-a-folder", "not-a-report", "single", "old-report",
                                  "other-text", "other-sample", "out-is-input"])
def test_bad_input_to_compare_is_one_clear_line(cli: CliServer, work: Path, case: str) -> None:
    first, second = (f"reports/{name}" for name in NAMES)
    if case == "old-report":
        shutil.copytree(work / second, work / "old", dirs_exist_ok=True)
        shutil.rmtree(work / "old" / "data" / "comparable")
    if case == "other-text":
        shorter = cli.run(["report", f"runs/{NAMES[1]}/model.pt", "--data", "corpus", "--out",
                           "shorter", "--comparison-positions", str(SAMPLE_POSITIONS),
                           *REPORT_FLAGS[:-1], "1000"], work)
        assert shorter.returncode == 0, shorter.stderr
    if case == "other-sample":
        sparse = cli.run(["report", f"runs/{NAMES[1]}/model.pt", "--data", "corpus", "--out",
                          "sparse", "--comparison-positions", "700", *REPORT_FLAGS], work)
        assert sparse.returncode == 0, sparse.stderr
        assert np.load(work / "sparse" / "data" / "comparable" / "L2-c.npy").shape == (700, 24)
    arguments, fragments = {
        "not-a-folder": ([first, "missing"], ["missing: no such folder"]),
        "not-a-report": ([first, "corpus"], ["corpus: not a reportgen report folder"]),
        "single": ([first], ["at least two report folders"]),
        "old-report": ([first, "old"], ["old: this report has no data/comparable/",
                                        "render it again"]),
        "other-text": ([first, "shorter"], ["different texts", "1,500 and 1,000 tokens"]),
        "other-sample": ([first, "sparse"], ["different sampled positions",
                                             "--comparison-positions"]),
        "out-is-input": ([first, second], ["overlaps the report"]),
    }[case]
    out = second if case == "out-is-input" else f"bad-{case}"
    before = sorted(p.name for p in (work / second).iterdir())
    result = cli.run(["compare", *arguments, "--out", out, "--no-images"], work)
    assert_one_line_error(result, *fragments)
    assert not (work / f"bad-{case}").exists()
    assert sorted(p.name for p in (work / second).iterdir()) == before
