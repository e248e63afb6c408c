"""Sweeps: models that differ only in dropout and seed, trained together and reported together.

`train_sweep` trains one model per (dropout, seed) into `OUT/<name>/`, named for its settings
(`lstm-d0.2-s1`). A run that fails is recorded with its error and the sweep goes on, since a
sweep runs for hours and one crash (out of memory, a full disk) must not lose the others;
`OUT/sweep.csv` is rewritten after every run, so even a killed sweep leaves its table.

`build_reports` renders several trained models read on the same text: `OUT/<name>/` is each
model's full report, `OUT/index.html` the comparison page, `OUT/alignment/` each model's units
matched in the others, and `OUT/data/` the comparison's exports. The comparison is built from
what each model folder keeps in `data/comparable/`, read back from the folder just written, as
`reportgen compare` reads it from separately rendered reports (`reportgen.combine`). Each model
is analysed twice (`reportgen.model_matches`): first to align its units with the other models',
then, from the caches, to write its folder, whose unit pages list their matches. The pages of
every model share the one Vega bundle in `OUT/assets/` (as DESIGN.md 4 lays out) rather than
copying its 0.9 MB into each folder; a model folder holds all of its own pages and exports, and
`reportgen report` on that one checkpoint gives a folder that stands alone. Models are analysed
one after another and only their figures and sampled states are kept, so memory stays that of
one model. A checkpoint that fails to load is left out and shown on the comparison page; models
whose vocabularies differ stop the run before any slow stage, since their token ids do not mean
the same words.
"""

from __future__ import annotations

import math
import re
import time
import tomllib
from collections.abc import Sequence
from dataclasses import dataclass, replace
from itertools import product
from pathlib import Path
from typing import Any

import pandas as pd

from reportgen.analysis.comparison import Comparison, ModelFailure
from reportgen.analysis.state_sample import SAMPLE_POSITIONS
from reportgen.checkpoint import LoadedModel, load_checkpoint
from reportgen.combine import DEFAULT_TITLE, MODEL_NAME, RESERVED_NAMES, write_comparison_site
from reportgen.comparable import read_comparable
from reportgen.corpus import Text, Vocabulary, tokenize, vocabulary_from_folder
from reportgen.csv_safety import neutralise_formulas
from reportgen.errors import ReportgenError
from reportgen.model import resolve_device
from reportgen.model_matches import FirstLook, first_look, other_models, with_first_pass
from reportgen.pages import SiteOptions
from reportgen.progress import note
from reportgen.feature_files import FeatureFile
from reportgen.report import (Inputs, ReportConfig, analyse, check_output_path, default_name,
                              check_annotations, progress_flag, read_feature_files, resolve_text_path,
                              resolve_vocabulary, timed)
from reportgen.results import ModelReport
from reportgen.site import atomic_folder, write_assets, write_model_folder
from reportgen.train import TrainConfig, TrainResult, train

SWEEP_TABLE = "sweep.csv"
SETTING_SUFFIX = re.compile(r":([A-Za-z_]+)=([^:/]*)$")
MODEL_SETTINGS = ("dropout", "seed")
MODELS_FILE_KEYS = ("data", "text", "vocabulary", "models")
MODEL_ENTRY_KEYS = ("name", "checkpoint", "dropout", "seed")


# Training sweeps ---------------------------------------------------------------------------

@dataclass
class SweepRun:
    """One combination of a sweep: its settings, its folder, and its result or its error."""

    name: str
    config: TrainConfig
    folder: Path
    result: TrainResult | None = None
    error: str | None = None


@dataclass
class SweepResult:
    """Every run of a sweep, in training order; `failed` are those that ended in an error."""

    out: Path
    runs: list[SweepRun]

    @property
    def failed(self) -> list[SweepRun]:
        return [run for run in self.runs if run.error is not None]

    def to_frame(self) -> pd.DataFrame:
        """sweep.csv: one row per run; perplexities empty where the run failed or has not
        run yet (the file is rewritten after each run)."""
        return pd.DataFrame([{
            "model": run.name,
            "dropout": run.config.dropout,
            "seed": run.config.seed,
            "valid_perplexity": run.result.valid_perplexity if run.result else math.nan,
            "test_perplexity": run.result.test_perplexity if run.result else math.nan,
            "seconds": run.result.seconds if run.result else math.nan,
            "checkpoint": str(run.result.checkpoint.relative_to(self.out)) if run.result else "",
            "error": run.error or "",
        } for run in self.runs])

    def format_table(self) -> str:
        """The summary printed at the end of `reportgen train` with several settings."""
        rows = [("model", "dropout", "seed", "valid ppl", "test ppl", "time")]
        for run in self.runs:
            if run.result is not None:
                result = run.result
                figures = (f"{result.valid_perplexity:.2f}", f"{result.test_perplexity:.2f}",
                           f"{result.seconds:.0f} s")
            else:
                figures = ("failed", "", "")
            rows.append((run.name, f"{run.config.dropout:g}", str(run.config.seed), *figures))
        widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
        lines = ["  ".join(cell.ljust(width) for cell, width in zip(row, widths)).rstrip()
                 for row in rows]
        lines += [f"{run.name}: {run.error}" for run in self.failed]
        return "\n".join(lines)


