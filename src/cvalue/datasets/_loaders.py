"""Loaders of the bundled reference data sets: CDNOW and the BG/BB donations table.

The files live in ``cvalue/datasets/data`` (see the README there for their origin and licence)
and are read with :mod:`importlib.resources`, so they load from a wheel, a zip or a checkout.
"""

from __future__ import annotations

from dataclasses import dataclass
from importlib.resources import files
from typing import TYPE_CHECKING, Literal

import pandas as pd

from cvalue.errors import SchemaError

if TYPE_CHECKING:
    from importlib.resources.abc import Traversable

__all__ = [
    "CDNOW",
    "CDNOW_CALIBRATION_END",
    "CDNOW_OBSERVATION_END",
    "load_cdnow",
    "load_donations",
]

CDNOW_CALIBRATION_END = pd.Timestamp("1997-09-30")
"""End of the 39-week calibration period of the published CDNOW summary."""
CDNOW_OBSERVATION_END = pd.Timestamp("1998-06-30")
"""End of the 78-week CDNOW observation period."""

_SAMPLE_FILE = "CDNOW_sample.txt"
_MASTER_FILE = "CDNOW_master.txt"
_SUMMARY_FILE = "cdnow_customers_summary_with_transactions.csv"
_DONATIONS_FILE = "donations.csv"


@dataclass(frozen=True, slots=True)
class CDNOW:
    """The CDNOW purchase log and, for the sample, its published calibration summary.

    Attributes
    ----------
    transactions
        One row per purchase record, in file order: ``customer_id`` (int), ``timestamp``
        (``datetime64[ns]``, midnight of the purchase day), ``amount`` (float, dollars) and
        ``quantity`` (int, number of CDs). For the sample, ``customer_id`` is the sample id
        (1 to 2,357, the index of ``summary``) and ``master_customer_id`` keeps the customer's id
        in the master file.
    summary
        The published 39-week calibration summary (1 Jan to 30 Sep 1997) indexed by
        ``customer_id``: ``frequency`` (repeat purchase days), ``recency`` and ``T`` (weeks,
        days / 7) and ``monetary_value`` (mean dollar value of the repeat purchases, 0 without
        any). ``None`` for the master file, for which no summary was published.
    calibration_end
        Last day of the calibration period of ``summary`` (1997-09-30).
    observation_end
        Last day of the purchase log (1998-06-30).
    """

    transactions: pd.DataFrame
    summary: pd.DataFrame | None
    calibration_end: pd.Timestamp = CDNOW_CALIBRATION_END
    observation_end: pd.Timestamp = CDNOW_OBSERVATION_END


def load_cdnow(kind: Literal["sample", "master"] = "sample") -> CDNOW:
    """Load the CDNOW purchase log of Fader, Hardie & Lee (2005).

    Parameters
    ----------
    kind
        ``"sample"``: the 1/10 sample (6,919 purchase records of 2,357 customers) with the
        published 39-week calibration summary. ``"master"``: the whole cohort (69,659 records of
        23,570 customers); its ``summary`` is ``None``.

    Returns
    -------
    CDNOW
        The transactions and, for the sample, the published summary.

    Raises
    ------
    SchemaError
        If ``kind`` is neither ``"sample"`` nor ``"master"``.

    Notes
    -----
    A customer can have several records on one day (the data record orders, not days); the
    published summary counts distinct purchase days, which is ``rfm_summary`` with grain day
    and unit week.

    Examples
    --------
    >>> cdnow = load_cdnow()
    >>> len(cdnow.transactions), cdnow.transactions["customer_id"].nunique()
    (6919, 2357)
    >>> int(cdnow.summary["frequency"].sum())
    2457
    """
    if kind == "sample":
        return CDNOW(transactions=_read_sample(), summary=_read_summary())
    if kind == "master":
        return CDNOW(transactions=_read_master(), summary=None)
    raise SchemaError(f"unknown CDNOW file kind {kind!r}; use 'sample' or 'master'")


def load_donations() -> pd.DataFrame:
    """Load the BG/BB donations table of Fader, Hardie & Shang (2010).

    Returns
    -------
    pandas.DataFrame
        22 rows, one per (frequency, recency) pattern of the 11,104 donors of the 1995 cohort
        over ``n_periods = 6`` annual opportunities, with integer columns ``frequency``,
        ``recency``, ``n_periods`` and ``weight`` (the number of donors with the pattern).

    Examples
    --------
    >>> donations = load_donations()
    >>> len(donations), int(donations["weight"].sum())
    (22, 11104)
    """
    with _data_path(_DONATIONS_FILE).open("rb") as handle:
        table = pd.read_csv(handle, dtype="int64")
    return table.rename(columns={"periods": "n_periods", "weights": "weight"})


def _data_path(name: str) -> Traversable:
    """The bundled data file ``name``."""
    return files("cvalue.datasets").joinpath("data").joinpath(name)


def _read_whitespace(name: str, names: list[str], *, skip_rows: int) -> pd.DataFrame:
    """Read one of the whitespace-separated CDNOW logs, keeping ids and dates as text."""
    with _data_path(name).open("rb") as handle:
        return pd.read_csv(
            handle,
            sep=r"\s+",
            header=None,
            names=names,
            skiprows=skip_rows,
            dtype={"customer_id": "str", "sample_id": "str", "date": "str"},
        )


def _as_transactions(raw: pd.DataFrame) -> pd.DataFrame:
    """Convert raw CDNOW columns to cvalue's canonical transaction columns."""
    return pd.DataFrame(
        {
            "customer_id": raw["customer_id"].astype("int64"),
            "timestamp": pd.to_datetime(raw["date"], format="%Y%m%d").astype("datetime64[ns]"),
            "amount": raw["amount"].astype("float64"),
            "quantity": raw["quantity"].astype("int64"),
        }
    )


def _read_sample() -> pd.DataFrame:
    """The sample log, keyed by sample id so that it joins the published summary."""
    raw = _read_whitespace(
        _SAMPLE_FILE, ["customer_id", "sample_id", "date", "quantity", "amount"], skip_rows=0
    )
    transactions = _as_transactions(raw.assign(customer_id=raw["sample_id"]))
    transactions["master_customer_id"] = raw["customer_id"].astype("int64")
    return transactions


def _read_master() -> pd.DataFrame:
    """The master log of the whole cohort."""
    raw = _read_whitespace(_MASTER_FILE, ["customer_id", "date", "quantity", "amount"], skip_rows=1)
    return _as_transactions(raw)


def _read_summary() -> pd.DataFrame:
    """The published 39-week summary under cvalue's column names."""
    with _data_path(_SUMMARY_FILE).open("rb") as handle:
        raw = pd.read_csv(handle)
    return pd.DataFrame(
        {
            "frequency": raw["x"].astype("int64").to_numpy(),
            "recency": raw["t_x"].astype("float64").to_numpy(),
            "T": raw["T"].astype("float64").to_numpy(),
            "monetary_value": raw["zbar"].astype("float64").to_numpy(),
        },
        index=pd.Index(raw["ID"].astype("int64").to_numpy(), name="customer_id"),
    )
