"""No silent NaN: weights that are not finite are refused at load, a model whose outputs
overflow is refused before its report, and report.json is always valid JSON (which has no NaN
or Infinity), whatever a checkpoint's metadata holds."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import torch

from reportgen.analysis.bundle import json_safe
from reportgen.errors import ReportgenError
from reportgen.inputs.checkpoint import load_checkpoint, save_checkpoint
from reportgen.render.pages import SiteOptions
from reportgen.runs.report import ReportConfig, build_report


def strict_json(text: str) -> object:
    """Parse as the JSON standard does: NaN, Infinity and -Infinity are not JSON."""
    def refuse(constant: str) -> None:
        raise ValueError(f"{constant} is not JSON")
    return json.loads(text, parse_constant=refuse)


def config(checkpoint: Path, data: Path, out: Path) -> ReportConfig:
    return ReportConfig(checkpoint, out, data=data, max_tokens=300, quiet=True, embed_states=(),
                        cache=None, site=SiteOptions(top_neurons=1, images=False))


def test_json_safe_turns_every_non_finite_number_into_null() -> None:
    value = {"a": math.nan, "b": [1.5, math.inf, -math.inf], "c": (2, "x"), "d": {"e": None},
             "f": True, 3: 4}
    safe = json_safe(value)
    assert safe == {"a": None, "b": [1.5, None, None], "c": [2, "x"], "d": {"e": None},
                    "f": True, 3: 4}
    json.dumps(safe, allow_nan=False)


def test_nan_in_the_checkpoint_metadata_keeps_report_json_valid(tiny_model: Path,
                                                                tiny_corpus: Path,
                                                                tmp_path: Path) -> None:
    loaded = load_checkpoint(tiny_model)
    metadata = {**loaded.metadata, "valid_perplexity": math.nan, "best": [math.inf, 1.0]}
    save_checkpoint(loaded.model, tmp_path / "model.pt", loaded.vocabulary, metadata)
    build_report(config(tmp_path / "model.pt", tiny_corpus, tmp_path / "report"))
    record = strict_json((tmp_path / "report" / "data" / "report.json").read_text())
    assert record["model"]["metadata"]["valid_perplexity"] is None
    assert record["model"]["metadata"]["best"] == [None, 1.0]
    assert math.isfinite(record["model"]["perplexity"])


def test_finite_weights_whose_outputs_overflow_are_refused(tiny_model: Path, tiny_corpus: Path,
                                                           tmp_path: Path) -> None:
    loaded = load_checkpoint(tiny_model)
    with torch.no_grad():
        loaded.model.decoder.weight.fill_(3e38)  # finite, but every logit overflows
        loaded.model.decoder.weight[::2].fill_(-3e38)
    save_checkpoint(loaded.model, tmp_path / "model.pt", loaded.vocabulary, loaded.metadata)
    with pytest.raises(ReportgenError, match="log p of .* positions is not finite"):
        build_report(config(tmp_path / "model.pt", tiny_corpus, tmp_path / "report"))
    assert not (tmp_path / "report").exists()