def run_name(config: TrainConfig) -> str:
    """`lstm-d0.2-s1`: the folder name says the architecture, the dropout and the seed."""
    return f"{config.model.lower()}-d{config.dropout:g}-s{config.seed}"


def sweep_configs(base: TrainConfig, dropouts: Sequence[float],
                  seeds: Sequence[int]) -> list[TrainConfig]:
    """Every (dropout, seed), dropout first; all are checked before any training starts."""
    for flag, values in (("--dropout", dropouts), ("--seed", seeds)):
        if not values:
            raise ReportgenError(f"{flag} needs at least one value")
        repeated = sorted({value for value in values if list(values).count(value) > 1})
        if repeated:
            raise ReportgenError(f"{flag} lists {', '.join(f'{v:g}' for v in repeated)} more "
                                 "than once; give each value once")
    configs = [replace(base, dropout=float(dropout), seed=int(seed))
               for dropout, seed in product(dropouts, seeds)]
    for config in configs:
        config.validate()
    return configs


def describe_failure(error: Exception) -> str:
    """One line: our own messages as they are, anything else with its type."""
    if isinstance(error, ReportgenError):
        return str(error)
    first_line = str(error).strip().splitlines()[0] if str(error).strip() else ""
    return f"{type(error).__name__}: {first_line}" if first_line else type(error).__name__


def train_sweep(data: Path, out: Path, base: TrainConfig, dropouts: Sequence[float],
                seeds: Sequence[int], quiet: bool = False,
                progress: bool | None = None) -> SweepResult:
    """Train one model per (dropout, seed) into `out/<run_name>/`; failures do not stop it."""
    data, out = Path(data), Path(out)
    configs = sweep_configs(base, dropouts, seeds)
    vocabulary_from_folder(data)  # a missing or incomplete folder fails once, not once per run
    if out.exists() and not out.is_dir():
        raise ReportgenError(f"{out}: exists and is not a folder; choose another --out")
    out.mkdir(parents=True, exist_ok=True)
    sweep = SweepResult(out, [SweepRun(run_name(c), c, out / run_name(c)) for c in configs])
    for index, run in enumerate(sweep.runs, start=1):
        prefix = f"[{index}/{len(sweep.runs)}] {run.name}"
        note(f"{prefix}: training, dropout {run.config.dropout:g}, seed {run.config.seed}",
             not quiet)
        try:
            run.result = train(data, run.folder, run.config, progress=progress)
        except Exception as error:  # noqa: BLE001  (recorded in the table; the sweep goes on)
            run.error = describe_failure(error)
            note(f"{prefix}: failed: {run.error}", not quiet)
        else:
            note(f"{prefix}: valid perplexity {run.result.valid_perplexity:.2f}, test "
                 f"{run.result.test_perplexity:.2f}, {run.result.seconds:.0f} s", not quiet)
        neutralise_formulas(sweep.to_frame()).to_csv(out / SWEEP_TABLE, index=False,
                                                     float_format="%.6g")
    return sweep


# The models of a comparison ----------------------------------------------------------------

@dataclass
class ModelSpec:
    """One model of a comparison; dropout and seed when its checkpoint does not store them."""

    checkpoint: Path
    name: str | None = None  # default: the checkpoint's folder (`runs/lstm-d0.2/model.pt`) or stem
    dropout: float | None = None
    seed: int | None = None

    def __post_init__(self) -> None:
        self.checkpoint = Path(self.checkpoint)
        if self.dropout is not None and not 0.0 <= self.dropout < 1.0:
            raise ReportgenError(f"model {self.resolved_name}: dropout must be in [0, 1), not "
                                 f"{self.dropout}")

    @property
    def resolved_name(self) -> str:
        return self.name or default_name(self.checkpoint)


def parse_setting(key: str, value: str, argument: str) -> float | int:
    try:
        return float(value) if key == "dropout" else int(value)
    except ValueError:
        kind = "a number" if key == "dropout" else "a whole number"
        raise ReportgenError(f"{argument!r}: {key} must be {kind}, not {value!r}") from None


