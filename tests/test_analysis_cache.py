"""Re-render without recomputing: analyses stored beside their capture, keyed by their options."""

from __future__ import annotations

import dataclasses
import importlib
import json
from pathlib import Path

import numpy as np
import pytest

from reportgen.analysis import cache as analysis_cache
from reportgen.analysis.ablation import AblationOptions
from reportgen.analysis.cache import (
    ANALYSES,
    FOLDER,
    cached_analysis,
    key_versions,
    options_key,
    read_result,
    write_result,
)
from reportgen.analysis.concepts import analyse_concepts
from reportgen.analysis.distributions import analyse_distributions
from reportgen.analysis.embedding import EmbeddingOptions, embed
from reportgen.capture.core import Capture, capture
from reportgen.cli.main import main
from reportgen.inputs.checkpoint import load_checkpoint
from reportgen.inputs.corpus import tokenize, vocabulary_from_folder
from reportgen.inputs.features import token_features
from reportgen.inputs.load import load_inputs
from reportgen.runs.report import NeuronOptions, ReportConfig, analyse


@pytest.fixture(scope="module")
def fresh_capture(tiny_model: Path, tiny_corpus: Path) -> Capture:
    vocabulary = vocabulary_from_folder(tiny_corpus)
    text = tokenize(tiny_corpus / "test.txt", vocabulary, max_tokens=600)
    return capture(load_checkpoint(tiny_model).model, text.ids, text.tokens, vocabulary.words)


def assert_same(a, b) -> None:
    """Equal structures, arrays compared element by element (NaN equal to NaN)."""
    if isinstance(a, np.ndarray):
        assert isinstance(b, np.ndarray) and a.dtype == b.dtype
        np.testing.assert_array_equal(a, b)
    elif hasattr(a, "__dataclass_fields__"):
        assert type(a) is type(b)
        for name in a.__dataclass_fields__:
            assert_same(getattr(a, name), getattr(b, name))
    elif isinstance(a, dict):
        assert list(a) == list(b)
        for key in a:
            assert_same(a[key], b[key])
    elif isinstance(a, (list, tuple)):
        assert type(a) is type(b) and len(a) == len(b)
        for x, y in zip(a, b):
            assert_same(x, y)
    elif isinstance(a, float) and np.isnan(a):
        assert np.isnan(b)
    else:
        assert a == b


def test_every_result_comes_back_as_it_was_stored(fresh_capture: Capture, tmp_path: Path):
    features = token_features(fresh_capture.tokens)
    results = {
        "distributions": analyse_distributions(fresh_capture),
        "concepts": analyse_concepts(fresh_capture, features),
        "map": embed(fresh_capture, 1, "h", EmbeddingOptions(max_points=150, cuts=(4,)),
                     classes=features.classes(), n_jobs=1),
    }
    for name, value in results.items():
        write_result(value, tmp_path / name)
        assert_same(value, read_result(tmp_path / name))


def test_a_damaged_or_missing_result_is_computed_again(tmp_path: Path):
    calls = []

    def compute():
        calls.append(1)
        return analyse_distributions_stub()

    value, reused = cached_analysis(tmp_path, "gates", {"a": 1}, compute)
    again, reused_again = cached_analysis(tmp_path, "gates", {"a": 1}, compute)
    assert (reused, reused_again, len(calls)) == (False, True, 1)
    assert_same(value, again)
    for stored in (tmp_path / FOLDER).glob("*.npz"):
        stored.write_bytes(b"not an npz")
    third, reused_third = cached_analysis(tmp_path, "gates", {"a": 1}, compute)
    assert not reused_third and len(calls) == 2
    _, other_key = cached_analysis(tmp_path, "gates", {"a": 2}, compute)
    assert not other_key and len(calls) == 3
    assert cached_analysis(None, "gates", {"a": 1}, compute)[1] is False


def analyse_distributions_stub():
    from captures import make_capture
    values = np.random.default_rng(0).normal(0, 0.5, (50, 3)).astype(np.float32)
    return analyse_distributions(make_capture({(1, "h"): values}))


def test_a_foreign_object_is_never_stored(tmp_path: Path):
    class Unknown:
        pass
    with pytest.raises(TypeError):
        write_result({"x": Unknown()}, tmp_path / "x")


def report_json(out: Path) -> dict:
    return json.loads((out / "data" / "report.json").read_text(encoding="utf-8"))


def site_files(out: Path) -> dict[str, bytes]:
    return {str(path.relative_to(out)): path.read_bytes() for path in sorted(out.rglob("*"))
            if path.is_file() and path.name != "report.json"}


