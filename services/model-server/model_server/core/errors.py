"""The one exception type for anything wrong with a request.

Every adapter turns a ``RequestError`` into the same JSON body,
``{"error": {"code", "message", "field"?}}``, with ``status`` as the HTTP code. ``code`` is
also the ``reason`` label of ``modelfleet_errors_total``, so the set of codes is bounded and
listed here once.
"""

from __future__ import annotations

from typing import Final

#: Every error code and the HTTP status it maps to. The keys are the complete, bounded set of
#: ``reason`` label values of ``modelfleet_errors_total``; add new codes here only.
STATUS_BY_CODE: Final[dict[str, int]] = {
    "missing_feature": 422,
    "unknown_feature": 422,
    "non_numeric": 422,
    "non_finite": 422,
    "out_of_range": 422,
    "wrong_width": 422,
    "empty_batch": 422,
    "too_many_rows": 413,
    "malformed_body": 400,
    "unsupported_media_type": 415,
    "body_too_large": 413,
    "unknown_model": 404,
    "not_found": 404,
    "method_not_allowed": 405,
    # A model whose bundle failed verification or loading: the server is not ready.
    "model_unavailable": 503,
    "internal": 500,
}

ERROR_CODES: Final[tuple[str, ...]] = tuple(STATUS_BY_CODE)


class RequestError(Exception):
    """A request the server refuses, with a machine-readable code.

    Args:
        code: One of ``ERROR_CODES``; selects the HTTP status.
        message: A sentence for humans naming what is wrong and what is expected.
        field: The offending feature or body field, when there is one.
    """

    __slots__ = ("code", "field", "message", "status")

    def __init__(self, code: str, message: str, field: str | None = None) -> None:
        if code not in STATUS_BY_CODE:  # a programming error, not a user error
            raise ValueError(f"unknown error code {code!r}")
        super().__init__(message)
        self.code = code
        self.message = message
        self.field = field
        self.status = STATUS_BY_CODE[code]

    def to_dict(self) -> dict[str, object]:
        """The ``{"error": {...}}`` body shared by every API surface."""
        body: dict[str, object] = {"code": self.code, "message": self.message}
        if self.field is not None:
            body["field"] = self.field
        return {"error": body}

    def to_message_dict(self) -> dict[str, object]:
        """``{"error": "<code>: <message>"}``: the form the OIP v2 and KServe V1 specs fix.

        The field is named in the string when the message does not already name it.
        """
        text = f"{self.code}: {self.message}"
        if self.field is not None and self.field not in self.message:
            text += f" (field {self.field!r})"
        return {"error": text}

    def __repr__(self) -> str:
        return f"RequestError({self.code!r}, {self.message!r}, field={self.field!r})"
