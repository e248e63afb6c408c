"""`build_report(config)`: the whole pipeline as a thin chain of public stage functions.

corpus + checkpoint -> capture -> analyses -> pages -> site. Each stage can also be called on
its own from a notebook; this module only wires them and times them.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any, TypeVar

import numpy as np

from reportgen.analysis.ablation import AblationOptions, ablate, ablation_units
from reportgen.analysis.agreement import analyse_agreement
from reportgen.analysis.bundle import ModelReport, ModelSummary, json_safe
from reportgen.analysis.cache import cached_analysis, features_digest, options_key
from reportgen.analysis.concepts import (
    LABEL_THRESHOLD,
    WITHIN_THRESHOLD,
    WORD_SHARE,
    analyse_concepts,
    check_word_share,
)
from reportgen.analysis.correlations import analyse_correlations
from reportgen.analysis.distributions import analyse_distributions
from reportgen.analysis.divergences import KL_SMOOTHING, check_smoothing
from reportgen.analysis.embedding import MIN_TSNE_POINTS, EmbeddingOptions, EmbeddingResult, embed
from reportgen.analysis.gates import GateWeights, analyse_gates
from reportgen.analysis.number_units import find_number_units, finder_items
from reportgen.analysis.output_effects import output_effects
from reportgen.analysis.paged_units import decide_paged_units
from reportgen.capture.cache import DEFAULT_LIMIT_GB, cached_capture, default_cache_folder
from reportgen.capture.cache_contents import cache_summary
from reportgen.capture.core import Capture, CaptureOptions, StateKey, state_name
from reportgen.capture.streams import BOUNDARY_TOLERANCE
from reportgen.errors import ReportgenError
from reportgen.inputs.agreement_suites import NOUN_PP, AgreementOptions, built_in_suite
from reportgen.inputs.load import Inputs, load_inputs, own_features
from reportgen.inputs.model import RNN_TYPES, resolve_device
from reportgen.progress import note
from reportgen.render.atomic import check_output_folder
from reportgen.render.pages import SiteOptions
from reportgen.render.site import write_site


@dataclass
class NeuronOptions:
    """The distribution and concept analyses (DESIGN.md 3.2 and 3.4)."""

    cell_interval: float | None = None  # half-width a of the cell-state bins; None: from data
    rank_by: str = "score"  # "score" (both KLs), "kl_p_q", "kl_q_p" or "js"
    kl_smoothing: float = KL_SMOOTHING  # k added to every bin's count before the divergences
    label_threshold: float = LABEL_THRESHOLD  # |AUROC - 0.5| a concept label needs
    within_threshold: float = WITHIN_THRESHOLD  # and |within-word AUROC - 0.5|, same side
    word_label_share: float = WORD_SHARE  # a feature the word decides labels at most this share

    def __post_init__(self) -> None:
        for flag, value in (("--label-threshold", self.label_threshold),
                            ("--within-threshold", self.within_threshold)):
            if not 0 < value <= 0.5:
                raise ReportgenError(f"{flag} must be in (0, 0.5], got {value!r}")
        check_smoothing(self.kl_smoothing)
        check_word_share(self.word_label_share)


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
    rnn_type: str | None = None  # LSTM, GRU, RNN_TANH or RNN_RELU: what a state dict cannot say
    capture: CaptureOptions = field(default_factory=CaptureOptions)
    neurons: NeuronOptions = field(default_factory=NeuronOptions)
    embedding: EmbeddingOptions = field(default_factory=EmbeddingOptions)
    embed_states: tuple[StateKey, ...] | None = None  # t-SNE maps: None all states, () none
    feature_files: tuple[Path, ...] = ()  # --features: the user's own token features
    ablation: AblationOptions = field(default_factory=AblationOptions)
    agreement: AgreementOptions = field(default_factory=AgreementOptions)
    site: SiteOptions = field(default_factory=SiteOptions)
    cache: Path | None = field(default_factory=default_cache_folder)  # None: no capture cache
    cache_limit_gb: float = DEFAULT_LIMIT_GB  # least recently used captures go beyond this
    threads: int | None = None  # t-SNE's threads, None: every core; applied, never recorded
    quiet: bool = False

    def __post_init__(self) -> None:
        for name in ("checkpoint", "out", "data", "text", "vocabulary", "cache"):
            value = getattr(self, name)
            if value is not None:
                setattr(self, name, Path(value))
        self.feature_files = tuple(Path(path) for path in self.feature_files)
        if self.rnn_type is not None and self.rnn_type not in RNN_TYPES:
            raise ReportgenError(f"--rnn-type must be one of {', '.join(RNN_TYPES)}, not "
                                 f"{self.rnn_type!r}")
        if self.max_tokens is not None and self.max_tokens < 2:
            raise ReportgenError(f"--max-tokens must be at least 2, not {self.max_tokens}")


@contextmanager
def timed(timings: dict[str, float], stage: str, quiet: bool) -> Iterator[None]:
    """Time `stage` into `timings`, and say on stderr when it starts and how long it took: the
    reader of a long run sees where the time goes, rather than an estimate."""
    note(f"{stage}...", not quiet)
    started = time.perf_counter()
    yield
    timings[stage] = round(time.perf_counter() - started, 3)
    note(f"{stage}: {timings[stage]:.1f} s", not quiet)


def progress_flag(config: ReportConfig) -> bool | None:
    """Progress bars: never when quiet, else whenever stderr is a terminal."""
    return False if config.quiet else None


def default_name(checkpoint: Path) -> str:
    """`runs/lstm-d0.2/model.pt` -> `lstm-d0.2`; `medium.pt` -> `medium`."""
    return checkpoint.parent.name if checkpoint.stem == "model" and checkpoint.parent.name else checkpoint.stem


def checked_perplexity(captured: Capture) -> float:
    """The text's perplexity, refused when the model's outputs overflow: finite weights can
    still give logits beyond float32, and then every log p is NaN, with no error."""
    log_p = np.asarray(captured.log_prob_next[:-1])
    bad = int(np.count_nonzero(~np.isfinite(log_p)))
    if bad:
        raise ReportgenError(
            f"log p of {bad:,} of {log_p.size:,} positions is not finite: the model's outputs "
            "overflow float32, so its weights are far too large; give a checkpoint of a model "
            "that trained to a finite loss"
        )
    perplexity = captured.perplexity()
    if not np.isfinite(perplexity):
        raise ReportgenError(f"the text's perplexity overflows ({perplexity}); the model gives "
                             "its words almost no probability")
    return perplexity


def unigram_perplexity(token_ids: np.ndarray) -> float:
    """The perplexity, on the same positions as the model's, of a unigram model of the text's
    own word counts: the baseline any language model of this text should beat. It has seen
    the text, so it flatters itself a little; a model worse than it is predicting noise."""
    ids = np.asarray(token_ids, dtype=np.int64)  # (T,)
    counts = np.bincount(ids).astype(np.float64)  # (V',), V' the largest id + 1
    return float(np.exp(-np.log(counts[ids[1:]] / counts.sum()).mean()))


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
        text_sha256=inputs.text.sha256,
        n_tokens=captured.n_tokens,
        n_unknown=inputs.text.n_unknown,
        perplexity=checked_perplexity(captured),
        truncated=config.max_tokens is not None and captured.n_tokens >= config.max_tokens,
        metadata=json_safe({k: v for k, v in loaded.metadata.items() if k != "train_config"}),
        unigram_perplexity=unigram_perplexity(captured.token_ids),
    )


def options_record(config: ReportConfig) -> dict[str, object]:
    """The options that shaped the report, without absolute paths (they vary by machine)."""
    return {
        "max_tokens": config.max_tokens,
        "capture": asdict(config.capture),
        "neurons": asdict(config.neurons),
        "embedding": asdict(config.embedding),
        "embed_states": (None if config.embed_states is None
                         else [state_name(key) for key in config.embed_states]),
        "feature_files": [path.name for path in config.feature_files],
        "ablation": asdict(config.ablation),
        "agreement": {**asdict(config.agreement),
                      "files": [path.name for path in config.agreement.files]},
        "site": asdict(config.site),
    }


def embedded_keys(config: ReportConfig, captured: Capture) -> list[StateKey]:
    """The layers and states to map with t-SNE: the configured ones, or all of the capture's.

    Empty when the text is too short for a map, so that a short text still gets its report.
    """
    if config.embed_states is None:
        wanted = captured.keys
    else:
        wanted = list(config.embed_states)
        unknown = [state_name(key) for key in wanted if key not in captured.states]
        if unknown:
            raise ReportgenError(
                f"--maps names {', '.join(unknown)}, which this model does not have; it has "
                f"{', '.join(state_name(key) for key in captured.keys)}"
            )
    return [] if captured.n_tokens < MIN_TSNE_POINTS else wanted


def sampling_notes(tokens: list[str], options: EmbeddingOptions,
                   results: list[EmbeddingResult]) -> list[str]:
    """What the t-SNE maps leave out, for the overview: positions not sampled, tokens excluded.

    Every map samples the same positions, since sampling depends only on the tokens and options.
    """
    if len(tokens) < MIN_TSNE_POINTS:
        return [f"the text's {len(tokens)} tokens are too few for t-SNE maps, which need "
                f"{MIN_TSNE_POINTS}; the clusters page is left out"]
    if not results:
        return []
    excluded = set(options.exclude)
    eligible = sum(token not in excluded for token in tokens)
    notes = []
    if results[0].n_points < eligible:
        notes.append(f"{results[0].n_points:,} of {eligible:,} positions sampled for the t-SNE "
                     f"maps (seed {options.seed}); --max-points sets how many")
    if eligible < len(tokens):
        notes.append(f"{len(tokens) - eligible:,} positions of excluded tokens "
                     f"({', '.join(sorted(excluded))}) left out of the t-SNE maps")
    return notes


def stream_notes(captured: Capture) -> list[str]:
    """How the capture ran: its streams, their burn-in and how closely the boundaries agreed."""
    record = captured.streams
    if record.streams == 1:
        return ["captured as one stream"]
    longer = (f"; doubled up to {record.largest_burn_in:,} at {record.doubled} of "
              f"{record.streams - 1} boundaries" if record.doubled else "")
    fallbacks = (f"; {record.fallbacks} segment{'s' if record.fallbacks > 1 else ''} ran as one "
                 "stream on from the previous one" if record.fallbacks else "")
    return [f"captured as {record.streams} parallel streams, each starting {record.burn_in:,} "
            f"tokens early{longer}{fallbacks}; largest difference from the previous stream at "
            f"a boundary {record.boundary_difference:.1e} in any unit of h or c (limit "
            f"{BOUNDARY_TOLERANCE:g})"]


def analyse(config: ReportConfig, inputs: Inputs, timings: dict[str, float]) -> ModelReport:
    """Capture and every analysis, for one model; the result holds no model."""
    with timed(timings, "capture", config.quiet):
        options = replace(config.capture, progress=False) if config.quiet else config.capture
        cached = cached_capture(inputs.loaded.model, inputs.text.ids, inputs.text.tokens,
                                inputs.vocabulary.words, options, inputs.loaded.sha256,
                                config.cache, config.cache_limit_gb,
                                {"checkpoint": str(Path(config.checkpoint).resolve()),
                                 "text": str(Path(inputs.text_path).resolve())})
    captured = cached.capture
    if cached.reused:
        note("capture: reused from the cache", not config.quiet)
    summary = summarise(config, inputs, captured)
    report = ModelReport(summary, captured,
                         options=options_record(config), timings=timings,
                         capture_reused=cached.reused, capture_entry=cached.entry)
    report.notes += stream_notes(captured)
    with timed(timings, "features", config.quiet):
        report.features = own_features(inputs.feature_files, captured.tokens)
    features = report.features
    neuron_options = options_key(config.neurons)
    with timed(timings, "distributions", config.quiet):
        unbounded_hidden = inputs.loaded.hyperparameters.rnn_type == "RNN_RELU"
        report.distributions = reuse(report, cached.entry, "distributions", {
            **neuron_options, "unbounded_hidden": unbounded_hidden,
        }, lambda: analyse_distributions(captured, config.neurons.cell_interval,
                                         config.neurons.rank_by,
                                         unbounded_hidden=unbounded_hidden,
                                         kl_smoothing=config.neurons.kl_smoothing))
    with timed(timings, "concepts", config.quiet):
        report.concepts = reuse(report, cached.entry, "concepts", {
            **neuron_options, "features": features_digest(features),
            "descriptions": features.descriptions,
        }, lambda: analyse_concepts(captured, features, config.neurons.label_threshold,
                                    progress=progress_flag(config),
                                    within_threshold=config.neurons.within_threshold,
                                    word_share=config.neurons.word_label_share))
    weights = GateWeights.of(inputs.loaded.model)  # plain arrays: the model stays behind
    if weights is not None:
        with timed(timings, "gates", config.quiet):
            report.gates = reuse(report, cached.entry, "gates", {},
                                 lambda: analyse_gates(captured, weights))
    agreement(config, inputs, report)
    assert report.distributions is not None
    report.paged = decide_paged_units(report.distributions, report.concepts,
                                      config.site.top_neurons, report.number_units)
    paged = report.paged.units
    with timed(timings, "correlations", config.quiet):
        report.correlations = reuse(report, cached.entry, "correlations", {
            "units": [[state_name(key), units] for key, units in paged.items()],
        }, lambda: analyse_correlations(captured, paged))
    unit_effects(config, inputs, report, cached.entry, paged)
    map_options = options_key(config.embedding)
    classes = features.classes()  # what names each map's clusters
    for key in embedded_keys(config, captured):
        with timed(timings, f"t-SNE {state_name(key)}", config.quiet):
            result = reuse(report, cached.entry, f"map-{state_name(key)}", {
                **map_options, "classes": features_digest(classes),
            }, lambda: embed(captured, *key, config.embedding, progress=progress_flag(config),
                             classes=classes, n_jobs=config.threads))
            report.embeddings.append(replace(result, options=config.embedding))
    report.notes += sampling_notes(captured.tokens, config.embedding, report.embeddings)
    return report


def unit_effects(config: ReportConfig, inputs: Inputs, report: ModelReport,
                 entry: Path | None, paged: dict[StateKey, list[int]]) -> None:
    """Output effects of the top layer's h units, and the mean-ablation of the `paged` units (or
    of every unit): what each unit does to the prediction (DESIGN.md 3.5)."""
    assert report.distributions is not None
    model, captured, timings = inputs.loaded.model, report.capture, report.timings
    top = paged.get((model.nlayers, "h"), [])
    with timed(timings, "output effects", config.quiet):
        report.output_effects = reuse(report, entry, "output-effects", {"units": top},
                                      lambda: output_effects(model, top))
    if not config.ablation.tokens:
        return
    units = ablation_units(model, paged, config.ablation.all_units)
    means = {key: stats.mean for key, stats in report.distributions.states.items()}
    assert report.features is not None
    features = report.features
    with timed(timings, "ablation", config.quiet):
        report.ablation = reuse(report, entry, "ablation", {
            **options_key(config.ablation), "features": features_digest(features),
            "units": {state_name(key): chosen for key, chosen in units.items()},
        }, lambda: ablate(model, captured.token_ids, units, means, features, config.ablation,
                          config.capture.device, progress_flag(config)))
    which = "every unit" if config.ablation.all_units else "the paged units"
    report.notes.append(f"mean-ablation of {which} over the first {report.ablation.n_tokens:,} "
                        "tokens (--ablation-tokens sets how many, --ablate-all ablates every unit)")


def agreement(config: ReportConfig, inputs: Inputs, report: ModelReport) -> None:
    """Number agreement on the built-in suite and the --agreement files, then the number-unit
    finder on the built-in noun-PP items (DESIGN.md 3.6). Not cached: both take seconds."""
    options = config.agreement
    if not options.enabled:
        return
    model, words = inputs.loaded.model, inputs.vocabulary.words
    if getattr(model, "splits", None):  # verb_log_probs is a plain log-softmax
        report.notes.append("no number agreement: its scoring does not follow a split softmax "
                            "yet, and a plain log-softmax would give other log probabilities")
        return
    known = set(words)
    suites = [built_in_suite(words, options.seed, options.per_condition),
              *(read.suite(known) for read in inputs.agreement_files)]
    with timed(report.timings, "agreement", config.quiet):
        report.agreement = analyse_agreement(model, suites, words, config.capture.device)
    items = finder_items([item for item in suites[0].items if item.task == NOUN_PP])
    if model.rnn_type != "LSTM" or not items:
        why = ("it needs an LSTM" if model.rnn_type != "LSTM"
               else "the vocabulary gives no noun-PP items")
        report.agreement.notes.append(f"no number-unit finder: {why}")
        return
    assert report.distributions is not None
    means = {layer: stats.mean for (layer, state), stats in report.distributions.states.items()
             if state == "h"}
    with timed(report.timings, "number units", config.quiet):
        report.number_units = find_number_units(
            model, items, words, means, options.seed, config.capture.device)


T = TypeVar("T")


def reuse(report: ModelReport, entry: Path | None, name: str, key: dict[str, Any],
          compute: Callable[[], T]) -> T:
    """An analysis from the capture's cache entry when an earlier run stored it with the same
    key, else computed (and stored); `report.analyses_reused` lists what came from the cache."""
    value, reused = cached_analysis(entry, name, key, compute)
    if reused:
        report.analyses_reused.append(name)
    return value


def check_output_path(config: ReportConfig) -> None:
    """Refuse an --out that would destroy or pollute the inputs, before any slow stage runs.

    A run replaces the whole OUT folder, so no input may lie inside it; and OUT may not lie
    inside --data, whose folder is the model's corpus and should hold nothing else.
    """
    out = config.out.resolve()
    if config.data is not None and out.is_relative_to(config.data.resolve()):
        raise ReportgenError(
            f"--out {config.out} lies inside the --data folder {config.data}; write the report "
            "outside the data folder"
        )
    inputs = {"checkpoint": config.checkpoint, "--data folder": config.data,
              "--text": config.text, "--vocabulary": config.vocabulary}
    for what, path in inputs.items():
        if path is not None and path.resolve().is_relative_to(out):
            raise ReportgenError(
                f"--out {config.out} holds the {what} {path}, and a run replaces that whole "
                "folder; choose another --out"
            )
    if config.cache is not None and config.cache.resolve().is_relative_to(out):
        raise ReportgenError(
            f"the capture cache {config.cache} lies inside --out {config.out}, and a run "
            "replaces that whole folder; give a --cache DIR (or $REPORTGEN_CACHE) outside it, "
            "or --no-cache"
        )
    check_output_folder(config.out)


@dataclass
class ReportRun:
    """What `run_report` wrote, and where its capture is cached."""

    out: Path
    capture_entries: list[Path]  # one per model whose capture the cache holds


def warn_if_worse_than_unigram(summary: ModelSummary) -> None:
    """The unigram check on stderr, once the report is written: a run that fails later says
    only its one line of error, and a finished one ends with the warning in view."""
    if summary.unigram_warning():
        print(f"reportgen: warning: {summary.name}: {summary.unigram_warning()}", file=sys.stderr)


def cache_lines(cache: Path | None, entries: list[Path]) -> list[str]:
    """A run's last lines: where its captures are cached and how large the cache is now, since
    a cache of captures grows unseen (ten reports of WikiText-2 models left 644 MB)."""
    if cache is None:
        return ["capture not cached (--no-cache)"]
    return [f"capture cached in {entry}" for entry in entries] + [
        f"capture cache: {cache_summary(cache)}; `reportgen cache list` shows the entries, "
        "`reportgen cache clear` removes them"]


def build_report(config: ReportConfig) -> Path:
    """Checkpoint and text in, report folder out; returns the folder."""
    return run_report(config).out


def run_report(config: ReportConfig) -> ReportRun:
    """`build_report`, telling also where the capture is cached."""
    check_output_path(config)
    resolve_device(config.capture.device)
    timings: dict[str, float] = {}
    with timed(timings, "load", config.quiet):
        inputs = load_inputs(config)
    report = analyse(config, inputs, timings)
    note("render...", not config.quiet)
    write_site(report, config.out, config.site, progress_flag(config))
    warn_if_worse_than_unigram(report.summary)
    note(f"render: {report.timings['render']:.1f} s; {sum(timings.values()):.0f} s in all",
         not config.quiet)
    return ReportRun(config.out, [report.capture_entry] if report.capture_entry else [])
