"""Reports of several models read on the same text, and the comparison page over them.

`build_reports` renders several trained models read on the same text: `OUT/<name>/` is each
model's full report, `OUT/index.html` the comparison page, `OUT/alignment/` each model's units
matched in the others, and `OUT/data/` the comparison's exports. The comparison is built from
what each model folder keeps in `data/comparable/`, read back from the folder just written, as
`reportgen compare` reads it from separately rendered reports (`reportgen.runs.combine`). Each model
is analysed once, and the units of all of them are aligned once (`reportgen.runs.model_matches`);
then each model's folder is written, whose unit pages list their matches, and the comparison
page reuses that alignment. The pages of
every model share the one Vega bundle in `OUT/assets/` (as DESIGN.md 4 lays out) rather than
copying its 0.9 MB into each folder; a model folder holds all of its own pages and exports, and
`reportgen report` on that one checkpoint gives a folder that stands alone. Models are analysed
one after another and their reports are kept until their folders are written; a report's
states are mapped read-only from its capture cache entry, so they live in the page cache and
not in the process. Under --no-cache the captures go to a temporary cache that the run
removes at its end, for the same reason. A checkpoint that fails to load is left out and shown on the comparison page; models
whose vocabularies differ stop the run before any slow stage, since their token ids do not mean
the same words.

The inputs are read by the stage functions of one model's report (`reportgen.inputs.load`), once
for all the models, and each model is analysed by `report.analyse`.
"""

from __future__ import annotations

import tempfile
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from pathlib import Path

from reportgen.analysis.bundle import ModelReport
from reportgen.analysis.comparison import Comparison, ModelFailure
from reportgen.analysis.state_sample import SAMPLE_POSITIONS
from reportgen.errors import ReportgenError
from reportgen.inputs.agreement_suites import AgreementFile
from reportgen.inputs.checkpoint import LoadedModel, load_checkpoint
from reportgen.inputs.corpus import Text, Vocabulary
from reportgen.inputs.feature_files import FeatureFile
from reportgen.inputs.load import (
    Inputs,
    check_annotations,
    check_vocabulary_source,
    read_agreement_files,
    read_feature_files,
    read_text,
    resolve_text_path,
    resolve_vocabulary,
)
from reportgen.inputs.model import resolve_device
from reportgen.progress import note
from reportgen.render.atomic import atomic_folder
from reportgen.render.comparable import read_comparable
from reportgen.render.site import write_assets, write_model_folder
from reportgen.runs.combine import DEFAULT_TITLE, write_comparison_site
from reportgen.runs.model_matches import first_look, other_models
from reportgen.runs.model_specs import ModelSpec, check_model_names
from reportgen.runs.report import (
    ReportConfig,
    analyse,
    check_output_path,
    progress_flag,
    timed,
    warn_if_worse_than_unigram,
)


@dataclass
class ComparisonRun:
    """What `build_reports` wrote: the site, and the comparison with its failures."""

    out: Path
    comparison: Comparison
    capture_entries: list[Path] = field(default_factory=list)  # in the kept cache, if any

    @property
    def failures(self) -> list[ModelFailure]:
        return self.comparison.failures

    def failure_message(self) -> str:
        """One line naming each model that is missing from the comparison, and why."""
        total = len(self.comparison.models) + len(self.failures)
        reasons = "; ".join(f"{f.name}: {f.message}" for f in self.failures)
        return (f"{len(self.failures)} of {total} models failed and are missing from "
                f"{self.out}/index.html: {reasons}")


@dataclass
class Prepared:
    """The loadable models and what they share, from the pass that runs before any capture."""

    models: list[ModelSpec]
    failures: list[ModelFailure]
    vocabulary: Vocabulary
    text: Text
    feature_files: tuple[FeatureFile, ...] = ()
    agreement_files: tuple[AgreementFile, ...] = ()


def model_config(config: ReportConfig, spec: ModelSpec) -> ReportConfig:
    return replace(config, checkpoint=spec.checkpoint, name=spec.resolved_name)


