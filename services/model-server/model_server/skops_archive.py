"""Deterministic skops archives: the same estimator gives the same bytes on every run.

Used by training (``model_server.train``) so bundles, and the sha256 in their manifests, are
byte-for-byte reproducible.
"""

from __future__ import annotations

import io
import json
import zipfile
from typing import Any

import skops.io as sio


def deterministic_skops(model: Any) -> bytes:
    """Serialise with skops, then strip everything that varies between runs.

    skops writes zip entries with the current time, names numpy payloads after ``id(obj)``
    (a memory address) and records those ids as ``__id__`` in schema.json. Renumbering the
    ids in order of first appearance and writing a fresh zip with a fixed timestamp keeps the
    archive loadable (ids only need to be consistent within the file) and makes it identical
    across runs.
    """
    buffer = io.BytesIO()
    sio.dump(model, buffer)
    with zipfile.ZipFile(io.BytesIO(buffer.getvalue())) as src:
        entries = {name: src.read(name) for name in src.namelist()}
    schema = json.loads(entries.pop("schema.json"))
    mapping: dict[str, str] = {}

    def renumber(old: str) -> str:
        return mapping.setdefault(old, str(len(mapping) + 1))

    def walk(node: Any) -> Any:
        if isinstance(node, dict):
            out: dict[str, Any] = {}
            for key, value in node.items():
                if key == "__id__":
                    out[key] = int(renumber(str(value)))
                elif key == "file" and isinstance(value, str):
                    stem, _, ext = value.rpartition(".")
                    out[key] = f"{renumber(stem)}.{ext}"
                else:
                    out[key] = walk(value)
            return out
        if isinstance(node, list):
            return [walk(v) for v in node]
        return node

    schema = walk(schema)
    renamed = {}
    for name, data in entries.items():
        stem, _, ext = name.rpartition(".")
        if stem not in mapping:
            raise RuntimeError(f"skops archive entry {name} is not referenced by schema.json")
        renamed[f"{mapping[stem]}.{ext}"] = data
    renamed["schema.json"] = json.dumps(schema, indent=2).encode()
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", compression=zipfile.ZIP_STORED) as dst:
        for name in sorted(renamed):
            info = zipfile.ZipInfo(name, date_time=(1980, 1, 1, 0, 0, 0))
            info.external_attr = 0o644 << 16
            dst.writestr(info, renamed[name])
    return out.getvalue()
