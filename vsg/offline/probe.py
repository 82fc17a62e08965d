"""Probes of latent actions, fitted on training episodes and scored on held-out ones (held-out MSE,
lower is better; predicting the mean scores the actions' variance, the level of an uninformative z).

The linear probe (closed-form ridge regression from z to the true action) is the issue's metric; it
only sees actions that z holds along straight lines. The k-nearest-neighbour probe (z standardised
per dimension) sees any code: a latent that names each move by an arbitrary saturated pattern reads
near the variance linearly and near zero by its neighbours.
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


def knn_score(z_train, a_train, z_test, a_test, k, chunk=512):
    """Held-out MSE per action dimension of predicting each test action by the mean action of its k
    nearest training latents (Euclidean, after standardising each dimension by the training split)."""
    z_train, z_test = np.asarray(z_train, np.float64), np.asarray(z_test, np.float64)
    mean, std = z_train.mean(0), z_train.std(0)
    std[std == 0] = 1.0
    z_train, z_test = (z_train - mean) / std, (z_test - mean) / std
    a_train, a_test = np.asarray(a_train, np.float64), np.asarray(a_test, np.float64)
    k = min(k, len(z_train))
    predictions = []
    for start in range(0, len(z_test), chunk):
        part = z_test[start:start + chunk]
        distances = (part ** 2).sum(1)[:, None] - 2 * part @ z_train.T + (z_train ** 2).sum(1)[None]
        nearest = np.argpartition(distances, k - 1, 1)[:, :k]
        predictions.append(a_train[nearest].mean(1))
    return ((np.concatenate(predictions) - a_test) ** 2).mean(0)


def summary(mse, variance, prefix):
    """Metrics: mean MSE, the variance, their ratio and MSE per dimension."""
    result = {f'{prefix}_mse': float(mse.mean()), f'{prefix}_mse_over_var': float(mse.mean() / max(variance.mean(), 1e-12))}
    result.update({f'{prefix}_mse_dim{i}': float(value) for i, value in enumerate(mse)})
    return result