def first_difference(words: list[str], other: list[str]) -> str:
    at = next((i for i, (a, b) in enumerate(zip(words, other)) if a != b), None)
    if at is None:
        return f"{len(words):,} and {len(other):,} words, one the start of the other"
    return (f"{len(words):,} and {len(other):,} words, first difference at id {at}: "
            f"{words[at]!r} and {other[at]!r}")


def checked_vocabulary(config: ReportConfig, name: str, loaded: LoadedModel,
                       first: tuple[str, Vocabulary] | None) -> Vocabulary:
    """The model's vocabulary, which must be the first model's; an error names both if not.

    The first model's comes from --data or --vocabulary when given (built once), else from its
    checkpoint. Each later model must have as many words, and a vocabulary stored in a
    checkpoint must be the same words in the same order, since a word's id is its row in the
    embedding and the softmax.
    """
    if first is None:
        try:
            vocabulary = resolve_vocabulary(config, loaded)
        except ReportgenError as error:
            raise ReportgenError(f"model {name}: {error}") from None
        if loaded.vocabulary is not None and loaded.vocabulary != vocabulary.words:
            raise ReportgenError(
                f"model {name}: its checkpoint's vocabulary differs from the one built from "
                f"--data or --vocabulary ({first_difference(loaded.vocabulary, vocabulary.words)}"
                "); give the folder the models were trained from"
            )
        return vocabulary
    first_name, vocabulary = first
    try:
        check_vocabulary_source(config, loaded)
    except ReportgenError as error:
        raise ReportgenError(f"model {name}: {error}") from None
    if loaded.vocabulary is None and config.data is None and config.vocabulary is None:
        raise ReportgenError(f"model {name}: this checkpoint stores no vocabulary; give --data "
                             "DIR, the folder the models were trained from")
    words = loaded.vocabulary
    if loaded.hyperparameters.ntoken != len(vocabulary) or (
            words is not None and words != vocabulary.words):
        detail = (first_difference(vocabulary.words, words) if words is not None else
                  f"{len(vocabulary):,} and {loaded.hyperparameters.ntoken:,} words")
        raise ReportgenError(f"models {first_name} and {name} have different vocabularies "
                             f"({detail}); compare only models trained on the same corpus")
    return vocabulary


def prepare(models: Sequence[ModelSpec], config: ReportConfig) -> Prepared:
    """Load each checkpoint once to check it, before minutes of capture: a checkpoint that
    fails is recorded, and mixed vocabularies stop the run. Each model is dropped once checked
    and loaded again for its capture, so memory holds one model at a time."""
    loadable: list[ModelSpec] = []
    failures: list[ModelFailure] = []
    first: tuple[str, Vocabulary] | None = None
    for spec in models:
        try:
            loaded = load_checkpoint(spec.checkpoint, config.allow_unsafe_pickle, config.rnn_type)
        except ReportgenError as error:
            failures.append(ModelFailure(spec.resolved_name, str(spec.checkpoint), str(error)))
            continue
        vocabulary = checked_vocabulary(config, spec.resolved_name, loaded, first)
        first = first or (spec.resolved_name, vocabulary)
        loadable.append(spec)
    if first is None:
        raise ReportgenError(f"none of the {len(models)} models could be loaded: "
                             f"{failures[0].message}")
    text = read_text(resolve_text_path(config), first[1], config.max_tokens)
    feature_files = read_feature_files(config.feature_files)
    check_annotations(feature_files, text.tokens)
    return Prepared(loadable, failures, first[1], text, feature_files,
                    read_agreement_files(config.agreement))


def given_settings(report: ModelReport, spec: ModelSpec) -> None:
    """Settings the user gave override what the checkpoint says, in the report and its notes."""
    given = {key: value for key, value in (("dropout", spec.dropout), ("seed", spec.seed))
             if value is not None}
    if given:
        report.summary.metadata.update(given)
        report.notes.append("given for the comparison: " + ", ".join(
            f"{key} {value:g}" for key, value in given.items()))


