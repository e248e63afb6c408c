"""The corpus and model stage: the checkpoint, its vocabulary, the tokenised text and the
user's feature files, each checked before any slow stage runs.

It is a module of its own because two pipelines start here: `report.build_report` for one
model and `multi_report.build_reports` for several read on the same text, which reads the text
and the feature files once for all of them.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import numpy as np

from reportgen.errors import ReportgenError
from reportgen.inputs.agreement_suites import AgreementFile, AgreementOptions, read_agreement_file
from reportgen.inputs.checkpoint import LoadedModel, load_checkpoint
from reportgen.inputs.corpus import (
    SPLITS,
    Text,
    Vocabulary,
    load_vocabulary,
    tokenize,
    vocabulary_from_folder,
)
from reportgen.inputs.feature_files import FeatureFile, read_feature_file
from reportgen.inputs.features import BUILT_IN_FEATURES, TokenFeatures, token_features
from reportgen.inputs.layouts import FASTAI_STATE


class InputSettings(Protocol):
    """Where the inputs are: the fields of `report.ReportConfig` this stage reads. A protocol,
    so that this stage does not import the report's module, which runs after it."""

    checkpoint: Path
    data: Path | None
    text: Path | None
    vocabulary: Path | None
    max_tokens: int | None
    allow_unsafe_pickle: bool
    rnn_type: str | None
    feature_files: tuple[Path, ...]
    agreement: AgreementOptions


@dataclass
class Inputs:
    """What the corpus and model stages give: no stage after capture sees the model."""

    loaded: LoadedModel
    vocabulary: Vocabulary
    text: Text
    text_path: Path
    feature_files: tuple[FeatureFile, ...] = ()
    agreement_files: tuple[AgreementFile, ...] = ()  # --agreement, read but not yet filtered


def resolve_text_path(config: InputSettings) -> Path:
    if config.text is not None:
        return config.text
    if config.data is not None:
        return config.data / "test.txt"
    raise ReportgenError("say which text to analyse: --text FILE, or --data DIR to use DIR/test.txt")


def check_vocabulary_source(config: InputSettings, loaded: LoadedModel) -> None:
    """A fastai model's word ids are the order of its `itos` list, which no data folder gives:
    --data would rebuild data.Corpus's order and give every word another word's row."""
    if loaded.format == FASTAI_STATE and config.vocabulary is None:
        raise ReportgenError(
            "a fastai language model numbers its words by its itos list, which no data folder "
            "gives; write it as --vocabulary FILE, one token per line (see docs/models.md)")


def resolve_vocabulary(config: InputSettings, loaded: LoadedModel) -> Vocabulary:
    """The model's word ids: from --vocabulary, --data (as data.Corpus) or the checkpoint."""
    check_vocabulary_source(config, loaded)
    if config.vocabulary is not None:
        vocabulary = load_vocabulary(config.vocabulary)
        origin = str(config.vocabulary)
    elif config.data is not None:
        vocabulary = vocabulary_from_folder(config.data)
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


def read_text(text_path: Path, vocabulary: Vocabulary, max_tokens: int | None) -> Text:
    """The text in the model's word ids, refused when it has fewer than two tokens: a
    prediction needs a next word. One model's report and several models' both read it so."""
    text = tokenize(text_path, vocabulary, max_tokens)
    if len(text) < 2:
        raise ReportgenError(f"{text_path}: needs at least two tokens to analyse")
    return text


def read_feature_files(paths: tuple[Path, ...]) -> tuple[FeatureFile, ...]:
    """Every --features file, read and checked; two files may not define the same feature."""
    reserved = list(BUILT_IN_FEATURES)
    files = []
    for path in paths:
        features = read_feature_file(path, reserved)
        reserved += features.names
        files.append(features)
    return tuple(files)


def check_annotations(files: tuple[FeatureFile, ...], tokens: list[str]) -> None:
    """An annotation file must fit the text: checked before the capture, not after it."""
    for features in files:
        if features.annotation:
            features.aligned_annotation(tokens)


def own_features(files: tuple[FeatureFile, ...], tokens: list[str]) -> TokenFeatures:
    """The built-in features of the text and those of the --features files."""
    values: dict[str, np.ndarray] = {}
    descriptions: dict[str, str] = {}
    for features in files:
        values.update(features.evaluate(tokens))
        descriptions.update(features.descriptions())
    return token_features(tokens, values, descriptions)


def read_agreement_files(options: AgreementOptions) -> tuple[AgreementFile, ...]:
    """Every --agreement file, read and checked: a malformed line stops the run here."""
    return tuple(read_agreement_file(path) for path in options.files) if options.enabled else ()


def load_inputs(config: InputSettings) -> Inputs:
    """Corpus and model stage: the checkpoint, its vocabulary and the tokenised text."""
    feature_files = read_feature_files(config.feature_files)
    agreement_files = read_agreement_files(config.agreement)
    text_path = resolve_text_path(config)
    loaded = load_checkpoint(config.checkpoint, config.allow_unsafe_pickle, config.rnn_type)
    vocabulary = resolve_vocabulary(config, loaded)
    text = read_text(text_path, vocabulary, config.max_tokens)
    check_annotations(feature_files, text.tokens)
    return Inputs(loaded, vocabulary, text, text_path, feature_files, agreement_files)
