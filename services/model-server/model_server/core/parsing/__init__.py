"""Turn request payloads into a float64 matrix in the model's feature order.

Every parser here either returns a C-contiguous ``(n_rows, n_features)`` float64 array that
has passed ``validate`` (finite, inside the manifest ranges) or raises ``RequestError``.
No other exception may escape for any input: the hypothesis tests in
``tests/unit/test_parsing_properties.py`` hold the package to that.

One module per input format: ``json_body`` (records, rows, columns and the MLflow envelopes),
``csv_body``, ``query`` (plumber's query string); ``values`` holds what they share (number
grammar, name checks, conversion, ``validate``). The fast paths of every module sit behind
one switch, ``fast.ENABLED``. Protocol-specific inputs are decoded in their adapters (OIP v2
tensors: ``api/oip_tensors.py``) on top of ``values``.

No pandas: building a DataFrame per request costs far more than the prediction itself.
"""

from model_server.core.parsing.csv_body import parse_csv
from model_server.core.parsing.json_body import (
    PAYLOAD_KEYS,
    decode_json,
    parse_batch,
    parse_columns,
    parse_json_body,
    parse_json_payload,
    parse_records,
    parse_rows,
)
from model_server.core.parsing.query import parse_query
from model_server.core.parsing.values import validate

__all__ = [
    "PAYLOAD_KEYS",
    "decode_json",
    "parse_batch",
    "parse_columns",
    "parse_csv",
    "parse_json_body",
    "parse_json_payload",
    "parse_query",
    "parse_records",
    "parse_rows",
    "validate",
]