def parse_model_argument(argument: str) -> ModelSpec:
    """`[NAME=]PATH[:dropout=X][:seed=N]`, e.g. `base=runs/a/model.pt:dropout=0.5:seed=2`.

    NAME is letters, digits, `.`, `_` and `-`; a path with `=` in its first part is written
    with a folder, as `./a=b.pt`.
    """
    rest, settings = argument, {}
    while match := SETTING_SUFFIX.search(rest):
        key, value = match.groups()
        if key not in MODEL_SETTINGS:
            raise ReportgenError(f"{argument!r}: unknown setting {key!r}; a model takes "
                                 "dropout= and seed=, as NAME=PATH:dropout=0.5:seed=2")
        if key in settings:
            raise ReportgenError(f"{argument!r}: {key} is given twice")
        settings[key] = parse_setting(key, value, argument)
        rest = rest[: match.start()]
    name = None
    head, equals, tail = rest.partition("=")
    if equals and MODEL_NAME.fullmatch(head):
        name, rest = head, tail
    if not rest:
        raise ReportgenError(f"{argument!r}: no checkpoint path; write "
                             "NAME=PATH[:dropout=X][:seed=N]")
    return ModelSpec(Path(rest), name, settings.get("dropout"), settings.get("seed"))


@dataclass
class ModelsFile:
    """A TOML file that lists the models of a comparison, and optionally their shared text."""

    path: Path
    models: list[ModelSpec]
    data: Path | None = None
    text: Path | None = None
    vocabulary: Path | None = None


def read_toml(path: Path) -> dict[str, Any]:
    try:
        with path.open("rb") as handle:
            return tomllib.load(handle)
    except FileNotFoundError:
        raise ReportgenError(f"{path}: no such config file; check the path") from None
    except tomllib.TOMLDecodeError as error:
        raise ReportgenError(f"{path}: not valid TOML ({error})") from None
    except UnicodeDecodeError as error:
        raise ReportgenError(f"{path}: not UTF-8 text (byte {error.start}); TOML files are "
                             "UTF-8") from None
    except RecursionError:
        raise ReportgenError(f"{path}: nested too deeply to be a list of models") from None


def check_keys(table: dict[str, Any], allowed: Sequence[str], where: str) -> None:
    unknown = [key for key in table if key not in allowed]
    if unknown:
        raise ReportgenError(f"{where}: unknown key {unknown[0]!r}; the keys are "
                             f"{', '.join(allowed)}")


def typed(table: dict[str, Any], key: str, kinds: tuple[type, ...], what: str,
          where: str) -> Any:
    value = table.get(key)
    if value is not None and (not isinstance(value, kinds) or isinstance(value, bool)):
        raise ReportgenError(f"{where}: {key} must be {what}, not {value!r}")
    return value


def model_entry(entry: Any, number: int, folder: Path, path: Path) -> ModelSpec:
    where = f"{path}: model {number}"
    if not isinstance(entry, dict):
        raise ReportgenError(f"{where}: each model is a [[models]] table")
    check_keys(entry, MODEL_ENTRY_KEYS, where)
    checkpoint = typed(entry, "checkpoint", (str,), "a path", where)
    if checkpoint is None:
        raise ReportgenError(f"{where}: needs checkpoint = \"PATH\"")
    name = typed(entry, "name", (str,), "a string", where)
    if name is not None and not MODEL_NAME.fullmatch(name):
        raise ReportgenError(f"{where}: name {name!r} may hold only letters, digits, '.', '_' "
                             "and '-'")
    dropout = typed(entry, "dropout", (int, float), "a number", where)
    seed = typed(entry, "seed", (int,), "a whole number", where)
    return ModelSpec(folder / checkpoint, name, None if dropout is None else float(dropout), seed)


def read_models_file(path: Path) -> ModelsFile:
    """Read a comparison's TOML file; paths in it are relative to the file's folder.

        data = "corpus"                 # optional, as --data
        [[models]]
        name = "lstm-d0.5"              # optional
        checkpoint = "runs/a/model.pt"
        dropout = 0.5                   # optional, when the checkpoint does not store it
        seed = 2                        # optional
    """
    path = Path(path)
    table = read_toml(path)
    check_keys(table, MODELS_FILE_KEYS, str(path))
    entries = table.get("models")
    if not isinstance(entries, list) or not entries:
        raise ReportgenError(f"{path}: lists no models; add a [[models]] table with a "
                             "checkpoint for each")
    folder = path.parent
    models = [model_entry(entry, number, folder, path)
              for number, entry in enumerate(entries, start=1)]
    shared = {key: typed(table, key, (str,), "a path", str(path))
              for key in ("data", "text", "vocabulary")}
    return ModelsFile(path, models, **{key: None if value is None else folder / value
                                       for key, value in shared.items()})


