"""Generalized FEVD and Diebold–Yilmaz spillovers against reference computations."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from statsmodels.tsa.vector_ar.var_model import VAR, VARProcess

from deleverage.detect.indicators.spillover import (
    gfevd,
    ma_coefficients,
    rolling_spillovers,
    spillover_table,
    var_ols,
)

A = np.array([[[0.5, 0.2, 0.0], [-0.1, 0.3, 0.25], [0.05, 0.0, 0.4]]])
SIGMA = np.array([[1.0, 0.4, -0.2], [0.4, 2.0, 0.3], [-0.2, 0.3, 0.5]])


def test_ma_coefficients_of_a_var2():
    a1, a2 = np.array([[0.5, 0.1], [0.0, 0.2]]), np.array([[0.1, 0.0], [0.3, -0.1]])
    phi = ma_coefficients(np.stack([a1, a2]), horizon=3)
    np.testing.assert_allclose(phi[1], a1)
    np.testing.assert_allclose(phi[2], a1 @ a1 + a2)


def test_gfevd_of_white_noise_is_squared_correlation():
    theta = gfevd(np.zeros((1, 3, 3)), SIGMA, horizon=5)
    sd = np.sqrt(np.diag(SIGMA))
    np.testing.assert_allclose(theta, (SIGMA / np.outer(sd, sd)) ** 2, rtol=1e-12)


def test_gfevd_of_a_known_var1_matches_the_pesaran_shin_formula():
    horizon = 8
    theta = gfevd(A, SIGMA, horizon)
    # Reference: scalar loops over A^h, and statsmodels' own MA matrices and MSE.
    process = VARProcess(A, None, SIGMA)
    mse = process.mse(horizon)[-1]
    for i in range(3):
        for j in range(3):
            num = sum((np.linalg.matrix_power(A[0], h) @ SIGMA)[i, j] ** 2 for h in range(horizon))
            den = sum(
                (np.linalg.matrix_power(A[0], h) @ SIGMA @ np.linalg.matrix_power(A[0], h).T)[i, i]
                for h in range(horizon)
            )
            assert theta[i, j] == pytest.approx(num / SIGMA[j, j] / den, rel=1e-10)
            assert theta[i, j] == pytest.approx(
                sum((process.ma_rep(horizon)[h] @ SIGMA)[i, j] ** 2 for h in range(horizon))
                / SIGMA[j, j]
                / mse[i, i],
                rel=1e-10,
            )


def test_gfevd_with_diagonal_sigma_equals_the_orthogonalised_fevd():
    sigma = np.diag([1.0, 2.0, 0.5])
    horizon = 6
    theta = gfevd(A, sigma, horizon)
    process = VARProcess(A, None, sigma)
    orth = process.orth_ma_rep(horizon)[:horizon]
    want = (orth**2).sum(axis=0) / np.diag(process.mse(horizon)[-1])[:, None]
    np.testing.assert_allclose(theta, want, atol=1e-10)
    np.testing.assert_allclose(theta.sum(axis=1), 1.0, atol=1e-12)


def test_var_ols_matches_statsmodels():
    rng = np.random.default_rng(6)
    y = np.zeros((300, 3))
    for t in range(1, 300):
        y[t] = A[0] @ y[t - 1] + rng.multivariate_normal(np.zeros(3), SIGMA)
    coefs, sigma = var_ols(y, lags=2)
    fit = VAR(y).fit(2)
    np.testing.assert_allclose(coefs, fit.coefs, atol=1e-10)
    np.testing.assert_allclose(sigma, fit.sigma_u, atol=1e-10)


def test_spillover_table_by_hand():
    table = spillover_table(np.array([[0.8, 0.2], [0.4, 0.6]]) * 3.0)  # rows normalised first
    assert table["total"] == pytest.approx(30.0)
    np.testing.assert_allclose(table["from_others"], [10.0, 20.0])
    np.testing.assert_allclose(table["to_others"], [20.0, 10.0])
    np.testing.assert_allclose(table["net"], [10.0, -10.0])
    np.testing.assert_allclose(table["net_pairwise"], [[0.0, 10.0], [-10.0, 0.0]])


def test_rolling_spillovers_show_the_driver_as_net_transmitter():
    rng = np.random.default_rng(7)
    n = 400
    driver = rng.standard_normal(n)
    follower = np.r_[0.0, 0.8 * driver[:-1]] + 0.5 * rng.standard_normal(n)
    r = pd.DataFrame({"d": driver, "f": follower, "x": rng.standard_normal(n)})
    frame, pairwise = rolling_spillovers(r, window=200, lags=1, horizon=10)
    assert frame["net_d"].iloc[-1] > 5.0
    assert frame["net_f"].iloc[-1] < 0.0
    assert pairwise[-1, 0, 1] > 5.0
    assert frame["total"].iloc[:199].isna().all()
    np.testing.assert_allclose(frame.filter(like="net_").sum(axis=1).iloc[199:], 0.0, atol=1e-9)