def analyse_model(spec: ModelSpec, config: ReportConfig, prepared: Prepared) -> ModelReport:
    """Load, capture and analyse one model of the comparison."""
    timings: dict[str, float] = {}
    with timed(timings, "load", config.quiet):
        loaded = load_checkpoint(spec.checkpoint, config.allow_unsafe_pickle, config.rnn_type)
    inputs = Inputs(loaded, prepared.vocabulary, prepared.text, resolve_text_path(config),
                    prepared.feature_files, prepared.agreement_files)
    report = analyse(model_config(config, spec), inputs, timings)
    given_settings(report, spec)
    return report


def build_reports(models: Sequence[ModelSpec], config: ReportConfig) -> ComparisonRun:
    """Several models on one text: `config.out/<name>/` each, and the comparison page.

    `config` holds what the models share: `out` (the site), the data, text and every option,
    and `name`, the comparison page's title; each model's checkpoint and name come from
    `models`. The run succeeds when at least one model is reported; see `.failures`.
    """
    if not models:
        raise ReportgenError("no models to compare; give at least one checkpoint")
    check_model_names(models)
    for spec in models:
        check_output_path(model_config(config, spec))
    resolve_device(config.capture.device)
    prepared = prepare(models, config)
    site = replace(config.site,
                   comparison_positions=config.site.comparison_positions or SAMPLE_POSITIONS)
    failures = list(prepared.failures)
    with capture_cache_of(config) as cache:
        reports = analyse_models(prepared, replace(config, cache=cache), failures)
        if not reports:
            raise ReportgenError(f"no model could be analysed: {failures[0].name}: "
                                 f"{failures[0].message}")
        others = other_models([first_look(report, site) for report in reports.values()],
                              failures)
        written = []
        with atomic_folder(config.out) as folder:
            write_assets(folder)
            for index, (name, report) in enumerate(reports.items(), start=1):
                note(f"[{index}/{len(reports)}] {name}: writing its pages", not config.quiet)
                report.other_models = others[name]
                write_model_folder(report, folder / name, "../", site, progress_flag(config))
                written.append(read_comparable(folder / name, href=f"{name}/index.html"))
            alignment = next(iter(others.values())).alignment
            comparison = write_comparison_site(written, failures, folder,
                                               config.name or DEFAULT_TITLE, site, alignment)
        entries = [report.capture_entry for report in reports.values()
                   if report.capture_entry is not None and config.cache is not None]
    for report in reports.values():
        warn_if_worse_than_unigram(report.summary)
    return ComparisonRun(Path(config.out), comparison, entries)


@contextmanager
def capture_cache_of(config: ReportConfig) -> Iterator[Path]:
    """The run's capture cache: the user's, or under --no-cache a temporary one removed when
    the run ends, so that every model's states stay mapped from disk until its folder is
    written, and not in memory."""
    if config.cache is not None:
        yield config.cache
        return
    with tempfile.TemporaryDirectory(prefix="reportgen-captures-") as folder:
        yield Path(folder)


def analyse_models(prepared: Prepared, config: ReportConfig,
                   failures: list[ModelFailure]) -> dict[str, ModelReport]:
    """Analyse each model once, in order; a model that fails joins `failures`."""
    reports = {}
    for index, spec in enumerate(prepared.models, start=1):
        name = spec.resolved_name
        note(f"[{index}/{len(prepared.models)}] {name}", not config.quiet)
        started = time.perf_counter()
        try:
            report = analyse_model(spec, config, prepared)
        except ReportgenError as error:
            failures.append(ModelFailure(name, str(spec.checkpoint), str(error)))
            continue
        reports[name] = report
        note(f"[{index}/{len(prepared.models)}] {name}: perplexity "
             f"{report.summary.perplexity:.2f}, {time.perf_counter() - started:.0f} s",
             not config.quiet)
    return reports
