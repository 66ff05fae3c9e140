"""Where a key is in the TOML text, and validation errors as messages that name its line.

``_key_lines`` finds the line of every table header and key; ``_describe`` turns pydantic's
errors into one message, a line per problem with its key and line (an unknown key with the
nearest allowed one; a value shown unless it is long or looks like a URL, which may carry a
password).
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Mapping

from pydantic import BaseModel
from pydantic_core import ErrorDetails

from cvalue.config.schema import JobConfig, _flat_arguments, _is_model

__all__: list[str] = []

# --- finding the line of a key --------------------------------------------------------------------

_KEY_PART = re.compile(r'"[^"]*"|\'[^\']*\'|[A-Za-z0-9_-]+')
_HEADER = re.compile(r"^\s*\[\[?\s*([^\[\]]+?)\s*\]\]?\s*(#.*)?$")
_KEY = re.compile(
    r"""^\s*((?:"[^"]*"|'[^']*'|[A-Za-z0-9_-]+)(?:\s*\.\s*(?:"[^"]*"|'[^']*'|[A-Za-z0-9_-]+))*)\s*="""
)


def _split_key(dotted: str) -> tuple[str, ...]:
    return tuple(part.strip("\"'") for part in _KEY_PART.findall(dotted))


def _key_lines(text: str) -> dict[tuple[str, ...], int]:
    """The line (from 1) of every table header and key, by its full dotted path."""
    lines: dict[tuple[str, ...], int] = {}
    table: tuple[str, ...] = ()
    in_string = False
    for number, line in enumerate(text.splitlines(), start=1):
        quotes = line.count('"""') + line.count("'''")
        if in_string:
            in_string = quotes % 2 == 0
            continue
        header, key = _HEADER.match(line), _KEY.match(line)
        if header:
            table = _split_key(header.group(1))
            lines.setdefault(table, number)
        elif key:
            lines.setdefault(table + _split_key(key.group(1)), number)
        in_string = quotes % 2 == 1
    return lines


def _line_of(path: tuple[str, ...], lines: Mapping[tuple[str, ...], int]) -> int | None:
    """The line of ``path``, or of the nearest table or key above it in the file."""
    for end in range(len(path), 0, -1):
        if path[:end] in lines:
            return lines[path[:end]]
    return None


# --- turning validation errors into messages ------------------------------------------------------


def _key_path(error: ErrorDetails, data: object) -> tuple[tuple[str, ...], str]:
    """The keys the error is at (union tags dropped) and how to show them (with list items)."""
    keys: list[str] = []
    shown = ""
    node = data
    location = error["loc"]
    for position, part in enumerate(location):
        if isinstance(part, int) and isinstance(node, list) and part < len(node):
            node, shown = node[part], f"{shown}[{part}]"
        elif isinstance(node, dict) and part in node:
            node = node[part]
            keys.append(str(part))
            shown = f"{shown}.{part}" if shown else str(part)
        elif error["type"] == "missing" and position == len(location) - 1:
            keys.append(str(part))
            shown = f"{shown}.{part}" if shown else str(part)
    return tuple(keys), shown or "(top level)"


def _model_at(keys: tuple[str, ...]) -> type[BaseModel] | None:
    """The section model that the keys lead to (for the keys allowed there)."""
    model: type[BaseModel] = JobConfig
    for key in keys:
        fields = {field.alias or name: field for name, field in model.model_fields.items()}
        if key not in fields:
            return None
        found = [arg for arg in _flat_arguments(fields[key].annotation) if _is_model(arg)]
        if not found:
            return None
        model = found[0]
    return model


def _unknown_key(keys: tuple[str, ...]) -> str:
    model = _model_at(keys[:-1])
    allowed = [field.alias or name for name, field in model.model_fields.items()] if model else []
    close = difflib.get_close_matches(keys[-1], allowed, n=1)
    text = "unknown key" + (f" (did you mean {close[0]!r}?)" if close else "")
    if "url" in keys[-1].lower():
        text += (
            "; the database URL never goes in this file: put it in an environment variable and "
            "name that variable with url_env"
        )
    return text + (f" (keys here: {', '.join(allowed)})" if allowed else "")


def _problem(error: ErrorDetails, keys: tuple[str, ...]) -> str:
    kind = error["type"]
    if kind == "extra_forbidden":
        return _unknown_key(keys)
    if kind == "missing":
        return "required key is missing"
    if kind in ("model_type", "model_attributes_type", "dict_type"):
        return "expected a table (a [section] or an inline table { key = value })"
    text = error["msg"].removeprefix("Value error, ")
    hidden = bool(keys) and keys[-1].endswith("url_env")
    if kind != "value_error" and not hidden:
        shown = repr(error.get("input"))
        # long values are left out, and anything like a URL, which may carry a password
        text += f" (got {shown})" if len(shown) <= 60 and "://" not in shown else ""
    return text


def _describe(errors: list[ErrorDetails], data: object, text: str, name: str) -> str:
    lines = _key_lines(text)
    found: dict[str, int] = {}
    for error in errors:
        keys, shown = _key_path(error, data)
        if not keys and error["type"] == "value_error":
            found.update(_cross_section_lines(str(error["msg"]), lines))
            continue
        line = _line_of(keys, lines)
        where = f"line {line}: {shown}" if line else shown
        found.setdefault(f"{where}: {_problem(error, keys)}", line or 0)
    problems = sorted(found, key=found.__getitem__)
    count = f"{len(problems)} problem{'s' if len(problems) > 1 else ''}"
    return f"{name} has {count}:\n" + "\n".join(f"  {problem}" for problem in problems)


_NAMED_KEY = re.compile(r"\[([A-Za-z0-9_.]+)\]( [A-Za-z_]+)?")


def _cross_section_lines(message: str, lines: Mapping[tuple[str, ...], int]) -> dict[str, int]:
    """Each cross-section problem with the line of the first key it names."""
    found = {}
    for problem in message.removeprefix("Value error, ").split("\n"):
        named = _NAMED_KEY.search(problem)
        path = () if named is None else (*named[1].split("."), *(named[2] or "").split())
        line = _line_of(path, lines) if path else None
        found[f"line {line}: {problem}" if line else problem] = line or 0
    return found
