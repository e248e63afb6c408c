"""Whole-module pickles in the legacy format of PyTorch before 1.6 (not a zip archive), such as
colorlessgreenRNNs' 2x650 model, read through the same allowlist as every other checkpoint.

The legacy format records each module class with its source code, as a persistent id beside
the class's name. torch's safe unpickler (`weights_only=True`) refuses every persistent id that
is not a storage, so it cannot read these files at all. Here torch's own legacy reader runs with
a standard `pickle.Unpickler` whose `find_class` returns only what the safe unpickler would: the
globals torch allows and the stand-ins `reportgen.inputs.checkpoint` names. Any other global is
refused with torch's wording, so the caller reports it as it reports any unsupported class; the
recorded source is compared by torch for a warning, never run.
"""

from __future__ import annotations

import _compat_pickle
import pickle
import types
from pathlib import Path
from typing import Any

import torch
from torch._weights_only_unpickler import _get_allowed_globals

REFUSED = "Only persistent_load of storage is allowed"  # torch's safe unpickler, on these files


def allowed_names(entries: list[Any]) -> dict[str, Any]:
    """"module.name" -> object, for torch's allowed globals and `entries` (classes, or
    (object, "module.name") pairs as `torch.serialization.safe_globals` takes them)."""
    names = dict(_get_allowed_globals())
    for entry in entries:
        if isinstance(entry, tuple):
            names[entry[1]] = entry[0]
        else:
            names[f"{entry.__module__}.{entry.__qualname__}"] = entry
    return names


def load_legacy_pickle(path: Path, entries: list[Any]) -> Any:
    """torch.load of a legacy-format file with only `entries` and torch's allowed globals."""
    allowed = allowed_names(entries)

    class AllowlistUnpickler(pickle.Unpickler):
        def find_class(self, module: str, name: str) -> Any:
            # Python 2's names, as protocol-2 pickles write them (`__builtin__.set`)
            module, name = _compat_pickle.NAME_MAPPING.get((module, name), (module, name))
            module = _compat_pickle.IMPORT_MAPPING.get(module, module)
            found = allowed.get(f"{module}.{name}")
            if found is None:
                raise pickle.UnpicklingError(f"Unsupported global: GLOBAL {module}.{name} was "
                                             "not an allowed global")
            return found

    def load(file: Any, **options: Any) -> Any:
        return AllowlistUnpickler(file, **options).load()

    module = types.SimpleNamespace(Unpickler=AllowlistUnpickler, load=load,
                                   __name__="reportgen.inputs.legacy_pickle")
    return torch.load(path, map_location="cpu", weights_only=False, pickle_module=module)
