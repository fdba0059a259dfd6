"""Bradley-Terry reward heads on fixed feature vectors, trained as a batch of ensemble members.

A head maps the feature vector of one (prompt, response) to a scalar reward r; a pair's margin
is r(a) - r(b), so margin(a, b) = -margin(b, a) holds by construction and training on both
orders would change nothing. All members are trained at once on stacked parameters (one
matrix product serves every member), each member with its own per-pair sample counts
(bootstrap), which is what makes refitting an ensemble on 10k pairs take seconds on a CPU.

Parameters are plain numpy arrays in a dict, so saving is ``np.savez`` and nothing here needs
to be pickled.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from rlthf_backend.core.reward.embedding_config import HEAD_KINDS


@dataclass(frozen=True)
class HeadSpec:
    """Shape of the heads: ``kind`` "linear" (r = w.x) or "mlp" (r = w.x + v.gelu(W x + c))."""

    kind: str
    n_members: int
    dim: int
    hidden_size: int = 64


def init_params(spec: HeadSpec, generator: torch.Generator) -> dict[str, torch.Tensor]:
    """Fresh parameters: linear parts at zero (the convex start), MLP weights small and random."""
    if spec.kind not in HEAD_KINDS:
        raise ValueError(f"unknown head kind {spec.kind!r}; expected one of {HEAD_KINDS}")
    m, d, h = spec.n_members, spec.dim, spec.hidden_size
    params = {"w": torch.zeros(m, d)}
    if spec.kind == "mlp":
        params["W1"] = torch.randn(m, d, h, generator=generator) / np.sqrt(d)
        params["b1"] = torch.zeros(m, h)
        params["w2"] = torch.randn(m, h, generator=generator) / np.sqrt(h) * 0.1
    return params


def rewards(params: dict[str, torch.Tensor], x: torch.Tensor) -> torch.Tensor:
    """Rewards of feature rows ``x`` (n, d) under every member: shape (members, n)."""
    r = params["w"] @ x.T  # (m, n)
    if "W1" in params:
        hidden = F.gelu(torch.einsum("nd,mdh->mnh", x, params["W1"]) + params["b1"][:, None, :])
        r = r + torch.einsum("mnh,mh->mn", hidden, params["w2"])
    return r


def pair_margins(params: dict[str, torch.Tensor], xa: torch.Tensor, xb: torch.Tensor) -> torch.Tensor:
    """r(a) - r(b) per member and pair, shape (members, n)."""
    if "W1" not in params:
        # Linear: one product with the feature difference instead of two.
        return params["w"] @ (xa - xb).T
    return rewards(params, xa) - rewards(params, xb)


def train_heads(
    spec: HeadSpec,
    xa: np.ndarray,
    xb: np.ndarray,
    sign: np.ndarray,
    sample_weights: np.ndarray,
    *,
    weight_decay: float,
    epochs: int,
    lr: float,
    optimizer: str,
    label_smoothing: float,
    seed: int,
    init: dict[str, np.ndarray] | None = None,
    mlp_weight_decay: float | None = None,
) -> dict[str, np.ndarray]:
    """Fit every member by weighted Bradley-Terry log-loss plus L2.

    Args:
        xa, xb: features of responses a and b, (n, d).
        sign: +1 where a is preferred, -1 where b is.
        sample_weights: (members, n) non-negative weights (pair weight times bootstrap count).
        weight_decay: L2 coefficient on all weights, relative to the mean loss.
        epochs: optimiser steps over the full batch (L-BFGS: iterations).
        optimizer: "lbfgs" (deterministic and fast on the convex linear head) or "adam".
        label_smoothing: epsilon in (1-eps)*loss(label) + eps*loss(flipped label); hedges
            against the label noise an LLM pre-labeller brings.
        init: parameters to start from (warm start along a regularisation path).
        mlp_weight_decay: L2 coefficient of the MLP weights (None: ``weight_decay``).
    """
    gen = torch.Generator().manual_seed(seed)
    params = init_params(spec, gen)  # also with ``init``: it checks the kind and names the parameters
    if init is not None:
        params = {k: torch.as_tensor(init[k], dtype=torch.float32).clone() for k in params}
    for p in params.values():
        p.requires_grad_(True)
    objective = _bt_objective(
        params, spec, xa, xb, sign, sample_weights, weight_decay=weight_decay, label_smoothing=label_smoothing,
        mlp_weight_decay=weight_decay if mlp_weight_decay is None else float(mlp_weight_decay),
    )
    _minimise(objective, list(params.values()), optimizer, epochs=epochs, lr=lr)
    return {k: v.detach().numpy().copy() for k, v in params.items()}


def _bt_objective(
    params: dict[str, torch.Tensor],
    spec: HeadSpec,
    xa: np.ndarray,
    xb: np.ndarray,
    sign: np.ndarray,
    sample_weights: np.ndarray,
    *,
    weight_decay: float,
    label_smoothing: float,
    mlp_weight_decay: float,
) -> Callable[[], torch.Tensor]:
    """The loss :func:`train_heads` minimises, as a closure over ``params``: the sum over members
    of each member's weighted mean label-smoothed Bradley-Terry log-loss (weights normalised per
    member), plus half the L2 penalty (``weight_decay`` on ``w``, ``mlp_weight_decay`` on the MLP
    weights)."""
    ta = torch.as_tensor(xa, dtype=torch.float32)
    tb = torch.as_tensor(xb, dtype=torch.float32)
    s = torch.as_tensor(sign, dtype=torch.float32)[None, :]
    sw = torch.as_tensor(sample_weights, dtype=torch.float32)
    norm = sw.sum(dim=1, keepdim=True).clamp_min(1e-12)
    sw = sw / norm
    eps = float(label_smoothing)
    diff = ta - tb if spec.kind == "linear" else None

    def objective() -> torch.Tensor:
        m = params["w"] @ diff.T if diff is not None else pair_margins(params, ta, tb)
        z = s * m
        per_pair = (1 - eps) * F.softplus(-z) + eps * F.softplus(z)
        data = (sw * per_pair).sum()  # sum over members of each member's weighted mean loss
        l2 = weight_decay * (params["w"] ** 2).sum()
        if "W1" in params:
            l2 = l2 + mlp_weight_decay * ((params["W1"] ** 2).sum() + (params["w2"] ** 2).sum())
        return data + 0.5 * l2

    return objective


def _minimise(
    objective: Callable[[], torch.Tensor], plist: list[torch.Tensor], optimizer: str, *, epochs: int, lr: float
) -> None:
    """Run ``optimizer`` on ``objective`` over the tensors ``plist`` in place: "lbfgs" (up to
    ``epochs`` iterations, strong-Wolfe line search) or "adam" (``epochs`` full-batch steps)."""
    if optimizer == "lbfgs":
        opt = torch.optim.LBFGS(
            plist, lr=lr, max_iter=epochs, history_size=20, line_search_fn="strong_wolfe",
            tolerance_grad=1e-7, tolerance_change=1e-10,
        )

        def closure() -> torch.Tensor:
            opt.zero_grad()
            loss = objective()
            loss.backward()
            return loss

        opt.step(closure)
    elif optimizer == "adam":
        opt = torch.optim.Adam(plist, lr=lr)
        for _ in range(epochs):
            opt.zero_grad()
            loss = objective()
            loss.backward()
            opt.step()
    else:
        raise ValueError(f"unknown optimizer {optimizer!r}; expected 'lbfgs' or 'adam'")


def train_ensemble(
    spec: HeadSpec,
    xa: np.ndarray,
    xb: np.ndarray,
    sign: np.ndarray,
    pair_weights: np.ndarray,
    counts: np.ndarray,
    **train_kw,
) -> dict[str, np.ndarray]:
    """Fit ``spec.n_members`` heads, member m on weights ``counts[m] * pair_weights``.

    Linear heads under L-BFGS are fitted one member at a time, each warm-started from the
    head fitted on the unresampled data: a bootstrap resample moves the optimum only a little,
    so each member converges in a few iterations (a joint L-BFGS over all members needs many
    more, because one line search serves members that are at different stages).
    Other heads are trained jointly from a random start (the diversity an MLP ensemble needs).
    """
    weights = counts * pair_weights[None, :]
    if spec.kind != "linear" or train_kw.get("optimizer") != "lbfgs" or spec.n_members == 1:
        return train_heads(spec, xa, xb, sign, weights, **train_kw)
    one = HeadSpec(spec.kind, 1, spec.dim, spec.hidden_size)
    base = train_heads(one, xa, xb, sign, pair_weights[None, :], **train_kw)
    members = [
        train_heads(one, xa, xb, sign, weights[m : m + 1], init=base, **train_kw)
        for m in range(spec.n_members)
    ]
    return {k: np.concatenate([p[k] for p in members]) for k in base}


def select_weight_decay(
    xa: np.ndarray,
    xb: np.ndarray,
    sign: np.ndarray,
    weights: np.ndarray,
    grid: tuple[float, ...],
    folds: int,
    seed: int,
    epochs: int,
) -> tuple[float, dict[float, float]]:
    """The L2 coefficient of ``grid`` with the lowest cross-validated weighted log-loss.

    Uses one linear head per fold (cheap and convex), walking the grid from strong to weak
    regularisation with warm starts, so each step needs few L-BFGS iterations. Returns the
    choice and the mean validation loss per coefficient.
    """
    n = len(sign)
    fold_of = np.random.default_rng(seed).permutation(n) % folds
    spec = HeadSpec("linear", 1, xa.shape[1])
    losses = {wd: 0.0 for wd in grid}
    for k in range(folds):
        tr, va = fold_of != k, fold_of == k
        params = None
        for wd in sorted(grid, reverse=True):
            params = train_heads(
                spec, xa[tr], xb[tr], sign[tr], weights[None, tr], weight_decay=wd, epochs=epochs,
                lr=1.0, optimizer="lbfgs", label_smoothing=0.0, seed=seed, init=params,
            )
            m = predict_margins(params, xa[va], xb[va])[0]
            w = weights[va]
            losses[wd] += float(np.sum(w * np.logaddexp(0.0, -sign[va] * m)) / max(w.sum(), 1e-12)) / folds
    best = min(grid, key=lambda wd: (losses[wd], -wd))  # ties: the stronger regularisation
    return best, losses


def predict_margins(params: dict[str, np.ndarray], xa: np.ndarray, xb: np.ndarray) -> np.ndarray:
    """Margins (members, n) of fitted ``params`` on features ``xa``, ``xb``."""
    with torch.no_grad():
        tparams = {k: torch.as_tensor(v) for k, v in params.items()}
        out = pair_margins(
            tparams, torch.as_tensor(xa, dtype=torch.float32), torch.as_tensor(xb, dtype=torch.float32)
        )
    return out.numpy().astype(np.float64)
