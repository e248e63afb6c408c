"""The plain results that flow from the analyses into the site: one `ModelReport` per model."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from reportgen.capture.core import Capture

if TYPE_CHECKING:
    from reportgen.analysis.ablation import AblationResult
    from reportgen.analysis.agreement import AgreementResult
    from reportgen.analysis.alignment import OtherModels
    from reportgen.analysis.concepts import ConceptResult
    from reportgen.analysis.correlations import CorrelationResult
    from reportgen.analysis.distributions import DistributionResult
    from reportgen.analysis.embedding import EmbeddingResult
    from reportgen.analysis.gates import GateResult
    from reportgen.analysis.number_units import NumberUnitResult
    from reportgen.analysis.output_effects import OutputEffects
    from reportgen.analysis.paged_units import PagedUnits
    from reportgen.inputs.features import TokenFeatures


@dataclass
class ModelSummary:
    """Facts about the model and the text, for the overview page and `report.json`."""

    name: str
    hyperparameters: dict[str, Any]
    vocabulary_size: int
    checkpoint_name: str
    checkpoint_format: str
    checkpoint_sha256: str
    text_name: str
    text_sha256: str
    n_tokens: int
    n_unknown: int
    perplexity: float
    truncated: bool
    metadata: dict[str, Any] = field(default_factory=dict)  # dropout, seed, training figures
    unigram_perplexity: float | None = None  # of the text's own word counts, on the same tokens

    def unigram_warning(self) -> str | None:
        """Said on stderr and on the overview when the model predicts the text worse than the
        text's own word frequencies do. A vocabulary of the right size in the wrong order
        passes every other check: on WikiText-2, a data folder with the same words in another
        order gave perplexity 8,024 instead of 591, where the unigram model scores about 900."""
        if self.unigram_perplexity is None or not self.perplexity > self.unigram_perplexity:
            return None
        return (f"the model's perplexity on this text ({self.perplexity:,.2f}) is worse than "
                f"that of a unigram model of the text's own word counts "
                f"({self.unigram_perplexity:,.2f}); is the vocabulary in the order the model was "
                "trained with? --data DIR rebuilds it as training did, from train.txt, then "
                "valid.txt, then test.txt")


@dataclass
class ModelReport:
    """Everything one model's pages are made from; an analysis that did not run is None."""

    summary: ModelSummary
    capture: Capture
    features: TokenFeatures | None = None
    distributions: DistributionResult | None = None
    concepts: ConceptResult | None = None
    embeddings: list[EmbeddingResult] = field(default_factory=list)  # one per layer and state
    gates: GateResult | None = None  # LSTM and GRU only
    paged: PagedUnits | None = None  # the units that get a page, decided once for every page
    correlations: CorrelationResult | None = None  # of the paged units
    output_effects: OutputEffects | None = None  # the top layer's decoder columns
    ablation: AblationResult | None = None  # mean-ablation of the paged (or every) unit
    other_models: OtherModels | None = None  # a multi-model report's: its units' matches
    agreement: AgreementResult | None = None  # number agreement
    number_units: NumberUnitResult | None = None  # the number-unit finder's, LSTM only
    options: dict[str, Any] = field(default_factory=dict)  # the options used, for provenance
    timings: dict[str, float] = field(default_factory=dict)  # seconds per stage
    notes: list[str] = field(default_factory=list)  # what was sampled, paged or left out
    capture_reused: bool = False  # the capture came from the cache of an earlier run
    analyses_reused: list[str] = field(default_factory=list)  # analyses from that cache too
    capture_entry: Path | None = None  # the capture cache's entry; None under --no-cache


def json_safe(value: Any) -> Any:
    """`value` with every NaN or infinite float replaced by None, tuples as lists, recursively,
    so that `json.dumps(value, allow_nan=False)` succeeds: JSON has no NaN or Infinity, and
    `json.dumps` would otherwise write them, which strict parsers refuse."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {key: json_safe(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_safe(item) for item in value]
    if hasattr(value, "item") and getattr(value, "ndim", None) == 0:  # a NumPy or torch scalar
        return json_safe(value.item())
    return value