def test_a_second_run_reuses_what_its_options_leave_unchanged(tiny_model: Path, tiny_corpus: Path,
                                                              tmp_path: Path):
    cache = tmp_path / "cache"
    base = ["report", str(tiny_model), "--data", str(tiny_corpus), "--max-tokens", "900",
            "--maps", "L1-h", "--max-points", "200", "--no-images", "--quiet", "--threads", "1",
            "--cache", str(cache)]
    first, second = tmp_path / "first", tmp_path / "second"
    assert main([*base, "--out", str(first)]) == 0
    assert report_json(first)["analyses_reused_from_cache"] == []
    assert main([*base, "--out", str(second)]) == 0
    assert report_json(second)["analyses_reused_from_cache"] == [
        "distributions", "concepts", "gates", "correlations", "output-effects", "ablation",
        "map-L1-h"]
    assert site_files(second) == site_files(first)  # the same bytes as computing afresh

    pages_only = tmp_path / "pages-only"
    assert main([*base, "--out", str(pages_only), "--top-neurons", "3",
                 "--expectancy-scale", "linear", "--threads", "2"]) == 0
    assert report_json(pages_only)["analyses_reused_from_cache"] == [  # fewer units paged:
        "distributions", "concepts", "gates", "map-L1-h"]  # fewer to correlate and ablate

    new_map = tmp_path / "new-map"
    assert main([*base, "--out", str(new_map), "--perplexity", "10"]) == 0
    assert report_json(new_map)["analyses_reused_from_cache"] == [
        "distributions", "concepts", "gates", "correlations", "output-effects", "ablation"]

    mine = tmp_path / "mine.toml"
    mine.write_text("[is_the]\nwords = ['the']\n", encoding="utf-8")
    own = tmp_path / "own-features"
    assert main([*base, "--out", str(own), "--features", str(mine)]) == 0
    # correlations too, unless the new feature gave pages to new units
    reused = report_json(own)["analyses_reused_from_cache"]
    assert reused[:2] == ["distributions", "gates"]
    assert "concepts" not in reused and "ablation" not in reused

    uncached = tmp_path / "uncached"
    assert main([*base[:-2], "--no-cache", "--out", str(uncached)]) == 0
    assert report_json(uncached)["analyses_reused_from_cache"] == []


CHANGED_CONSTANTS = {  # one constant each analysis depends on, and another value for it
    "distributions": ("reportgen.analysis.distributions", "NEAR_ZERO_SHARE", 0.8),
    "concepts": ("reportgen.analysis.concepts", "MIN_WITHIN_PAIRS", 50),
    "gates": ("reportgen.analysis.gates", "LEFT", 0.2),
    "correlations": ("reportgen.analysis.correlations", "TOP", 4),
    "output-effects": ("reportgen.analysis.output_effects", "OUTPUT_WORDS", 9),
    "ablation": ("reportgen.analysis.ablation", "HURT_CONTEXTS", 4),
    "map": ("reportgen.analysis.clustering", "TOP_WORDS", 9),
}


def test_a_changed_constant_recomputes_its_analysis_and_only_that(
        tiny_model: Path, tiny_corpus: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    """A constant of an analysis's module is in its key, read when the key is made: changing
    one (as an edit of the code would) recomputes that analysis and reuses every other."""
    config = ReportConfig(checkpoint=tiny_model, data=tiny_corpus, out=tmp_path / "unused",
                          max_tokens=600, embed_states=((1, "h"),), cache=tmp_path / "cache",
                          embedding=EmbeddingOptions(max_points=150, cuts=(4,)),
                          ablation=AblationOptions(tokens=100), threads=1, quiet=True)
    inputs = load_inputs(config)

    def reused() -> list[str]:
        return analyse(config, inputs, {}).analyses_reused

    first = reused()
    assert first == [] and set(CHANGED_CONSTANTS) == set(ANALYSES)
    everything = ["distributions", "concepts", "gates", "correlations", "output-effects",
                  "ablation", "map-L1-h"]
    assert reused() == everything
    for name, (module, constant, value) in CHANGED_CONSTANTS.items():
        with monkeypatch.context() as patch:
            patch.setattr(importlib.import_module(module), constant, value)
            again = reused()
        changed = "map-L1-h" if name == "map" else name
        assert again == [item for item in everything if item != changed], name
    assert reused() == everything  # the constants restored: the first results again


def test_every_key_holds_the_library_versions_and_every_options_field(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    calls = []

    def compute():
        calls.append(1)
        return analyse_distributions_stub()

    options = NeuronOptions()
    cached_analysis(tmp_path, "distributions", options_key(options), compute)
    cached_analysis(tmp_path, "distributions", options_key(options), compute)
    assert len(calls) == 1
    versions = key_versions()
    assert set(versions) == {"reportgen", "numpy", "scipy", "torch", "openTSNE", "fastcluster",
                             "scikit-learn"}
    monkeypatch.setattr(analysis_cache, "key_versions", lambda: {**versions, "numpy": "0.0"})
    cached_analysis(tmp_path, "distributions", options_key(options), compute)
    assert len(calls) == 2  # another numpy: computed again

    extended = dataclasses.make_dataclass(  # a field added to an options class later
        "NeuronOptions", [("kl_smoothing", float, dataclasses.field(default=0.5))],
        bases=(NeuronOptions,))
    assert options_key(extended())["kl_smoothing"] == 0.5
    assert options_key(extended(kl_smoothing=1.0)) != options_key(extended())
    with pytest.raises(KeyError, match="not declared"):
        cached_analysis(tmp_path, "undeclared", {}, compute)
