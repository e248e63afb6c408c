"""Versions of reportgen and the libraries that shaped a report, for provenance; and what made
a cached result (library versions, the source and constants of reportgen's own modules), for
the keys of the capture and analysis caches."""

from __future__ import annotations

import dataclasses
import hashlib
import importlib
import re
from functools import cache
from importlib import metadata
from pathlib import Path
from types import FunctionType, ModuleType
from typing import Any

import numpy as np

DISTRIBUTION = "lstm-reportgen"
LIBRARIES = ("torch", "numpy", "scipy", "pandas", "scikit-learn", "openTSNE", "fastcluster",
             "altair", "jinja2", "vl-convert-python")
KEY_LIBRARIES = ("numpy", "scipy", "torch", "openTSNE", "fastcluster", "scikit-learn")
CONSTANT = re.compile(r"[A-Z][A-Z0-9_]*")  # a module constant, by the naming convention


def version_of(distribution: str) -> str:
    try:
        return metadata.version(distribution)
    except metadata.PackageNotFoundError:
        return "not installed"


def reportgen_version() -> str:
    return version_of(DISTRIBUTION)


def library_versions() -> dict[str, str]:
    return {"reportgen": reportgen_version(), **{name: version_of(name) for name in LIBRARIES}}


def modules_provenance(names: tuple[str, ...]) -> dict[str, Any]:
    """Each module's source digest and constants, read now (so a constant changed at run
    time, as a test's monkeypatch does, gives another key)."""
    modules = {}
    for name in names:
        module = importlib.import_module(name)
        modules[name] = {"source": source_sha256(str(module.__file__)),
                         "constants": module_constants(module)}
    return modules


def module_constants(module: ModuleType) -> dict[str, Any]:
    """Every upper-case module-level name whose value is data, in a JSON-able form."""
    found = {}
    for name, value in vars(module).items():
        if CONSTANT.fullmatch(name) and not isinstance(value, (type, ModuleType)):
            found[name] = plain(value)
    return found


def plain(value: Any) -> Any:
    """`value` as JSON can hold it, the same for the same value in every run."""
    if isinstance(value, (tuple, list)):
        return [plain(item) for item in value]
    if isinstance(value, (set, frozenset)):
        return sorted((plain(item) for item in value), key=repr)
    if isinstance(value, dict):
        return sorted(([plain(k), plain(v)] for k, v in value.items()), key=repr)
    if isinstance(value, re.Pattern):
        return {"pattern": value.pattern, "flags": value.flags}
    if isinstance(value, FunctionType):
        return f"{value.__module__}.{value.__qualname__}"
    if isinstance(value, np.generic):
        return value.item()
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {"class": type(value).__name__, **{field.name: plain(getattr(value, field.name))
                                                  for field in dataclasses.fields(value)}}
    if value is None or isinstance(value, (str, int, float, bool)):
        return value
    return repr(value)


@cache
def source_sha256(path: str) -> str:
    try:
        return hashlib.sha256(Path(path).read_bytes()).hexdigest()
    except OSError:
        return "unreadable"


@cache
def key_versions() -> dict[str, str]:
    """reportgen's version and those of the libraries whose arithmetic is in the results."""
    return {"reportgen": reportgen_version(), **{name: version_of(name) for name in KEY_LIBRARIES}}
