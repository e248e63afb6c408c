"""The models of a comparison, as the user names them: `NAME=PATH:dropout=X:seed=N` on the
command line, or `[[models]]` tables in a TOML config file with their shared data, text and
vocabulary.

Parsing is a stage of its own, before any checkpoint is read: every name, path and setting is
checked here, so that a typo ends the run with one line before minutes of capture, and both
`reportgen report` and the Python API (`multi_report.build_reports`) take the same `ModelSpec`s.
"""

from __future__ import annotations

import re
import tomllib
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from reportgen.errors import ReportgenError
from reportgen.runs.combine import MODEL_NAME, check_name
from reportgen.runs.report import default_name

SETTING_SUFFIX = re.compile(r":([A-Za-z_]+)=([^:/]*)$")
MODEL_SETTINGS = ("dropout", "seed")
MODELS_FILE_KEYS = ("data", "text", "vocabulary", "models")
MODEL_ENTRY_KEYS = ("name", "checkpoint", "dropout", "seed")


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
        check_name(name, "model name", "NAME=PATH")
        if name in seen:
            raise ReportgenError(f"two models are named {name!r}; name them apart with "
                                 "NAME=PATH")
        seen.add(name)
