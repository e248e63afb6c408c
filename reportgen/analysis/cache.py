"""Analysis results kept beside their capture, so that a re-render skips what did not change.

Each result is stored in the capture's own cache entry (`ENTRY/analyses/NAME-DIGEST.json` and
`.npz`), keyed by everything that made it (`key_digest`):
- the options that shape it: every field of its options dataclass (`options_key`), so an
  option added later is in the key without anyone remembering to add it; and, for the concepts
  and the maps, the bytes of the token features;
- the analysis itself (`ANALYSES`): its declared algorithm version, the SHA-256 of the source
  of each module it runs, and the value of every upper-case module constant of those modules,
  read when the key is made. A hand-kept list of constants goes stale as the format number
  did: `FORMAT = 1` outlived changes of results, such as t-SNE's affinities moving to one
  thread, and a report after an upgrade could show old numbers without a word;
- the versions of reportgen and of the libraries that compute results
  (`versions.KEY_LIBRARIES`).
So a second run that changes only page or figure options reuses every analysis, one that
changes, say, `--perplexity` recomputes only the t-SNE maps, and one after an upgrade or an
edit of an analysis recomputes what it touched. The results go when their capture entry goes.

Nothing here unpickles: a result is written as JSON for its structure and one `.npz` for its
arrays, read back with `allow_pickle=False`, and only the result dataclasses listed in
`CLASSES` are rebuilt. A file that cannot be read back is ignored and the analysis runs again;
a cache that cannot be written only costs the time.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import numpy as np

from reportgen.analysis.ablation import AblationResult, StateAblation
from reportgen.analysis.clustering import ClusterRow
from reportgen.analysis.concepts import ConceptResult, NeuronConcepts
from reportgen.analysis.correlations import CorrelationResult, UnitPartners
from reportgen.analysis.distributions import DistributionResult, NeuronStats
from reportgen.analysis.divergences import Divergences
from reportgen.analysis.embedding import EmbeddingOptions, EmbeddingResult
from reportgen.analysis.gates import GateResult, LayerGates
from reportgen.analysis.output_effects import OutputEffects
from reportgen.inputs.features import TokenFeatures
from reportgen.versions import key_versions, modules_provenance, plain

FOLDER = "analyses"
FORMAT = 3  # bump when a result's fields change, so older files are not read (3: provenance, smoothed KL)
CLASSES: dict[str, type] = {cls.__name__: cls for cls in (
    AblationResult, ClusterRow, ConceptResult, CorrelationResult, Divergences, DistributionResult,
    EmbeddingOptions, EmbeddingResult, GateResult, LayerGates, NeuronConcepts, NeuronStats,
    OutputEffects, StateAblation, UnitPartners)}

T = TypeVar("T")


@dataclasses.dataclass(frozen=True)
class Analysis:
    """What makes one cached analysis's result besides its options: bump `version` when a
    change of its method changes results; `modules` are those whose code and constants it
    runs (the source and constants are read into the key, so they need no bump)."""

    version: int
    modules: tuple[str, ...]


ANALYSES: dict[str, Analysis] = {
    "distributions": Analysis(1, ("reportgen.analysis.distributions",
                                  "reportgen.analysis.histograms",
                                  "reportgen.analysis.divergences")),
    "concepts": Analysis(1, ("reportgen.analysis.concepts", "reportgen.inputs.features",
                             "reportgen.inputs.word_classes")),
    "gates": Analysis(1, ("reportgen.analysis.gates",)),
    "correlations": Analysis(1, ("reportgen.analysis.correlations",)),
    "output-effects": Analysis(1, ("reportgen.analysis.output_effects",)),
    "ablation": Analysis(1, ("reportgen.analysis.ablation",)),
    "map": Analysis(1, ("reportgen.analysis.embedding", "reportgen.analysis.clustering")),
}


def analysis_of(name: str) -> Analysis:
    """The declaration behind a cached result's name: `map-L1-h` is a `map`."""
    found = ANALYSES.get(name) or ANALYSES.get(name.partition("-")[0])
    if found is None:
        raise KeyError(f"the cached analysis {name!r} is not declared in ANALYSES")
    return found


def cached_analysis(entry: Path | None, name: str, key: dict[str, Any],
                    compute: Callable[[], T]) -> tuple[T, bool]:
    """`compute()`'s result, read from the capture entry when an earlier run stored it under
    the same `key`; also says whether it was reused. `entry` None: no cache, just compute."""
    if entry is None:
        return compute(), False
    path = entry / FOLDER / f"{name}-{key_digest(name, key)}"
    found = read_result(path)
    if found is not None:
        return found, True
    value = compute()
    write_result(value, path)
    return value, False


