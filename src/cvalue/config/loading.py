"""Reading a configuration file: TOML, the checks, the environment and relative paths."""

from __future__ import annotations

import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ValidationError

from cvalue.config.lines import _describe, _key_lines, _line_of
from cvalue.config.schema import JobConfig
from cvalue.config.values import _read_environment
from cvalue.errors import ConfigError

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - Python 3.10
    import tomli as tomllib

__all__ = ["load_config"]


def _read(path: Path) -> tuple[str, dict[str, Any]]:
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(f"configuration file {str(path)!r} not found") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"cannot read configuration file {str(path)!r}: {exc}") from exc
    try:
        return text, tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path} is not valid TOML: {exc}") from None


def _check_environment(
    config: JobConfig, lines: Mapping[tuple[str, ...], int], environ: Mapping[str, str] | None
) -> None:
    keys = [("source", "url_env")] if config.source.url_env is not None else []
    if config.outputs.url_env is not None:
        keys.append(("outputs", "url_env"))
    problems = []
    for key in keys:
        name = config.source.url_env if key[0] == "source" else config.outputs.url_env
        try:
            _read_environment(str(name), ".".join(key), environ)
        except ConfigError as exc:
            line = _line_of(key, lines)
            problems.append(f"line {line}: {exc}" if line else str(exc))
    if problems:
        raise ConfigError("\n".join(problems))


def load_config(
    path: str | Path,
    *,
    environ: Mapping[str, str] | None = None,
    check_environment: bool = True,
) -> JobConfig:
    """Read and check a scoring job's TOML configuration file.

    Parameters
    ----------
    path
        The ``cvalue.toml`` file.
    environ
        Where the URL variables are looked up (``os.environ`` when ``None``).
    check_environment
        Check that ``source.url_env`` (and ``outputs.url_env``) name variables that are set.

    Returns
    -------
    JobConfig
        The configuration; relative paths (``outputs.report``, ``outputs.scores_file``, the
        files of the sources and costs) are resolved against the file's folder, and a CRM
        preset of ``[source.transactions]`` is resolved against its file's header (see
        :meth:`cvalue.config.SourceConfig.with_preset`).

    Raises
    ------
    ConfigError
        If the file is missing or not TOML; for every unknown key, wrong type or bad value (all
        of them at once, each with its key and line); if a URL variable is not set (naming it);
        if the preset's export file is missing or is not an export the preset knows.
    """
    path = Path(path)
    text, data = _read(path)
    try:
        config = JobConfig.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(_describe(exc.errors(), data, text, str(path))) from None
    if check_environment:
        _check_environment(config, _key_lines(text), environ)
    return _with_preset(_relative_to(config, path.parent))


def _with_preset(config: JobConfig) -> JobConfig:
    """``config`` with its transactions' CRM preset resolved against the file's header."""
    source = config.source.with_preset()
    if source is config.source:
        return config
    return config.model_copy(update={"source": source})


def _relative_to(config: JobConfig, folder: Path) -> JobConfig:
    """``config`` with its relative paths (report, files) resolved against ``folder``."""

    def resolved(section: BaseModel, key: str) -> BaseModel:
        value = getattr(section, key, None)
        if not isinstance(value, Path) or value.is_absolute():
            return section
        return section.model_copy(update={key: folder / value})

    source, value = config.source, config.value
    source = source.model_copy(update={
        "transactions": resolved(source.transactions, "file"),
        "customers": source.customers and resolved(source.customers, "file"),
        "surveys": source.surveys and resolved(source.surveys, "file"),
    })  # fmt: skip
    value = value.model_copy(update={
        "cost_to_serve": value.cost_to_serve and resolved(value.cost_to_serve, "file"),
        "marketing_cost": value.marketing_cost and resolved(value.marketing_cost, "file"),
    })  # fmt: skip
    outputs = resolved(resolved(config.outputs, "report"), "scores_file")
    return config.model_copy(update={"source": source, "value": value, "outputs": outputs})
