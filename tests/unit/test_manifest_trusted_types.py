"""Manifest format 2: the operator's explicitly trusted types (issue 10, packaging).

Format 2 adds one optional key, ``trusted_types``; format 1 files are still read unchanged.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from model_server.core.manifest import (
    MANIFEST_VERSION,
    SUPPORTED_VERSIONS,
    Manifest,
    ManifestError,
)

from tests.unit.test_manifest import multiclass


def v2(**changes: Any) -> dict[str, Any]:
    data = {**multiclass(), "manifest_version": 2}
    # trusted_types sits between artifact and libraries, in the file as in the class.
    out: dict[str, Any] = {}
    for key, value in data.items():
        out[key] = value
        if key == "artifact":
            out["trusted_types"] = ["mypkg.scaling.LogScaler"]
    out.update(changes)
    return out


def test_the_packager_writes_format_2_and_format_1_is_still_read() -> None:
    assert MANIFEST_VERSION == 2
    assert set(SUPPORTED_VERSIONS) == {1, 2}
    assert Manifest.from_dict(multiclass()).manifest_version == 1


def test_trusted_types_round_trip_in_file_order() -> None:
    data = v2()
    manifest = Manifest.from_dict(data)
    assert manifest.trusted_types == ("mypkg.scaling.LogScaler",)
    assert json.dumps(manifest.to_dict()) == json.dumps(data)


def test_without_trusted_types_the_key_is_not_written() -> None:
    data = v2()
    del data["trusted_types"]
    assert "trusted_types" not in Manifest.from_dict(data).to_dict()


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({**v2(), "manifest_version": 1}, r"^trusted_types: needs manifest_version 2$"),
        (v2(trusted_types=[]), r"^trusted_types: expected at least one type"),
        (v2(trusted_types=["a.B", "a.B"]), r"^trusted_types: types repeat$"),
        (v2(trusted_types=["LogScaler"]), r"^trusted_types\[0\]: 'LogScaler' is not a dotted"),
        (v2(trusted_types=["a.B; rm"]), r"^trusted_types\[0\]: .* is not a dotted type name"),
        (v2(trusted_types="a.B"), r"^trusted_types: expected a list$"),
    ],
)
def test_invalid_trusted_types_are_refused_naming_the_key(
    data: dict[str, Any], message: str
) -> None:
    with pytest.raises(ManifestError, match=message):
        Manifest.from_dict(data)
