"""Inputs for the checks of Theorem 1 and searches for the worst ones: random admissible inputs,
the adversarial searches against M and against the corrected bound, and the encoder's part
(the chain rule from ∂L/∂Z to the encoder's parameters). Explained in :doc:`/book/theorem1`.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch
from torch.func import functional_call, grad, jacrev, vmap

from ..stability import gradient_bound, instability_loss, otsu_threshold, soft_assign
from .gradients import (DTYPE, as_f64, autograd_gradients, block_norms, bound_report, check_t,
                        determinacy_factor, stability_factor)


# ---------------------------------------------------------------------- random admissible inputs
@dataclass
class Case:
    """One admissible input of the loss: embeddings, centroids and the constants.

    Used in :doc:`/book/theorem1`.
    """
    z: torch.Tensor
    m: torch.Tensor
    alpha: float
    lam: float
    t: float
    form: str
    regime: str

    @property
    def n(self) -> int:
        return self.z.shape[0]

    @property
    def k(self) -> int:
        return self.m.shape[0]

    def params(self) -> dict:
        return {"n": self.n, "k": self.k, "d": self.z.shape[1], "alpha": self.alpha, "lam": self.lam,
                "t": self.t, "form": self.form, "regime": self.regime}


#: The geometries and threshold rules of :func:`~decs.theory.sample_case`.
REGIMES = ("one-hot", "uniform", "mixed", "kink", "otsu")
#: The admissible range that :func:`~decs.theory.sample_case` draws from (n, k, α, λ log-uniform;
#: t uniform).
RANGES = {"n": (2, 100_000), "k": (2, 50), "alpha": (0.01, 100.0), "lam": (0.004, 10.0), "t": (1e-3, 1 - 1e-3)}
#: Largest n·k·d of one random draw (memory); d, then k, are reduced to meet it.
MAX_ELEMENTS = 2_000_000


def sample_case(rng: np.random.Generator, n: int | None = None, k: int | None = None, d: int | None = None,
                form: str | None = None, regime: str | None = None, alpha: float | None = None,
                lam: float | None = None, t: float | None = None, n_max: int | None = None) -> Case:
    """A random admissible input: n, k, α, λ log-uniform over :data:`~decs.theory.search.RANGES`,
    t uniform on (0.001, 0.999) — or at a kink (t equal to one of the q's) or Otsu's t of the
    batch —, and one of five geometries: near-one-hot q (embeddings close to their centroid,
    centroids far apart), near-uniform q (everything within a small ball, or embeddings far from
    all centroids), mixed scales, and the two threshold regimes. Any of n, k, d, form, regime, α,
    λ, t can be fixed; n·k·d is capped at :data:`~decs.theory.search.MAX_ELEMENTS` (d, then k,
    shrink for very large n).

    Used in :doc:`/book/theorem1`.
    """
    logu = lambda lo, hi: float(np.exp(rng.uniform(np.log(lo), np.log(hi))))
    n = n or int(round(logu(RANGES["n"][0], n_max or RANGES["n"][1])))
    k = k or int(round(logu(*RANGES["k"])))
    d = d or int(rng.integers(1, 11))
    if n * k * d > MAX_ELEMENTS:
        d = max(1, MAX_ELEMENTS // (n * k))
        k = max(2, min(k, MAX_ELEMENTS // (n * d)))
    alpha = alpha if alpha is not None else logu(*RANGES["alpha"])
    lam = lam if lam is not None else logu(*RANGES["lam"])
    form = form or str(rng.choice(["paper", "code"]))
    regime = regime or str(rng.choice(REGIMES))
    sa = math.sqrt(alpha)
    if regime == "one-hot":
        m = rng.normal(size=(k, d)) * sa * logu(3.0, 300.0)
        z = m[rng.integers(k, size=n)] + rng.normal(size=(n, d)) * sa * logu(1e-3, 0.3)
    elif regime == "uniform":
        if rng.random() < 0.5:   # all distances small compared with √α
            scale = sa * logu(1e-3, 0.3)
            m, z = rng.normal(size=(k, d)) * scale, rng.normal(size=(n, d)) * scale
        else:                    # embeddings far from every centroid
            m = rng.normal(size=(k, d)) * sa
            z = rng.normal(size=(n, d)) * sa * logu(30.0, 3000.0)
    else:
        m = rng.normal(size=(k, d)) * sa * logu(0.01, 30.0)
        z = m[rng.integers(k, size=n)] + rng.normal(size=(n, d)) * sa * logu(0.01, 30.0)
    z, m = torch.as_tensor(z, dtype=DTYPE), torch.as_tensor(m, dtype=DTYPE)
    if regime == "kink":
        q = soft_assign(z, m, alpha).reshape(-1)
        t = float(q[int(rng.integers(q.numel()))])
        t = float(np.clip(t, 1e-3, 1 - 1e-3))
    elif regime == "otsu":
        t = float(otsu_threshold(soft_assign(z, m, alpha)))
    elif t is None:
        t = float(rng.uniform(*RANGES["t"]))
    return Case(z, m, alpha, lam, t, form, regime)


def replicate(z: torch.Tensor, r: int) -> torch.Tensor:
    """r copies of every embedding: the per-sample terms of ∂L/∂m_j add up coherently, so
    ratio(m_j) grows by r, ratio(Z) by √r, and ratio(z_i) stays (both forms: the mean and the
    population variance of s are unchanged).

    Used in :doc:`/book/theorem1`.
    """
    return z.repeat(r, 1)


# ---------------------------------------------------------------------------- adversarial search
def _adversary_objective(alpha, lam, t, form, block, bound):
    def loss(z, m):
        return instability_loss(z, m, alpha, lam, t, form)

    grad_loss = grad(loss, argnums=(0, 1))

    def log_ratio(rho, u, v):
        s = torch.exp(rho)
        z, m = s * u, s * v
        gz, gm = grad_loss(z, m)
        norm = block_norms(gz, gm)[block]
        if bound == "paper":
            den = gradient_bound(z, m, alpha, lam, t)
        else:
            n, k = z.shape[0], m.shape[0]
            dmax = (z[:, None, :] - m[None, :, :]).pow(2).sum(-1).max().sqrt()
            r = torch.clamp(dmax, max=math.sqrt(alpha))
            gain = (alpha + 1.0) * r / (alpha + r * r)
            scale = {"z_i": 1.0 / n, "Z": 1.0 / math.sqrt(n), "m_j": 1.0, "m": 1.0,
                     "joint": math.sqrt(1.0 + 1.0 / n)}[block]
            den = gain * scale * (1.0 + 2.0 * lam) * stability_factor(form, lam, n) * determinacy_factor(form, k, t)
        return torch.log(norm) - torch.log(den)

    return log_ratio


def adversarial_search(n: int, k: int, alpha: float, lam: float, t: float, form: str, block: str = "z_i",
                       bound: str = "paper", d: int = 10, restarts: int = 16, steps: int = 150,
                       lr: float = 0.03, seed: int = 0) -> dict:
    """Gradient ascent on log(||∂L/∂block|| / bound) over z and m, restarts run in parallel.

    bound="paper" attacks M; bound="corrected" attacks Theorem 1′. The positions are z = e^ρ u,
    m = e^ρ v (a learnable overall scale ρ per restart). Starts: random centroids at a random
    scale, embeddings around random centroids with a random spread. The ascent uses autograd
    through :func:`decs.stability.instability_loss` (``torch.func``; t a constant); the best point
    is re-evaluated with :func:`bound_report`. Returns the best ratio, its z and m, and the ratio
    of every restart.

    Used in :doc:`/book/theorem1`.
    """
    gen = torch.Generator().manual_seed(seed)
    obj = _adversary_objective(alpha, lam, check_t(t), form, block, bound)
    step_fn, value_fn = vmap(grad(obj, argnums=(0, 1, 2))), vmap(obj)
    rho = torch.empty(restarts, dtype=DTYPE).uniform_(-2.0, 2.0, generator=gen) + 0.5 * math.log(alpha)
    v = torch.randn(restarts, k, d, generator=gen, dtype=DTYPE)
    lab = torch.randint(k, (restarts, n), generator=gen)
    spread = torch.exp(torch.empty(restarts, 1, 1, dtype=DTYPE).uniform_(-4.0, 1.0, generator=gen))
    u = torch.gather(v, 1, lab[..., None].expand(restarts, n, d)) + spread * torch.randn(
        restarts, n, d, generator=gen, dtype=DTYPE)
    params = [p.requires_grad_(True) for p in (rho, u, v)]
    opt = torch.optim.Adam(params, lr=lr)
    best = torch.full((restarts,), -math.inf, dtype=DTYPE)
    best_zm = [None] * restarts
    for _ in range(steps + 1):
        with torch.no_grad():
            val = torch.nan_to_num(value_fn(*params), nan=-math.inf)
            better = val > best
            if better.any():
                s = torch.exp(params[0])
                for i in torch.nonzero(better).flatten().tolist():
                    best_zm[i] = (s[i] * params[1][i], s[i] * params[2][i])
            best = torch.maximum(best, val)
            grads = step_fn(*params)
        for p, g in zip(params, grads):
            p.grad = -torch.nan_to_num(g, nan=0.0, posinf=0.0, neginf=0.0)
        opt.step()
    i = int(torch.argmax(best))
    z, m = (x.detach().clone() for x in best_zm[i])
    report = bound_report(z, m, alpha, lam, t, form)
    key = "ratio_M" if bound == "paper" else "ratio_corrected"
    return {"ratio": report[key][block], "z": z, "m": m, "report": report,
            "restart_ratios": [float(math.exp(b)) for b in best.tolist()]}


# ----------------------------------------------------------------------------- the encoder's part
def linear_encoder_gradient(w: torch.Tensor, x: torch.Tensor, m, alpha: float, lam: float, t: float, form: str):
    """For the linear encoder z = x Wᵀ: (∂L/∂W, ∂L/∂m, ratio ||∂L/∂W||/M, the Jacobian's norm).

    ∂L/∂W = (∂L/∂Z)ᵀ x, and the Jacobian of W ↦ Z has operator norm ||x||_2 (the largest
    singular value of x), so ||∂L/∂W||_F ≤ ||x||_2 · ||∂L/∂Z||_F (Corollary in :doc:`/book/theorem1`).
    """
    w, x, m = as_f64(w, x, m)
    w = w.clone().requires_grad_(True)
    m = m.clone().requires_grad_(True)
    z = x @ w.T
    loss = instability_loss(z, m, alpha, lam, t, form)
    gw, gm, gz = torch.autograd.grad(loss, (w, m, z))
    big_m = float(gradient_bound(z.detach(), m.detach(), alpha, lam, t))
    return {"grad_w": gw, "grad_m": gm, "ratio": float(gw.norm() / big_m), "norm_w": float(gw.norm()),
            "norm_z": float(gz.norm()), "jacobian_norm": float(torch.linalg.matrix_norm(x, ord=2)),
            "M": big_m}


def encoder_jacobian_check(encoder: torch.nn.Module, x: torch.Tensor, m, alpha: float, lam: float, t: float,
                           form: str) -> dict:
    """||∂L/∂θ|| against σ_max(J)·||∂L/∂Z||_F for a small encoder (J = ∂vec(Z)/∂θ, built
    exactly with torch.func.jacrev; only for small networks).

    Used in :doc:`/book/theorem1`.
    """
    encoder = encoder.to(DTYPE)
    x, m = as_f64(x, m)
    names = [n for n, _ in encoder.named_parameters()]
    params = {n: p.detach() for n, p in encoder.named_parameters()}

    def embed(p):
        return functional_call(encoder, p, (x,))

    z = embed(params)
    jac = jacrev(embed)(params)
    jmat = torch.cat([jac[nm].reshape(z.numel(), -1) for nm in names], dim=1)
    _, gz, _ = autograd_gradients(z, m, alpha, lam, t, form)
    p_leaf = {n: v.clone().requires_grad_(True) for n, v in params.items()}
    loss = instability_loss(embed(p_leaf), m, alpha, lam, t, form)
    gtheta = torch.autograd.grad(loss, list(p_leaf.values()))
    norm_theta = float(torch.sqrt(sum(g.pow(2).sum() for g in gtheta)))
    sigma = float(torch.linalg.matrix_norm(jmat, ord=2))
    return {"norm_theta": norm_theta, "jacobian_norm": sigma, "norm_Z": float(gz.norm()),
            "bound": sigma * float(gz.norm()), "M": float(gradient_bound(z.detach(), m, alpha, lam, t)),
            "chain_rule_check": float((jmat.T @ gz.reshape(-1) - torch.cat([g.reshape(-1) for g in gtheta])).abs().max())}


def adversarial_search_otsu(n: int, k: int, alpha: float, lam: float, form: str, block: str = "m_j",
                            d: int = 10, restarts: int = 4, steps: int = 200, lr: float = 0.03,
                            bins: int = 1000, seed: int = 0) -> dict:
    """Like :func:`adversarial_search` against M, but with t = Otsu's threshold of the current q,
    recomputed (and detached) at every step, exactly as in training. Sequential restarts.

    Used in :doc:`/book/theorem1`.
    """
    gen = torch.Generator().manual_seed(seed)
    best = {"ratio": -1.0}
    for _ in range(restarts):
        scale = math.exp(torch.empty(1).uniform_(-2.0, 2.0, generator=gen).item()) * math.sqrt(alpha)
        m = (torch.randn(k, d, generator=gen, dtype=DTYPE) * scale).requires_grad_(True)
        spread = math.exp(torch.empty(1).uniform_(-4.0, 1.0, generator=gen).item())
        z = (m.detach()[torch.randint(k, (n,), generator=gen)]
             + spread * scale * torch.randn(n, d, generator=gen, dtype=DTYPE)).requires_grad_(True)
        opt = torch.optim.Adam([z, m], lr=lr * scale)
        for _ in range(steps + 1):
            t = float(otsu_threshold(soft_assign(z.detach(), m.detach(), alpha), bins))
            _, gz, gm = autograd_gradients(z, m, alpha, lam, t, form, create_graph=True)
            log_ratio = torch.log(block_norms(gz, gm)[block]) - torch.log(gradient_bound(z, m, alpha, lam, t))
            if float(log_ratio.detach()) > math.log(max(best["ratio"], 1e-300)):
                best = {"ratio": float(log_ratio.detach().exp()), "z": z.detach().clone(),
                        "m": m.detach().clone(), "t": t}
            opt.zero_grad()
            (-log_ratio).backward()
            opt.step()
    best["report"] = bound_report(best["z"], best["m"], alpha, lam, best["t"], form)
    return best
