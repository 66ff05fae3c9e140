"""Reference data sets and a synthetic CRM with planted truth.

- :func:`load_cdnow`: the CDNOW purchase log and its published 39-week summary (Fader, Hardie &
  Lee 2005).
- :func:`load_donations`: the BG/BB donations table (Fader, Hardie & Shang 2010).
- :func:`make_crm`: a simulated CRM (customers, transactions with categories, channels,
  promotions and returns, service contacts, acquisition costs, surveys) returned with the truth
  that generated it.

The bundled files, their origin and licence are described in ``datasets/data/README.md``.
"""

from __future__ import annotations

from cvalue.datasets._crm import (
    ACQUISITION_CHANNELS,
    CATEGORIES,
    CONTACT_KINDS,
    DEFAULT_SEGMENTS,
    SALES_CHANNELS,
    CostAssumptions,
    CRMTruth,
    SegmentProfile,
    SyntheticCRM,
)
from cvalue.datasets._loaders import (
    CDNOW,
    CDNOW_CALIBRATION_END,
    CDNOW_OBSERVATION_END,
    load_cdnow,
    load_donations,
)
from cvalue.datasets._synthetic import make_crm

__all__ = [
    "ACQUISITION_CHANNELS",
    "CATEGORIES",
    "CDNOW",
    "CDNOW_CALIBRATION_END",
    "CDNOW_OBSERVATION_END",
    "CONTACT_KINDS",
    "DEFAULT_SEGMENTS",
    "SALES_CHANNELS",
    "CRMTruth",
    "CostAssumptions",
    "SegmentProfile",
    "SyntheticCRM",
    "load_cdnow",
    "load_donations",
    "make_crm",
]
