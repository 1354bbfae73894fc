"""Records as JSON: an exact round trip of frozen dataclasses, with a schema version.

:class:`JsonRecord` is the base of every result document (profile, sweep, benchmark); the
encoder writes non-finite floats as strings so the JSON stays strict, and the decoder checks
every field's type against the dataclass and names the field that is wrong.
"""

from __future__ import annotations

import json
import logging
import math
import types
import typing
from dataclasses import MISSING, fields, is_dataclass
from pathlib import Path
from typing import Any

from pyinfer.errors import InvalidArgumentError

logger = logging.getLogger(__name__)

#: Version of the JSON layout: the major number changes when a field is removed or changes
#: meaning (older pyinfer refuses such files), the minor when fields are added (ignored by
#: older readers).
SCHEMA_VERSION = "1.3"

R = typing.TypeVar("R", bound="JsonRecord")


class JsonRecord:
    """JSON for a frozen dataclass of plain fields: an exact round trip, typed errors.

    A subclass names itself in messages (``JSON_WHAT``) and at the root of a field path
    (``JSON_ROOT``), may refuse documents of another kind or schema (``_check_json``) and may add
    derived keys in ``to_dict`` (ignored when reading). Non-finite floats are written as the
    strings ``"inf"``, ``"-inf"`` and ``"nan"``, so the JSON stays strict.
    """

    JSON_WHAT: typing.ClassVar[str] = "record"
    JSON_ROOT: typing.ClassVar[str] = "record"

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict of every field."""
        encoded = encode_json(self)
        assert isinstance(encoded, dict)
        return encoded

    def to_json(self, *, indent: int | None = 2) -> str:
        """The record as JSON (strict: no NaN or Infinity literals); an exact round trip."""
        return json.dumps(self.to_dict(), indent=indent, allow_nan=False)

    @classmethod
    def _check_json(cls, data: Any) -> None:
        """Refuses a document of another kind or schema (by default, none is refused)."""

    @classmethod
    def from_dict(cls: type[R], data: Any) -> R:
        """Rebuilds a record from :meth:`to_dict`'s output.

        Raises:
            InvalidArgumentError: If it is of another kind or schema, or a field is missing or
                of the wrong type (the message names the field).
        """
        cls._check_json(data)
        decoded = decode_json(cls, data, cls.JSON_ROOT)
        assert isinstance(decoded, cls)
        return decoded

    @classmethod
    def from_json(cls: type[R], text: str | bytes) -> R:
        """Parses :meth:`to_json`'s output.

        Raises:
            InvalidArgumentError: If the text is not JSON, or as for :meth:`from_dict`.
        """
        try:
            data = json.loads(text)
        except (ValueError, RecursionError) as exc:  # bad JSON, bad UTF-8, absurd nesting
            raise InvalidArgumentError(f"{cls.JSON_WHAT} is not valid JSON: {exc}") from exc
        return cls.from_dict(data)

    @classmethod
    def load(cls: type[R], path: str | Path) -> R:
        """Reads a record saved as JSON.

        Raises:
            InvalidArgumentError: If the file cannot be read, or as for :meth:`from_json`; the
                message names the file.
        """
        p = Path(path)
        try:
            text = p.read_bytes()
        except OSError as exc:
            raise InvalidArgumentError(
                f"cannot read the {cls.JSON_WHAT} {p}: {exc.strerror or exc}"
            ) from exc
        try:
            return cls.from_json(text)
        except InvalidArgumentError as exc:
            raise InvalidArgumentError(f"{p}: {exc}") from exc


_NON_FINITE = {"inf": math.inf, "-inf": -math.inf, "nan": math.nan}


def check_schema(
    data: Any, what: str, rerun: str, *, ours: str = SCHEMA_VERSION, kind: str | None = None
) -> None:
    """Refuses a JSON document of another kind or major schema version.

    It must be an object, carry ``kind`` in its ``"kind"`` key when ``kind`` is given, and have
    the major version of ``ours``.
    """
    if not isinstance(data, dict):
        raise InvalidArgumentError(f"a {what} must be a JSON object, not {type(data).__name__}")
    if kind is not None and data.get("kind") != kind:
        raise InvalidArgumentError(f"not a pyinfer {what}: 'kind' is not {kind!r}")
    version = data.get("schema_version")
    if not isinstance(version, str) or not version.split(".")[0].isdigit():
        raise InvalidArgumentError(f"not a pyinfer {what}: schema_version is {version!r}")
    major = int(version.split(".")[0])
    ours_major = int(ours.split(".", maxsplit=1)[0])
    if major != ours_major:
        raise InvalidArgumentError(
            f"{what} schema {version} is "
            + ("newer" if major > ours_major else "older")
            + f" than this pyinfer reads ({ours_major}.x); "
            + ("upgrade pyinfer to read it" if major > ours_major else rerun)
        )


def encode_json(value: Any) -> Any:
    """A JSON-ready copy of ``value``: dataclasses as dicts, non-finite floats as strings."""
    if is_dataclass(value) and not isinstance(value, type):
        return {f.name: encode_json(getattr(value, f.name)) for f in fields(value)}
    if isinstance(value, float):
        if math.isfinite(value):
            return value
        return "nan" if math.isnan(value) else ("inf" if value > 0 else "-inf")
    if isinstance(value, dict):
        return {str(k): encode_json(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [encode_json(v) for v in value]
    return value


def decode_json(tp: Any, value: Any, where: str) -> Any:
    """``value`` (parsed JSON) as type ``tp``; ``where`` names the field path in errors.

    Raises:
        InvalidArgumentError: If a field is missing or of the wrong type.
    """
    origin = typing.get_origin(tp)
    if tp is Any:
        return value
    if origin in (typing.Union, types.UnionType):
        args = typing.get_args(tp)
        if value is None and type(None) in args:
            return None
        inner = [a for a in args if a is not type(None)]
        return decode_json(inner[0], value, where)
    if isinstance(tp, type) and is_dataclass(tp):
        if not isinstance(value, dict):
            raise InvalidArgumentError(f"{where}: expected an object, got {value!r:.60}")
        hints = typing.get_type_hints(tp)
        kwargs = {}
        for f in fields(tp):
            if f.name not in value:
                if f.default is not MISSING or f.default_factory is not MISSING:
                    continue  # a field with a default may be absent (added in a minor version)
                raise InvalidArgumentError(f"{where}: field '{f.name}' is missing")
            kwargs[f.name] = decode_json(hints[f.name], value[f.name], f"{where}.{f.name}")
        unknown = set(value) - {f.name for f in fields(tp)}
        if unknown:
            logger.debug("%s: ignoring fields of a newer minor version: %s", where, unknown)
        return tp(**kwargs)
    if origin is tuple:
        if not isinstance(value, list):
            raise InvalidArgumentError(f"{where}: expected a list, got {value!r:.60}")
        (item,) = typing.get_args(tp)[:1]
        return tuple(decode_json(item, v, f"{where}[{i}]") for i, v in enumerate(value))
    if origin is dict:
        if not isinstance(value, dict):
            raise InvalidArgumentError(f"{where}: expected an object, got {value!r:.60}")
        _, item = typing.get_args(tp)
        return {k: decode_json(item, v, f"{where}.{k}") for k, v in value.items()}
    if tp is float:
        if isinstance(value, str) and value in _NON_FINITE:
            return _NON_FINITE[value]
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
        raise InvalidArgumentError(f"{where}: expected a number, got {value!r:.60}")
    if tp is bool:
        if not isinstance(value, bool):
            raise InvalidArgumentError(f"{where}: expected true or false, got {value!r:.60}")
        return value
    if tp is int:
        if not isinstance(value, int) or isinstance(value, bool):
            raise InvalidArgumentError(f"{where}: expected an integer, got {value!r:.60}")
        return value
    if tp is str:
        if not isinstance(value, str):
            raise InvalidArgumentError(f"{where}: expected a string, got {value!r:.60}")
        return value
    raise AssertionError(f"unhandled type {tp!r} at {where}")  # pragma: no cover