def select_models(models_file: ModelsFile, names: Sequence[str]) -> list[ModelSpec]:
    """The models of the file with these names, in the order given; all of them for none."""
    if not names:
        return list(models_file.models)
    by_name = {spec.resolved_name: spec for spec in models_file.models}
    unknown = [name for name in names if name not in by_name]
    if unknown:
        raise ReportgenError(f"{models_file.path} lists no model named {unknown[0]!r}; it "
                             f"lists {', '.join(by_name)}")
    return [by_name[name] for name in names]


def check_model_names(models: Sequence[ModelSpec]) -> None:
    """Each name becomes a folder beside `index.html`, `assets/` and `data/`: unique and plain."""
    seen: set[str] = set()
    for spec in models:
        name = spec.resolved_name
        if not MODEL_NAME.fullmatch(name):
            raise ReportgenError(f"model name {name!r} may hold only letters, digits, '.', '_' "
                                 "and '-'; name it with NAME=PATH")
        if name.lower() in RESERVED_NAMES:
            raise ReportgenError(f"model name {name!r} is taken by the comparison site's own "
                                 "files; name it with NAME=PATH")
        if name in seen:
            raise ReportgenError(f"two models are named {name!r}; name them apart with "
                                 "NAME=PATH")
        seen.add(name)


# Reports of several models ------------------------------------------------------------------

@dataclass
class ComparisonRun:
    """What `build_reports` wrote: the site, and the comparison with its failures."""

    out: Path
    comparison: Comparison

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
    text_path = resolve_text_path(config)
    text = tokenize(text_path, first[1], config.max_tokens)
    if len(text) < 2:
        raise ReportgenError(f"{text_path}: needs at least two tokens to analyse")
    feature_files = read_feature_files(config.feature_files)
    check_annotations(feature_files, text.tokens)
    return Prepared(loadable, failures, first[1], text, feature_files)


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
                    prepared.feature_files)
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
    looks = first_pass(prepared, config, site, failures)
    if not looks:
        raise ReportgenError(f"no model could be analysed: {failures[0].name}: "
                             f"{failures[0].message}")
    others = other_models(list(looks.values()), failures)
    written, reading = [], config.quiet or config.cache is not None  # pass 2 reads the caches
    with atomic_folder(config.out) as folder:
        write_assets(folder)
        for index, spec in enumerate(prepared.models, start=1):
            name = spec.resolved_name
            if name not in looks:
                continue
            note(f"[{index}/{len(prepared.models)}] {name}: writing its pages", not config.quiet)
            try:
                report = analyse_model(spec, replace(config, quiet=reading), prepared)
            except ReportgenError as error:
                failures.append(ModelFailure(name, str(spec.checkpoint), str(error)))
                continue
            write_model_folder(with_first_pass(report, looks[name], others[name]), folder / name,
                               "../", site, progress_flag(config))
            written.append(read_comparable(folder / name, href=f"{name}/index.html"))
            del report  # its capture: one model's states at a time
        comparison = write_comparison_site(written, failures, folder,
                                           config.name or DEFAULT_TITLE, site)
    return ComparisonRun(Path(config.out), comparison)


def first_pass(prepared: Prepared, config: ReportConfig, site: SiteOptions,
               failures: list[ModelFailure]) -> dict[str, FirstLook]:
    """Analyse each model and keep only its `FirstLook`; a model that fails joins `failures`.
    Under --no-cache the second pass computes everything again, so say so once."""
    if config.cache is None:
        note("--no-cache: each model is analysed twice, once to align the units across models "
             "and once to write its pages; with the cache the second is a read", not config.quiet)
    looks = {}
    for index, spec in enumerate(prepared.models, start=1):
        name = spec.resolved_name
        note(f"[{index}/{len(prepared.models)}] {name}", not config.quiet)
        started = time.perf_counter()
        try:
            report = analyse_model(spec, config, prepared)
        except ReportgenError as error:
            failures.append(ModelFailure(name, str(spec.checkpoint), str(error)))
            continue
        looks[name] = first_look(report, site)
        note(f"[{index}/{len(prepared.models)}] {name}: perplexity "
             f"{report.summary.perplexity:.2f}, {time.perf_counter() - started:.0f} s",
             not config.quiet)
        del report  # its capture: one model's states at a time
    return looks
