"""The MBG/NBD model: Batislam, Denizel & Filiztekin (2007).

The BG/NBD (:mod:`cvalue.models.beta_geo`) lets a customer drop out only after a repeat purchase,
so every customer without one is certainly alive. The MBG/NBD also lets the customer drop out
right after the first purchase (at time 0), so one-time buyers who have been silent for long get
a low P(alive). The likelihood, predictions (the purchase pmf given a history and DERT
included) and simulator are the BG/NBD's with ``b + x`` replaced by ``b + x + 1`` where the
dropout opportunities are counted; the code is shared.
"""

from __future__ import annotations

from typing import ClassVar

from cvalue.models.beta_geo import _BetaGeoFamily

__all__ = ["ModifiedBetaGeo"]


class ModifiedBetaGeo(_BetaGeoFamily):
    """The MBG/NBD model of Batislam, Denizel & Filiztekin (2007), parameters ``r, alpha, a, b``.

    Purchases follow a Poisson process with rate ``lambda ~ Gamma(r, alpha)`` while the customer
    is alive; at time 0 and after each repeat purchase the customer drops out with probability
    ``p ~ Beta(a, b)``.

    Parameters
    ----------
    n_starts
        How many starting points the optimiser tries.
    penalizer
        L2 penalty on the natural parameters (0: plain maximum likelihood).

    Examples
    --------
    >>> from cvalue.datasets import load_cdnow
    >>> model = ModifiedBetaGeo().fit(load_cdnow().summary, unit="week")
    >>> model.params_.round(3).tolist()
    [0.525, 6.183, 0.891, 1.614]
    """

    _dropout_at_start: ClassVar[int] = 1
