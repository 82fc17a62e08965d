"""Linear probe of latent actions: closed-form ridge regression from z to the true action, fitted on
training episodes and scored on held-out ones. Its held-out MSE is the latent-action quality metric
(lower is better); predicting the mean scores the actions' variance, the level of an uninformative z.
"""
import numpy as np


def fit(z, actions, ridge):
    """(weights [Z, A], bias [A]) minimising |z W + b - a|^2 + ridge |W|^2 (the bias unpenalised)."""
    z, actions = np.asarray(z, np.float64), np.asarray(actions, np.float64)
    z_mean, a_mean = z.mean(0), actions.mean(0)
    centred = z - z_mean
    gram = centred.T @ centred + ridge * len(z) * np.eye(z.shape[1])
    weights = np.linalg.solve(gram, centred.T @ (actions - a_mean))
    return weights, a_mean - z_mean @ weights


def score(z_train, a_train, z_test, a_test, ridge):
    """Held-out MSE per action dimension of the probe, and the held-out actions' variance per dimension."""
    weights, bias = fit(z_train, a_train, ridge)
    prediction = np.asarray(z_test, np.float64) @ weights + bias
    mse = ((prediction - a_test) ** 2).mean(0)
    return mse, np.asarray(a_test, np.float64).var(0)


def summary(mse, variance, prefix):
    """Metrics: mean MSE, the variance, their ratio and MSE per dimension."""
    result = {f'{prefix}_mse': float(mse.mean()), f'{prefix}_mse_over_var': float(mse.mean() / max(variance.mean(), 1e-12))}
    result.update({f'{prefix}_mse_dim{i}': float(value) for i, value in enumerate(mse)})
    return result
