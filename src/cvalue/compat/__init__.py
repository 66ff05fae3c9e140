"""Drop-in layers for users of other customer-value packages.

:mod:`cvalue.compat.lifetimes` keeps the calls of the ``lifetimes`` package (fitters and utils)
and runs them on cvalue's own models and summaries (``from cvalue.compat import lifetimes``).
"""

__all__: list[str] = []
