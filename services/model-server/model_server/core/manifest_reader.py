"""Typed reads of parsed JSON for ``core.manifest``, with errors that name the key path.

``Reader`` wraps one JSON object at a path (``features[2]``). Each read checks one key's type
and marks the key as read; ``done()`` then refuses any key nobody read, so a misspelt optional
key (``"treshold"``) is an error instead of a silently ignored setting.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from types import MappingProxyType
from typing import TypeAlias, TypeVar

JSONValue: TypeAlias = "str | int | float | bool | list[JSONValue] | dict[str, JSONValue] | None"
T = TypeVar("T")
S = TypeVar("S", bound=str)


class ManifestError(ValueError):
    """A manifest that does not follow the format.

    Attributes:
        path: The key path of the problem (``features[2].min``), ``""`` for the whole file.
        reason: What is wrong there.
    """

    def __init__(self, path: str, reason: str) -> None:
        super().__init__(f"{path}: {reason}" if path else reason)
        self.path = path
        self.reason = reason


class Reader:
    """Typed, key-tracking access to one JSON object found at ``path``."""

    def __init__(self, data: object, path: str) -> None:
        if not isinstance(data, dict):
            raise ManifestError(path, "expected an object")
        self._data: dict[str, object] = data
        self._path = path
        self._read: set[str] = set()

    def at(self, key: str) -> str:
        """The path of ``key`` in this object."""
        return f"{self._path}.{key}" if self._path else key

    def get(self, key: str) -> object:
        """The raw value of ``key`` (``None`` if absent), marked as read."""
        self._read.add(key)
        return self._data.get(key)

    def _value(self, key: str) -> object:
        if key not in self._data:
            raise ManifestError(self.at(key), "missing")
        return self.get(key)

    def opt(self, key: str, read: Callable[[str], T]) -> T | None:
        """``read(key)`` if the key is present, else ``None``. ``null`` is not absence: a
        present key is read and must have the type ``read`` expects."""
        self._read.add(key)
        return read(key) if key in self._data else None

    def done(self) -> None:
        """Refuse keys that no read asked for."""
        unknown = [k for k in self._data if k not in self._read]
        if unknown:
            raise ManifestError(self.at(unknown[0]), "unknown key")

    # Scalars ------------------------------------------------------------------------------

    def string(self, key: str) -> str:
        """A string."""
        return _string(self._value(key), self.at(key))

    def choice(self, key: str, options: Sequence[S]) -> S:
        """A string that is one of ``options``."""
        value = self._value(key)
        for option in options:
            if value == option:
                return option
        raise ManifestError(self.at(key), f"expected one of {list(options)}, got {value!r}")

    def number(self, key: str) -> float:
        """A finite number; an int stays an int (the file's spelling round-trips)."""
        return _number(self._value(key), self.at(key))

    def count(self, key: str) -> int:
        """A non-negative integer."""
        value = self._value(key)
        if type(value) is not int or value < 0:
            raise ManifestError(self.at(key), "expected a non-negative integer")
        return value

    def label_or_number(self, key: str) -> str | float:
        """A string (a class answer) or a finite number (a regression value)."""
        value = self._value(key)
        return value if isinstance(value, str) else _number(value, self.at(key))

    # Containers ---------------------------------------------------------------------------

    def obj(self, key: str) -> Reader:
        """The nested object at ``key``."""
        return Reader(self._value(key), self.at(key))

    def items(self, key: str) -> list[Reader]:
        """A list of objects, one reader each (``key[i]``)."""
        return [Reader(v, f"{self.at(key)}[{i}]") for i, v in enumerate(self._list(key))]

    def string_list(self, key: str) -> tuple[str, ...]:
        """A list of strings."""
        return tuple(_string(v, f"{self.at(key)}[{i}]") for i, v in enumerate(self._list(key)))

    def number_list(self, key: str) -> tuple[float, ...]:
        """A list of finite numbers."""
        return tuple(_number(v, f"{self.at(key)}[{i}]") for i, v in enumerate(self._list(key)))

    def strings(self, key: str) -> Mapping[str, str]:
        """An object of strings, read-only, in file order."""
        return self._mapping(key, _string)

    def numbers(self, key: str) -> Mapping[str, float]:
        """An object of finite numbers, read-only, in file order."""
        return self._mapping(key, _number)

    def scalars(self, key: str) -> Mapping[str, float | str]:
        """An object of strings and finite numbers (a row of feature values)."""

        def scalar(value: object, path: str) -> float | str:
            return value if isinstance(value, str) else _number(value, path)

        return self._mapping(key, scalar)

    def json_object(self, key: str) -> Mapping[str, JSONValue]:
        """An object of any JSON values (recorded metadata such as hyperparameters)."""
        return self._mapping(key, _json)

    def _list(self, key: str) -> list[object]:
        value = self._value(key)
        if not isinstance(value, list):
            raise ManifestError(self.at(key), "expected a list")
        return value

    def _mapping(self, key: str, read: Callable[[object, str], T]) -> Mapping[str, T]:
        value = self._value(key)
        if not isinstance(value, dict):
            raise ManifestError(self.at(key), "expected an object")
        return MappingProxyType({k: read(v, f"{self.at(key)}.{k}") for k, v in value.items()})


def _string(value: object, path: str) -> str:
    if not isinstance(value, str):
        raise ManifestError(path, f"expected a string, got {_kind(value)}")
    return value


def _number(value: object, path: str) -> float:
    # bool is an int subclass: true/false are not numbers here.
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ManifestError(path, f"expected a number, got {_kind(value)}")
    # NaN and infinities are not JSON, and orjson would serve them as null.
    if not math.isfinite(value):
        raise ManifestError(path, f"expected a finite number, got {value}")
    return value


def _json(value: object, path: str) -> JSONValue:
    if value is None or isinstance(value, str | bool):
        return value
    if isinstance(value, int | float):
        return _number(value, path)
    if isinstance(value, list):
        return [_json(v, f"{path}[{i}]") for i, v in enumerate(value)]
    if isinstance(value, dict):
        return {str(k): _json(v, f"{path}.{k}") for k, v in value.items()}
    raise ManifestError(path, f"expected a JSON value, got {_kind(value)}")


def _kind(value: object) -> str:
    """A JSON name for a value's type, for messages."""
    names = {bool: "a boolean", str: "a string", list: "a list", dict: "an object"}
    if value is None:
        return "null"
    if isinstance(value, int | float) and not isinstance(value, bool):
        return "a number"
    return names.get(type(value), type(value).__name__)
