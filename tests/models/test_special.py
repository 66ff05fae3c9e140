"""The stable special functions of the BG/NBD family, against scipy and direct quadrature."""

import math

import mpmath
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import integrate
from scipy.special import betaln, hyp2f1

from cvalue.models._special import (
    beta_ratio,
    expected_while_alive,
    hypergeometric_series,
    log_hyp2f1,
)


def quadrature(k, beta, a, z):
    """E_p[(1 - (1 + p tau)^-k) / p], p ~ Beta(a, beta), by quadrature with the endpoint
    singularities p^(a-1) and (1-p)^(beta-1) substituted away."""
    tau = z / (1 - z)

    def h(p):
        return -np.expm1(-k * np.log1p(p * tau)) / p

    if min(a, beta) >= 1:

        def integrand(p):
            return h(p) * np.exp((a - 1) * np.log(p) + (beta - 1) * np.log1p(-p) - betaln(a, beta))

        return integrate.quad(
            integrand, 0, 1, limit=1000, epsabs=0, epsrel=1e-13, points=[min(1 / tau, 0.5)]
        )[0]
    near_zero = integrate.quad(
        lambda u: h(u ** (1 / a)) * (1 - u ** (1 / a)) ** (beta - 1) / a,
        0,
        0.5**a,
        epsabs=0,
        epsrel=1e-13,
        limit=1000,
    )[0]
    near_one = integrate.quad(
        lambda v: h(1 - v ** (1 / beta)) * (1 - v ** (1 / beta)) ** (a - 1) / beta,
        0,
        0.5**beta,
        epsabs=0,
        epsrel=1e-13,
        limit=1000,
    )[0]
    return (near_zero + near_one) / np.exp(betaln(a, beta))


def random_arguments(seed, n):
    rng = np.random.default_rng(seed)
    k = np.exp(rng.uniform(-3, 5, n))
    beta = np.exp(rng.uniform(-3, 5, n))
    a = np.exp(rng.uniform(-3, 3, n))
    a[::7] = 1.0 + rng.choice([0.0, 1e-12, -1e-9, 1e-6], len(a[::7]))
    z = rng.uniform(0, 0.99, n)
    return k, beta, a, z


def test_expected_while_alive_matches_quadrature_everywhere():
    """Random (k, beta, a, z) including a = 1 exactly, a within 1e-12 of 1 and a + beta < 1."""
    k, beta, a, z = random_arguments(1, 120)
    ours = expected_while_alive(k, beta, a, z)
    reference = np.array([quadrature(*args) for args in zip(k, beta, a, z, strict=True)])
    np.testing.assert_allclose(ours, reference, rtol=1e-9)


def test_expected_while_alive_equals_the_published_hypergeometric_form():
    """Fader, Hardie & Lee (2005) eq. (10)'s bracket, through scipy's 2F1 where it is safe."""
    rng = np.random.default_rng(2)
    k, beta = rng.uniform(0.2, 20, 200), rng.uniform(0.5, 20, 200)
    a, z = rng.uniform(1.2, 5, 200), rng.uniform(0, 0.8, 200)
    C = a + beta - 1
    published = C / (a - 1) * (1 - (1 - z) ** k * hyp2f1(k, beta, C, z))
    np.testing.assert_allclose(expected_while_alive(k, beta, a, z), published, rtol=1e-10)


@pytest.mark.parametrize(
    ("k", "beta", "a", "z"),
    [
        (1e4, 2.0, 2.0, 0.5),
        (1e3, 0.5, 0.3, 0.9),
        (500.0, 500.0, 0.8, 0.3),
        (3.0, 2.0, 1.0, 0.9999),
        (1e4, 1e4, 1e4, 0.5),
        (50.0, 0.3, 0.3, 0.9),
        (1e-6, 1e-6, 1e-6, 0.5),
        (0.2, 0.3, 0.2, 0.999),
    ],
)
def test_expected_while_alive_at_extremes(k, beta, a, z):
    value = float(expected_while_alive(k, beta, a, z))
    assert np.isfinite(value)
    assert value > 0
    if min(k, beta, a) > 1e-3 and max(k, beta, a) < 1e4:
        assert value == pytest.approx(quadrature(k, beta, a, z), rel=1e-8)


