"""`build_report(config)`: the whole pipeline as a thin chain of public stage functions.

corpus + checkpoint -> capture -> analyses -> pages -> site. Each stage can also be called on
its own from a notebook; this module only wires them and times them.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path

from reportgen.analysis.concepts import LABEL_THRESHOLD, analyse_concepts
from reportgen.analysis.distributions import analyse_distributions
from reportgen.capture import Capture, CaptureOptions, capture
from reportgen.corpus import SPLITS, Text, Vocabulary, load_vocabulary, tokenize
from reportgen.errors import ReportgenError
from reportgen.features import token_features
from reportgen.model import LoadedModel, file_sha256, load_checkpoint
from reportgen.progress import note
from reportgen.results import ModelReport, ModelSummary
from reportgen.pages import SiteOptions
from reportgen.site import write_site


@dataclass
class NeuronOptions:
    """The distribution and concept analyses (DESIGN.md 3.2 and 3.4)."""

    cell_interval: float | None = None  # half-width a of the cell-state bins; None: from data
    rank_by: str = "score"  # "score" (both KLs), "kl_p_q" or "kl_q_p"
    label_threshold: float = LABEL_THRESHOLD  # |AUROC - 0.5| a concept label needs


@dataclass
class ReportConfig:
    """One model's report. Paths may be str or Path."""

    checkpoint: Path
    out: Path
    data: Path | None = None  # the training folder, to rebuild the vocabulary as data.Corpus
    text: Path | None = None  # the analysed text; default: data/test.txt
    vocabulary: Path | None = None  # a word-per-line file, instead of data
    name: str | None = None  # the report's title; default: the checkpoint's stem or folder
    max_tokens: int | None = None  # analyse only the first N tokens of the text
    allow_unsafe_pickle: bool = False
    capture: CaptureOptions = field(default_factory=CaptureOptions)
    neurons: NeuronOptions = field(default_factory=NeuronOptions)
    site: SiteOptions = field(default_factory=SiteOptions)
    quiet: bool = False

    def __post_init__(self) -> None:
        for name in ("checkpoint", "out", "data", "text", "vocabulary"):
            value = getattr(self, name)
            if value is not None:
                setattr(self, name, Path(value))
        if self.max_tokens is not None and self.max_tokens < 2:
            raise ReportgenError(f"--max-tokens must be at least 2, not {self.max_tokens}")


@dataclass
class Inputs:
    """What the corpus and model stages give: no stage after capture sees the model."""

    loaded: LoadedModel
    vocabulary: Vocabulary
    text: Text
    text_path: Path


@contextmanager
def timed(timings: dict[str, float], stage: str, quiet: bool) -> Iterator[None]:
    note(f"{stage}...", not quiet)
    started = time.perf_counter()
    yield
    timings[stage] = round(time.perf_counter() - started, 3)


def resolve_text_path(config: ReportConfig) -> Path:
    if config.text is not None:
        return config.text
    if config.data is not None:
        return config.data / "test.txt"
    raise ReportgenError("say which text to analyse: --text FILE, or --data DIR to use DIR/test.txt")


def resolve_vocabulary(config: ReportConfig, loaded: LoadedModel) -> Vocabulary:
    """The model's word ids: from --vocabulary, --data (as data.Corpus) or the checkpoint."""
    if config.vocabulary is not None:
        vocabulary = load_vocabulary(config.vocabulary)
        origin = str(config.vocabulary)
    elif config.data is not None:
        vocabulary = load_vocabulary(config.data)
        origin = f"{config.data}/{{{','.join(SPLITS)}}}"
    elif loaded.vocabulary is not None:
        return Vocabulary.from_words(loaded.vocabulary)
    else:
        raise ReportgenError(
            "this checkpoint stores no vocabulary; give --data DIR, the folder the model was "
            "trained from"
        )
    ntoken = loaded.hyperparameters.ntoken
    if len(vocabulary) != ntoken:
        raise ReportgenError(
            f"the vocabulary built from {origin} has {len(vocabulary):,} words but the model has "
            f"{ntoken:,}; give the data folder the model was trained from"
        )
    return vocabulary


def load_inputs(config: ReportConfig) -> Inputs:
    """Corpus and model stage: the checkpoint, its vocabulary and the tokenised text."""
    text_path = resolve_text_path(config)
    loaded = load_checkpoint(config.checkpoint, config.allow_unsafe_pickle)
    vocabulary = resolve_vocabulary(config, loaded)
    text = tokenize(text_path, vocabulary, config.max_tokens)
    if len(text) < 2:
        raise ReportgenError(f"{text_path}: needs at least two tokens to analyse")
    return Inputs(loaded, vocabulary, text, text_path)


def default_name(checkpoint: Path) -> str:
    """`runs/lstm-d0.2/model.pt` -> `lstm-d0.2`; `medium.pt` -> `medium`."""
    return checkpoint.parent.name if checkpoint.stem == "model" and checkpoint.parent.name else checkpoint.stem


def summarise(config: ReportConfig, inputs: Inputs, captured: Capture) -> ModelSummary:
    loaded = inputs.loaded
    return ModelSummary(
        name=config.name or default_name(config.checkpoint),
        hyperparameters=asdict(loaded.hyperparameters),
        vocabulary_size=len(inputs.vocabulary),
        checkpoint_name=config.checkpoint.name,
        checkpoint_format=loaded.format,
        checkpoint_sha256=loaded.sha256,
        text_name=inputs.text_path.name,
        text_sha256=file_sha256(inputs.text_path),
        n_tokens=captured.n_tokens,
        n_unknown=inputs.text.n_unknown,
        perplexity=captured.perplexity(),
        truncated=config.max_tokens is not None and captured.n_tokens >= config.max_tokens,
        metadata={k: v for k, v in loaded.metadata.items() if k != "train_config"},
    )


def options_record(config: ReportConfig) -> dict[str, object]:
    """The options that shaped the report, without absolute paths (they vary by machine)."""
    return {
        "max_tokens": config.max_tokens,
        "capture": asdict(config.capture),
        "neurons": asdict(config.neurons),
        "site": asdict(config.site),
    }


def analyse(config: ReportConfig, inputs: Inputs, timings: dict[str, float]) -> ModelReport:
    """Capture and every analysis, for one model; the result holds no model."""
    with timed(timings, "capture", config.quiet):
        captured = capture(inputs.loaded.model, inputs.text.ids, inputs.text.tokens,
                           inputs.vocabulary.words, config.capture)
    report = ModelReport(summarise(config, inputs, captured), captured,
                         options=options_record(config), timings=timings)
    with timed(timings, "features", config.quiet):
        report.features = token_features(captured.tokens)
    with timed(timings, "distributions", config.quiet):
        report.distributions = analyse_distributions(
            captured, config.neurons.cell_interval, config.neurons.rank_by)
    with timed(timings, "concepts", config.quiet):
        report.concepts = analyse_concepts(captured, report.features,
                                           config.neurons.label_threshold)
    return report


def build_report(config: ReportConfig) -> Path:
    """Checkpoint and text in, report folder out; returns the folder."""
    timings: dict[str, float] = {}
    with timed(timings, "load", config.quiet):
        inputs = load_inputs(config)
    report = analyse(config, inputs, timings)
    with timed(timings, "render", config.quiet):
        write_site(report, config.out, config.site)
    return config.out
