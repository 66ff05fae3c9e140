"""Probabilistic models of customer behaviour, fitted by maximum likelihood.

Non-contractual, continuous time: :class:`BetaGeo` (BG/NBD), :class:`ParetoNBD`,
:class:`ModifiedBetaGeo` (MBG/NBD). Non-contractual, discrete time: :class:`BetaGeoBetaBinom`
(BG/BB). Regular purchase timing: :class:`BetaGeoCNBD` and :class:`ModifiedBetaGeoCNBD`
((M)BG/CNBD-k, with :func:`cnbd_summary`). Contractual: :class:`ShiftedBetaGeo` (sBG),
:class:`BetaDiscreteWeibull` (BdW). Spend: :class:`GammaGamma`, also fitted from a stream of
chunks (:meth:`GammaGamma.fit_chunks`, on the tables of :class:`SpendSums`). All share the
engine in :mod:`cvalue.models._mle`, which refuses data that cannot identify a model and warns
on a small base (:class:`SmallBaseWarning`) and on estimates at the edge of the parameter space
(:class:`ConvergenceWarning`). :class:`PurchaseModel` and :class:`SpendModel` state the
contract the purchase and spend models keep (data first, options by keyword, the same names in
every model).
"""

from cvalue.models._base import Model, SmallBaseWarning
from cvalue.models._contract import PurchaseModel, SpendModel
from cvalue.models._curves import Curves
from cvalue.models._intervals import joint_draws, log_normal_root, parameter_draws
from cvalue.models._mle import ConvergenceWarning
from cvalue.models._spend_stream import SpendSums
from cvalue.models.beta_discrete_weibull import BetaDiscreteWeibull
from cvalue.models.beta_geo import BetaGeo
from cvalue.models.beta_geo_beta_binom import BetaGeoBetaBinom
from cvalue.models.cnbd import BetaGeoCNBD, ModifiedBetaGeoCNBD, cnbd_summary
from cvalue.models.gamma_gamma import (
    FrequencySpendCorrelationWarning,
    GammaGamma,
    UndefinedExpectationError,
)
from cvalue.models.modified_beta_geo import ModifiedBetaGeo
from cvalue.models.pareto_nbd import ParetoNBD
from cvalue.models.shifted_beta_geo import LikelihoodRatioTest, ShiftedBetaGeo, lr_test

PURCHASE_MODELS: dict[str, type[Model]] = {
    "beta_geo": BetaGeo,
    "pareto_nbd": ParetoNBD,
    "modified_beta_geo": ModifiedBetaGeo,
    "beta_geo_beta_binom": BetaGeoBetaBinom,
    "beta_geo_cnbd": BetaGeoCNBD,
    "modified_beta_geo_cnbd": ModifiedBetaGeoCNBD,
}
"""The purchase models by the names the configuration file uses (``[models] purchase``).

A model added here is a choice of the job and of ``auto``'s candidates, with no other change.
"""

__all__ = [
    "PURCHASE_MODELS",
    "BetaDiscreteWeibull",
    "BetaGeo",
    "BetaGeoBetaBinom",
    "BetaGeoCNBD",
    "ConvergenceWarning",
    "Curves",
    "FrequencySpendCorrelationWarning",
    "GammaGamma",
    "LikelihoodRatioTest",
    "Model",
    "ModifiedBetaGeo",
    "ModifiedBetaGeoCNBD",
    "ParetoNBD",
    "PurchaseModel",
    "ShiftedBetaGeo",
    "SmallBaseWarning",
    "SpendModel",
    "SpendSums",
    "UndefinedExpectationError",
    "cnbd_summary",
    "joint_draws",
    "log_normal_root",
    "lr_test",
    "parameter_draws",
]
