"""The TOML configuration of a scoring job, validated, with errors that name the key and line.

A scoring job (``cvalue score --config cvalue.toml``) reads the CRM database, fits the models,
values and segments the customers, and writes the scores back. Its file has six tables:

- ``[source]``: the environment variable that holds the database URL (the URL, and so its
  password, never goes in the file), the transactions table or query with its column mapping
  (:class:`cvalue.Columns`), and optionally the customers table;
- ``[summary]``: the observation end, the time unit and the grain of the customer summary;
- ``[models]``: the purchase model (or ``"auto"``: fit the candidates, keep the one with the
  smallest holdout error), the spend model and the holdout length;
- ``[value]``: the gross margin, costs to serve and of marketing, discount rates (one rate, by
  segment, or risk-adjusted) and the horizons;
- ``[segments]``: value tiers, the value x risk grid and the unprofitable-segment search;
- ``[outputs]``: the scores table, the write mode and the report's path.

:func:`load_config` reads and checks a file. Unknown keys, wrong types and bad values all come
back in one :class:`~cvalue.errors.ConfigError` whose lines name the key and its line in the file;
a missing environment variable is named too. :func:`config_reference` renders every key, its
type, default and description as markdown, from the models themselves.

Examples
--------
>>> import tempfile
>>> from pathlib import Path
>>> with tempfile.TemporaryDirectory() as folder:
...     path = Path(folder) / "cvalue.toml"
...     _ = path.write_text(EXAMPLE_CONFIG)
...     config = load_config(path, environ={"CVALUE_DATABASE_URL": "duckdb:///crm.duckdb"})
>>> config.models.purchase, str(config.models.holdout), config.outputs.write_mode
('auto', '26 week', 'replace')
>>> config.source.transactions.columns().amount
'net_amount'
"""

from cvalue.config.loading import load_config
from cvalue.config.reference import config_reference
from cvalue.config.schema import (
    EXAMPLE_CONFIG,
    CostConfig,
    DiscountConfig,
    JobConfig,
    LifecycleConfig,
    ModelsConfig,
    OutputsConfig,
    SegmentsConfig,
    SummaryConfig,
    ValueConfig,
)
from cvalue.config.sources import (
    CustomersSource,
    SourceConfig,
    SurveysSource,
    TransactionsSource,
)

__all__ = [
    "EXAMPLE_CONFIG",
    "CostConfig",
    "CustomersSource",
    "DiscountConfig",
    "JobConfig",
    "LifecycleConfig",
    "ModelsConfig",
    "OutputsConfig",
    "SegmentsConfig",
    "SourceConfig",
    "SummaryConfig",
    "SurveysSource",
    "TransactionsSource",
    "ValueConfig",
    "config_reference",
    "load_config",
]