def test_limits():
    """z = 0 gives nothing; for a -> 0 with beta fixed the expectation tends to k tau E[1]."""
    assert float(expected_while_alive(2.0, 3.0, 0.5, 0.0)) == 0.0
    # a = 1 exactly: no 0/0; 2F1 identity gives 1.5 for k=2, beta=3, z=1/2
    assert float(expected_while_alive(2.0, 3.0, 1.0, 0.5)) == pytest.approx(1.5, rel=1e-14)


def test_log_hyp2f1_matches_scipy():
    rng = np.random.default_rng(3)
    a, b = rng.uniform(0.1, 30, 300), rng.uniform(0.1, 30, 300)
    c, z = rng.uniform(0.1, 40, 300), rng.uniform(0, 0.5, 300)
    np.testing.assert_allclose(np.exp(log_hyp2f1(a, b, c, z)), hyp2f1(a, b, c, z), rtol=1e-10)


def test_log_hyp2f1_where_scipy_loses_digits():
    """scipy's hyp2f1 is off by 3e-7 here; an exactly rounded sum of the series is not."""
    a, b, c, z = 0.13433757094253235, 22.878687306306414, 11.511489304742451, 0.8669923766267071
    term, terms = 1.0, [1.0]
    for n in range(3000):
        term *= (a + n) * (b + n) / ((c + n) * (n + 1)) * z
        terms.append(term)
    assert float(np.exp(log_hyp2f1(a, b, c, z))) == pytest.approx(math.fsum(terms), rel=1e-13)


def test_log_hyp2f1_does_not_overflow():
    """2F1(a, b; b; z) = (1 - z)^-a (Abramowitz & Stegun 15.1.8) far beyond the float range."""
    value = log_hyp2f1(5000.0, 3.0, 3.0, 0.5)
    assert float(value) == pytest.approx(-5000 * np.log(0.5), rel=1e-12)


def test_series_terminates_on_a_polynomial():
    """2F1(-2, b; c; z) = 1 - 2bz/c + b(b+1)z^2/(c(c+1))."""
    summed = hypergeometric_series(-2.0, 1.5, 2.5, 1.0, 0.4)
    exact = 1 - 2 * 1.5 * 0.4 / 2.5 + 1.5 * 2.5 * 0.16 / (2.5 * 3.5)
    assert float(summed.sign * np.exp(summed.log_abs)) == pytest.approx(exact, rel=1e-15)


@settings(max_examples=40, deadline=None)
@given(
    log_a=st.floats(-7, 12), log_b=st.floats(-7, 12),
    counts=st.lists(st.integers(0, 250), min_size=1, max_size=5),
)  # fmt: skip
def test_beta_ratio_and_its_derivatives_equal_mpmaths(
    log_a: float, log_b: float, counts: list[int]
) -> None:
    """log B(a, b + n) / B(a, b) and its derivatives in a and b, to 1e-13 for a and b from 1e-7
    to 1e12, where betaln's difference loses up to eight digits (the BG/NBD's objective)."""
    a, b = 10.0**log_a, 10.0**log_b
    found = beta_ratio(a, b, np.array(counts))
    mpmath.mp.dps = 40
    for k, n in enumerate(counts):

        def log_ratio(x: object, y: object, n: int = n) -> object:
            return mpmath.log(mpmath.beta(x, y + n) / mpmath.beta(x, y))

        expected = [log_ratio(a, b), mpmath.diff(lambda x: log_ratio(x, b), a),
                    mpmath.diff(lambda y: log_ratio(a, y), b)]  # fmt: skip
        for got, want in zip((found.log[k], found.d_a[k], found.d_b[k]), expected, strict=True):
            assert got == pytest.approx(float(want), rel=1e-13, abs=1e-300)
