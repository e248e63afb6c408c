"""Versions of reportgen and the libraries that shaped a report, for provenance."""

from __future__ import annotations

from importlib import metadata

DISTRIBUTION = "lstm-reportgen"
LIBRARIES = ("torch", "numpy", "scipy", "pandas", "scikit-learn", "openTSNE", "fastcluster",
             "altair", "jinja2", "vl-convert-python")


def version_of(distribution: str) -> str:
    try:
        return metadata.version(distribution)
    except metadata.PackageNotFoundError:
        return "not installed"


def reportgen_version() -> str:
    return version_of(DISTRIBUTION)


def library_versions() -> dict[str, str]:
    return {"reportgen": reportgen_version(), **{name: version_of(name) for name in LIBRARIES}}
