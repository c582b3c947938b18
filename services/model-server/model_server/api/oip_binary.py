"""The binary tensor data extension of the Open Inference Protocol (Triton, KServe).

A request with an ``Inference-Header-Content-Length: N`` header carries the JSON inference
request in its first N bytes and the raw data of every input whose
``parameters.binary_data_size`` is set after it, one input after another in the order of
``inputs``. Fixed-size types are little-endian arrays in row-major order; each ``BYTES``
element is a 4-byte little-endian length followed by that many bytes. Responses use the same
framing for the outputs asked for in binary (``binary_data_output`` for all, or
``binary_data`` per output).

Reference: https://github.com/triton-inference-server/server/blob/main/docs/protocol/extension_binary_data.md
"""

from __future__ import annotations

import struct
from typing import Any, Final

import numpy as np
import orjson

from model_server.core.errors import RequestError

HEADER_LENGTH: Final = "Inference-Header-Content-Length"

#: numpy dtypes of the fixed-size OIP datatypes, little-endian as the extension requires.
DTYPES: Final[dict[str, np.dtype[Any]]] = {
    name: np.dtype(code)
    for name, code in {
        "BOOL": "?",
        "INT8": "<i1",
        "INT16": "<i2",
        "INT32": "<i4",
        "INT64": "<i8",
        "UINT8": "<u1",
        "UINT16": "<u2",
        "UINT32": "<u4",
        "UINT64": "<u8",
        "FP16": "<f2",
        "FP32": "<f4",
        "FP64": "<f8",
    }.items()
}


def split_request(body: bytes, header_length: str) -> tuple[Any, memoryview]:
    """The JSON inference request and the binary section of a framed body."""
    if not header_length.isdigit() or int(header_length) > len(body):
        raise RequestError(
            "malformed_body",
            f"{HEADER_LENGTH} must be the byte length of the JSON header, at most the body's "
            f"{len(body)} bytes; got {header_length[:20]!r}",
            field=HEADER_LENGTH,
        )
    n = int(header_length)
    try:
        header = orjson.loads(body[:n])
    except orjson.JSONDecodeError as exc:
        raise RequestError(
            "malformed_body", f"the JSON header is not valid JSON: {exc}", field=HEADER_LENGTH
        ) from None
    return header, memoryview(body)[n:]


def attach_binary_inputs(inputs: Any, data: memoryview) -> None:
    """Give every input with ``binary_data_size`` its values, decoded from ``data``, in place.

    The values replace the input's ``data`` as a flat numpy array; inputs without the
    parameter keep their JSON ``data``. Every byte of ``data`` must belong to an input.
    """
    if type(inputs) is not list:
        return  # the tensor parser names the problem
    offset = 0
    for i, spec in enumerate(inputs):
        params = spec.get("parameters") if type(spec) is dict else None
        if type(params) is not dict or "binary_data_size" not in params:
            continue
        name = spec.get("name") if type(spec.get("name")) is str else f"inputs[{i}]"
        size = params["binary_data_size"]
        if type(size) is not int or size < 0 or offset + size > len(data):
            raise RequestError(
                "malformed_body",
                f"tensor {name!r}: binary_data_size must be a byte count within the "
                f"{len(data) - offset} binary bytes left",
                field=name,
            )
        if "data" in spec:
            raise RequestError(
                "malformed_body",
                f"tensor {name!r} has both data and binary_data_size",
                field=name,
            )
        spec["data"] = _decode(spec.get("datatype"), data[offset : offset + size], name)
        offset += size
    if offset != len(data):
        raise RequestError(
            "malformed_body",
            f"{len(data) - offset} bytes of binary data belong to no input",
            field=HEADER_LENGTH,
        )


def _decode(datatype: Any, raw: memoryview, name: str) -> np.ndarray:
    if datatype == "BYTES":
        return np.array(_split_bytes(raw, name), dtype=object)
    dtype = DTYPES.get(datatype) if type(datatype) is str else None
    if dtype is None:
        raise RequestError(
            "malformed_body",
            f"tensor {name!r}: datatype {datatype!r} has no binary form",
            field=name,
        )
    if len(raw) % dtype.itemsize:
        raise RequestError(
            "malformed_body",
            f"tensor {name!r}: {len(raw)} bytes is not a whole number of {datatype} values",
            field=name,
        )
    return np.frombuffer(raw, dtype=dtype)


def _split_bytes(raw: memoryview, name: str) -> list[str]:
    items: list[str] = []
    offset = 0
    while offset < len(raw):
        if offset + 4 > len(raw):
            raise RequestError(
                "malformed_body", f"tensor {name!r}: truncated BYTES element", field=name
            )
        (n,) = struct.unpack_from("<I", raw, offset)
        offset += 4
        if offset + n > len(raw):
            raise RequestError(
                "malformed_body", f"tensor {name!r}: truncated BYTES element", field=name
            )
        try:
            items.append(bytes(raw[offset : offset + n]).decode())
        except UnicodeDecodeError:
            raise RequestError(
                "malformed_body", f"tensor {name!r}: a BYTES element is not UTF-8", field=name
            ) from None
        offset += n
    return items


def encode(datatype: str, values: Any) -> bytes:
    """The binary form of an output tensor's flat ``values``."""
    if datatype == "BYTES":
        parts = []
        for v in values:
            b = str(v).encode()
            parts.append(struct.pack("<I", len(b)))
            parts.append(b)
        return b"".join(parts)
    return np.ascontiguousarray(values, dtype=DTYPES[datatype]).tobytes()


def frame_response(body: dict[str, Any], binary_outputs: set[str]) -> tuple[bytes, int | None]:
    """Serialise an inference response; outputs named in ``binary_outputs`` go binary.

    Returns the body and the JSON header's length (None when nothing is binary, and the
    body is plain JSON).
    """
    if not binary_outputs:
        return orjson.dumps(body, option=orjson.OPT_SERIALIZE_NUMPY), None
    chunks: list[bytes] = []
    for out in body["outputs"]:
        if out["name"] in binary_outputs:
            raw = encode(out["datatype"], out.pop("data"))
            out.setdefault("parameters", {})["binary_data_size"] = len(raw)
            chunks.append(raw)
    header = orjson.dumps(body, option=orjson.OPT_SERIALIZE_NUMPY)
    return header + b"".join(chunks), len(header)