def key_digest(name: str, key: dict[str, Any]) -> str:
    """The hash of everything that made the result `name` with options `key`."""
    text = json.dumps({"format": FORMAT, "name": name, "key": key,
                       "analysis": provenance(analysis_of(name)), "versions": key_versions()},
                      sort_keys=True, default=str)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:24]


def options_key(options: Any) -> dict[str, Any]:
    """An options dataclass's key: its class and every field, so a field added later is in
    the key by itself."""
    return plain(options)


def provenance(analysis: Analysis) -> dict[str, Any]:
    """The analysis's version, and each module's source digest and constants, read now (so a
    constant changed at run time, as a test's monkeypatch does, is a new key)."""
    return {"version": analysis.version, "modules": modules_provenance(analysis.modules)}


def features_digest(features: TokenFeatures | dict[str, np.ndarray]) -> str:
    """A hash of every feature's name and values, so a changed --features file is a new key."""
    values = features.values if isinstance(features, TokenFeatures) else features
    digest = hashlib.sha256()
    for name, flags in values.items():
        digest.update(name.encode("utf-8") + b"\0")
        digest.update(np.packbits(np.asarray(flags, dtype=bool)).tobytes())
    return digest.hexdigest()


def write_result(value: Any, path: Path) -> None:
    """Write `value` as PATH.json and PATH.npz, each renamed into place when complete."""
    arrays: list[np.ndarray] = []
    structure = encode(value, arrays)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        partial = path.with_name(f".{path.name}-{os.getpid()}")
        with open(f"{partial}.npz", "wb") as file:
            np.savez(file, *arrays)
        Path(f"{partial}.json").write_text(json.dumps(structure), encoding="utf-8")
        os.replace(f"{partial}.npz", f"{path}.npz")
        os.replace(f"{partial}.json", f"{path}.json")
    except OSError:
        return  # a full or read-only cache only costs the time to compute again


def read_result(path: Path) -> Any | None:
    """The stored result, or None when there is none or it cannot be read back whole."""
    try:
        structure = json.loads(Path(f"{path}.json").read_text(encoding="utf-8"))
        with np.load(f"{path}.npz", allow_pickle=False) as stored:
            arrays = [stored[f"arr_{i}"] for i in range(len(stored.files))]
        return decode(structure, arrays)
    except (OSError, ValueError, KeyError, TypeError, IndexError, json.JSONDecodeError):
        return None


def encode(value: Any, arrays: list[np.ndarray]) -> Any:
    """A JSON-able structure of `value`; arrays go to `arrays` and are referred to by index."""
    if isinstance(value, np.ndarray):
        arrays.append(value)
        return {"array": len(arrays) - 1}
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        name = type(value).__name__
        if CLASSES.get(name) is not type(value):
            raise TypeError(f"{name} is not a result the analysis cache stores")
        return {"dataclass": name, "fields": {field.name: encode(getattr(value, field.name), arrays)
                                              for field in dataclasses.fields(value)}}
    if isinstance(value, tuple):
        return {"tuple": [encode(item, arrays) for item in value]}
    if isinstance(value, list):
        return {"list": [encode(item, arrays) for item in value]}
    if isinstance(value, dict):
        return {"dict": [[encode(k, arrays), encode(v, arrays)] for k, v in value.items()]}
    if isinstance(value, np.generic):
        return value.item()
    if value is None or isinstance(value, (str, int, float, bool)):
        return value
    raise TypeError(f"cannot store a {type(value).__name__}")


def decode(structure: Any, arrays: list[np.ndarray]) -> Any:
    if not isinstance(structure, dict):
        return structure
    if "array" in structure:
        return arrays[structure["array"]]
    if "dataclass" in structure:
        cls = CLASSES[structure["dataclass"]]
        return cls(**{name: decode(item, arrays) for name, item in structure["fields"].items()})
    if "tuple" in structure:
        return tuple(decode(item, arrays) for item in structure["tuple"])
    if "list" in structure:
        return [decode(item, arrays) for item in structure["list"]]
    if "dict" in structure:
        return {decode(k, arrays): decode(v, arrays) for k, v in structure["dict"]}
    raise ValueError("not a stored result")
