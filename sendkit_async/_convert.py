"""The one cattrs converter between the models and the wire.

Attribute names map to camelCase (``ai_tag`` <-> ``aiTag``); a field whose
metadata names a ``wire`` key uses that instead (``id`` <-> ``_id``), and one
marked ``converted`` is left to its attrs converter. Keys the
server adds later are ignored, so a new response field never breaks a client.
"""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any, TypeVar

import attrs
import cattrs
from cattrs.gen import make_dict_structure_fn, make_dict_unstructure_fn, override

from ._errors import UnexpectedResponseError
from ._requests import REQUESTS

__all__ = ["converter", "envelope_data", "parse_datetime", "structure", "to_dict", "unstructure"]

T = TypeVar("T")

converter = cattrs.Converter(forbid_extra_keys=False)


def _wire_name(attribute: attrs.Attribute[Any]) -> str:
    explicit = attribute.metadata.get("wire")
    if explicit is not None:
        return str(explicit)
    head, *rest = attribute.name.split("_")
    return head + "".join(part.capitalize() for part in rest)


def _passthrough(value: object, _type: object) -> object:
    return value


def _renames(cls: type[Any]) -> dict[str, Any]:
    # A field whose metadata says ``converted`` is handed over as sent: its attrs
    # converter decides (a reason that may be a known enum member or new text).
    # A ``local`` field (a result's response) is not on the wire at all.
    return {
        a.name: override(
            rename=_wire_name(a),
            omit=bool(a.metadata.get("local")),
            struct_hook=_passthrough if a.metadata.get("converted") else None,
        )
        for a in attrs.fields(cls)
    }


def _omitting_local(cls: type[Any]) -> dict[str, Any]:
    return {a.name: override(omit=True) for a in attrs.fields(cls) if a.metadata.get("local")}


converter.register_structure_hook_factory(
    attrs.has,
    lambda cls: make_dict_structure_fn(cls, converter, **_renames(cls)),
)
converter.register_unstructure_hook_factory(
    attrs.has,
    lambda cls: make_dict_unstructure_fn(cls, converter, **_renames(cls)),
)
# Request bodies leave out what was not given (registered last, so it wins for them).
converter.register_unstructure_hook_factory(
    lambda cls: cls in REQUESTS,
    lambda cls: make_dict_unstructure_fn(cls, converter, _cattrs_omit_if_default=True, **_renames(cls)),
)


def parse_datetime(value: object, _type: object = None) -> datetime:
    """Parse an ISO 8601 timestamp to an aware datetime (naive ones are UTC)."""
    if isinstance(value, datetime):
        parsed = value
    elif isinstance(value, str):
        text = value.strip()
        if text.endswith(("Z", "z")):
            text = text[:-1] + "+00:00"
        parsed = datetime.fromisoformat(text)
    else:
        raise TypeError(f"expected an ISO 8601 string, got {type(value).__name__}")
    return parsed if parsed.tzinfo is not None else parsed.replace(tzinfo=timezone.utc)


converter.register_structure_hook(datetime, parse_datetime)


def _iso(value: datetime) -> str:
    return value.isoformat().replace("+00:00", "Z")


converter.register_unstructure_hook(datetime, _iso)

# Attribute names as they are, for to_dict(case="snake").
_snake = cattrs.Converter()
_snake.register_unstructure_hook_factory(
    attrs.has, lambda cls: make_dict_unstructure_fn(cls, _snake, **_omitting_local(cls))
)
_snake.register_unstructure_hook(datetime, _iso)


def to_dict(obj: object, *, camel: bool) -> dict[str, Any]:
    """A model as JSON-ready data: the API's keys (``camel``) or its attribute names."""
    data = (converter if camel else _snake).unstructure(obj)
    return _listed(data)  # type: ignore[no-any-return]


def _listed(data: Any) -> Any:
    if isinstance(data, dict):
        return {key: _listed(value) for key, value in data.items()}
    if isinstance(data, (list, tuple)):
        return [_listed(value) for value in data]
    return data


def structure(data: object, cls: type[T], *, status: int = 200) -> T:
    """Structure wire data, turning any mismatch into :class:`UnexpectedResponseError`."""
    try:
        return converter.structure(data, cls)
    except (cattrs.BaseValidationError, ValueError, TypeError, KeyError) as exc:
        detail = (
            "; ".join(cattrs.transform_error(exc))
            if isinstance(exc, cattrs.BaseValidationError)
            else str(exc)
        )
        raise UnexpectedResponseError(
            f"the API answered with data that is not a {cls.__name__}: {detail}",
            status=status,
            body=repr(data)[:500],
        ) from exc


def unstructure(obj: object) -> Any:
    """Wire form of a model (camelCase keys, enum values, ISO timestamps)."""
    return converter.unstructure(obj)


def structure_answer(body: object, cls: type[T], response: Any) -> T:
    """The ``data`` of an answer as ``cls``, keeping the answer's ``response`` (a result model)."""
    return attrs.evolve(structure(envelope_data(body), cls), response=response)  # type: ignore[misc]


def envelope_data(body: object) -> Any:
    """The ``data`` member of a ``{"success": true, "data": ...}`` answer.

    Raises:
        UnexpectedResponseError: the body is not that envelope, or says
            ``"success": false`` with a 2xx status.
    """
    if isinstance(body, dict) and "data" in body and body.get("success", True) is not False:
        return body["data"]
    raise UnexpectedResponseError(
        "the API answered 2xx without the documented {'success': true, 'data': ...} envelope",
        status=200,
        body=repr(body)[:500],
    )
