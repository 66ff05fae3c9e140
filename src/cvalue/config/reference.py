"""The reference of the configuration file: every key, its type, default and description."""

from __future__ import annotations

import datetime as dt
import typing
from pathlib import Path
from typing import Literal

from pydantic import BaseModel
from pydantic.fields import FieldInfo

from cvalue.config.schema import JobConfig, _flat_arguments, _is_model
from cvalue.config.values import _duration_text
from cvalue.units import Duration

__all__ = ["config_reference"]


_TYPE_NAMES: dict[object, str] = {
    str: "string", int: "integer", float: "number", bool: "boolean", dt.date: "date",
    Duration: 'duration (`"3y"`)', Path: "path",
}  # fmt: skip


def _type_name(annotation: object) -> str:
    names = []
    for member in _flat_arguments(annotation):
        origin, arguments = typing.get_origin(member), typing.get_args(member)
        if origin is Literal:
            names.append(" or ".join(f"`{_toml(value)}`" for value in arguments))
        elif origin is list:
            names.append(f"array of {_type_name(arguments[0])}")
        elif origin is dict:
            names.append(f"table of {_type_name(arguments[1])}")
        elif _is_model(member):
            names.append("table")
        else:
            names.append(_TYPE_NAMES.get(member, getattr(member, "__name__", str(member))))
    return " or ".join(names)


def _toml(value: object) -> str:
    """A default value as it is written in TOML."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, Duration):
        return f'"{_duration_text(value)}"'
    if isinstance(value, str | Path):
        return f'"{value}"'
    if isinstance(value, list):
        return "[" + ", ".join(_toml(item) for item in value) + "]"
    return str(value)


def _default(field: FieldInfo) -> str:
    if field.is_required():
        return "required"
    value = field.get_default(call_default_factory=True)
    if value is None:
        return "not set"
    if isinstance(value, BaseModel):
        return "see its table"
    return f"`{_toml(value)}`"


def _sections(model: type[BaseModel], path: str) -> list[str]:
    doc = (model.__doc__ or "").strip().split("\n\n")[0].replace("``", "`")
    rows = [f"### `[{path}]`", "", doc, "", "| key | type | default | description |",
            "|---|---|---|---|"]  # fmt: skip
    nested = []
    for name, field in model.model_fields.items():
        key = field.alias or name
        rows.append(
            f"| `{key}` | {_type_name(field.annotation)} | {_default(field)} "
            f"| {field.description or ''} |"
        )
        nested += [(key, arg) for arg in _flat_arguments(field.annotation) if _is_model(arg)]
    rows.append("")
    for key, child in nested:
        rows += _sections(child, f"{path}.{key}")
    return rows


def config_reference() -> str:
    """Every key of the configuration file, with its type, default and description, as markdown.

    Examples
    --------
    >>> print(config_reference().splitlines()[0])
    ### `[source]`
    """
    rows: list[str] = []
    for name, field in JobConfig.model_fields.items():
        section = next(arg for arg in _flat_arguments(field.annotation) if _is_model(arg))
        rows += _sections(section, field.alias or name)
    return "\n".join(rows).rstrip() + "\n"
