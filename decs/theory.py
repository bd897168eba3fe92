"""Theorem 1 of the paper, checked: the gradients of L_c, the paper's bound M, a corrected bound.

The paper states ``||∇L_c|| ≤ M = 2(1+2λ)(α+1)/(4nkt²α) · max_ij ||z_i − m_j||`` without
saying which gradient it bounds. This module computes each candidate — with respect to one
embedding z_i, all embeddings Z, one centroid m_j, all centroids, and the encoder's parameters —
both by the hand-derived formulas of the chapter and by autograd, and compares them with M and
with the bound derived in the chapter (:func:`corrected_bound`). Everything is derived, and
every number checked, in :doc:`/book/theorem1`.

Conventions (as in training):

* The threshold t is a constant: the gradient does not flow through Otsu's threshold
  (the training code detaches it). Every function here takes t as a number in (0, 1).
* L_c is only piecewise differentiable: the linear determinacy has a kink at q = t (the
  quadratic one is C¹ there). The gradient used is the one autograd returns — the branch
  ``q < t`` for q < t, the branch ``q ≥ t`` otherwise — and the corrected bound holds for both
  one-sided branches, hence for every element of the Clarke generalised gradient.
* Work in float64 (the inputs are converted).
"""
from __future__ import annotations

import json
import math
import time
from dataclasses import dataclass

import numpy as np
import torch

from .stability import (determinacy, gradient_bound, instability_loss, sample_stability, soft_assign)

DTYPE = torch.float64
FORM_DETERMINACY = {"paper": "quadratic", "code": "linear"}
#: The gradients whose norm is compared with M, by name. ``z_i`` is the largest norm of one
#: embedding's gradient, ``Z`` all embeddings (Frobenius norm), ``m_j`` the largest of one
#: centroid, ``m`` all centroids, ``joint`` embeddings and centroids together.
BLOCKS = ("z_i", "Z", "m_j", "m", "joint")


def _f64(*xs):
    return [torch.as_tensor(x).to(DTYPE) for x in xs]


def _check_t(t: float) -> float:
    t = float(t)
    if not 0.0 < t < 1.0:
        raise ValueError(f"t must be a constant strictly between 0 and 1, got {t}.")
    return t


# ----------------------------------------------------------------------------- gradients
def autograd_gradients(z, m, alpha: float, lam: float, t: float, form: str, create_graph: bool = False):
    """(L, ∂L/∂Z, ∂L/∂m) by autograd through :func:`decs.stability.instability_loss`, t constant.

    With ``create_graph=True`` the gradients are differentiable again (for the adversarial
    search). z and m must then be float64 leaves that require grad; otherwise they are copied.

    Used in :doc:`/book/theorem1`.
    """
    t = _check_t(t)
    if not create_graph:
        z, m = (x.detach().clone().requires_grad_(True) for x in _f64(z, m))
    loss = instability_loss(z, m, alpha, lam, t, form)
    gz, gm = torch.autograd.grad(loss, (z, m), create_graph=create_graph)
    return (loss if create_graph else loss.detach()), gz, gm


def determinacy_derivative(q: torch.Tensor, t: float, kind: str) -> torch.Tensor:
    """f'(q), the branch autograd takes: q < t the low branch, q ≥ t the high one.

    linear: −1/t and 1/(1−t); quadratic: −2(t−q)/t² and 2(q−t)/(1−t)².

    Used in :doc:`/book/theorem1`.
    """
    if kind == "linear":
        return torch.where(q < t, torch.full_like(q, -1.0 / t), torch.full_like(q, 1.0 / (1.0 - t)))
    return torch.where(q < t, -2.0 * (t - q) / t**2, 2.0 * (q - t) / (1.0 - t) ** 2)


def analytic_gradients(z, m, alpha: float, lam: float, t: float, form: str):
    """(∂L/∂Z, ∂L/∂m) from the hand-derived formulas of :doc:`/book/theorem1`.

    With β_ij = ∂L/∂q_ij = a_i · w_ij · f'(q_ij), where
        a_i  = ∂L/∂s_i  = −1/n (paper form)  or  −(1 + 2(s_i − s̄))/n (code form),
        w_ij = ∂s_i/∂f_ij = (1 − 2λ(f_ij − f̄_i))/k,
    and g_ij = ∇_{z_i} log K_ij = −(α+1)(z_i − m_j)/(α + ||z_i − m_j||²),
        ∂L/∂z_i = Σ_j c_ij,   ∂L/∂m_j = −Σ_i c_ij,   c_ij = q_ij (β_ij − Σ_l q_il β_il) g_ij.
    """
    t = _check_t(t)
    z, m = _f64(z, m)
    n, k = z.shape[0], m.shape[0]
    kind = FORM_DETERMINACY[form]
    q = soft_assign(z, m, alpha)
    f = determinacy(q, t, kind)
    if form == "paper":
        a = torch.full((n,), -1.0 / n, dtype=DTYPE)
    else:
        s = sample_stability(f, lam)
        a = -(1.0 + 2.0 * (s - s.mean())) / n
    w = (1.0 - 2.0 * lam * (f - f.mean(dim=1, keepdim=True))) / k
    beta = a[:, None] * w * determinacy_derivative(q, t, kind)
    diff = z[:, None, :] - m[None, :, :]
    g = -(alpha + 1.0) * diff / (alpha + diff.pow(2).sum(-1, keepdim=True))
    coef = q * (beta - (q * beta).sum(dim=1, keepdim=True))
    c = coef[..., None] * g
    return c.sum(dim=1), -c.sum(dim=0)


def block_norms(gz: torch.Tensor, gm: torch.Tensor) -> dict[str, torch.Tensor]:
    """The norms of the five gradient blocks of :data:`BLOCKS` (0-d tensors, differentiable).

    Used in :doc:`/book/theorem1`.
    """
    gz2, gm2 = gz.pow(2).sum(), gm.pow(2).sum()
    return {"z_i": gz.norm(dim=1).max(), "Z": gz2.sqrt(), "m_j": gm.norm(dim=1).max(), "m": gm2.sqrt(),
            "joint": (gz2 + gm2).sqrt()}


def paper_bound(z, m, alpha: float, lam: float, t: float) -> torch.Tensor:
    """M of Theorem 1 as stated (:func:`decs.stability.gradient_bound`), in float64.

    Used in :doc:`/book/theorem1`.
    """
    z, m = _f64(z, m)
    return gradient_bound(z, m, alpha, lam, _check_t(t))


def ratios(z, m, alpha: float, lam: float, t: float, form: str) -> dict[str, float]:
    """||∇_block L_c|| / M for every block of :data:`BLOCKS` (autograd gradients).

    Used in :doc:`/book/theorem1`.
    """
    _, gz, gm = autograd_gradients(z, m, alpha, lam, t, form)
    big_m = paper_bound(z, m, alpha, lam, t)
    return {b: float(v / big_m) for b, v in block_norms(gz, gm).items()}


# ------------------------------------------------------------------------ the corrected bound
def kernel_gain(dmax: float, alpha: float) -> float:
    """Γ_α(D) = max over r ≤ D of ||∇_z log K|| = (α+1) r / (α + r²), attained at r = min(D, √α).

    At most (α+1)D/α (the factor the paper uses) and at most (α+1)/(2√α) (whatever D is).

    Used in :doc:`/book/theorem1`.
    """
    r = min(float(dmax), math.sqrt(alpha))
    return (alpha + 1.0) * r / (alpha + r * r)


def stability_factor(form: str, lam: float, n: int) -> float:
    """A ≥ abs(n ∂L/∂s_i): 1 for the paper form; 1 + 2(1 − 1/n)(1 − s_lo) for the code form,

    where s_lo = −(λ−1)₊²/(4λ) ≤ s_i ≤ 1 is the range of the stability (Bhatia–Davis:
    var f ≤ mean f (1 − mean f) for f in [0, 1]).

    Used in :doc:`/book/theorem1`.
    """
    if form == "paper":
        return 1.0
    s_lo = -((lam - 1.0) ** 2) / (4.0 * lam) if lam > 1.0 else 0.0
    return 1.0 + 2.0 * (1.0 - 1.0 / n) * (1.0 - s_lo)


def determinacy_factor(form: str, k: int, t: float) -> float:
    """κ_f(k, t) ≥ (n/(A(1+2λ))) · Σ_j q_j·abs(β_j − β̄)  (chapter, Lemma "determinacy factor").

    quadratic (paper form): min(1, 4/(kt), 2/(k·min(t, 1−t)))
    linear (code form):     min(2, 2/(kt), 1/(k·min(t, 1−t)))

    Used in :doc:`/book/theorem1`.
    """
    t = _check_t(t)
    tt = min(t, 1.0 - t)
    if form == "paper":
        return min(1.0, 4.0 / (k * t), 2.0 / (k * tt))
    return min(2.0, 2.0 / (k * t), 1.0 / (k * tt))


def corrected_constant(n: int, k: int, alpha: float, lam: float, t: float, form: str, dmax: float) -> float:
    """B = (1+2λ) · A · κ_f(k, t) · Γ_α(D), the constant of the corrected theorem.

    Used in :doc:`/book/theorem1`.
    """
    return ((1.0 + 2.0 * lam) * stability_factor(form, lam, n) * determinacy_factor(form, k, t)
            * kernel_gain(dmax, alpha))


def corrected_bound(z, m, alpha: float, lam: float, t: float, form: str) -> dict[str, float]:
    """The corrected bound for every block of :data:`BLOCKS` (Theorem 1′ of :doc:`/book/theorem1`):

        ||∂L/∂z_i|| ≤ B/n,  ||∂L/∂Z||_F ≤ B/√n,  ||∂L/∂m_j|| ≤ ||∂L/∂m||_F ≤ B,
        ||(∂L/∂Z, ∂L/∂m)||_F ≤ B·√(1 + 1/n),   B = :func:`corrected_constant`.
    """
    z, m = _f64(z, m)
    n, k = z.shape[0], m.shape[0]
    dmax = float(torch.cdist(z, m).max()) if n and k else 0.0
    b = corrected_constant(n, k, alpha, lam, t, form, dmax)
    return {"z_i": b / n, "Z": b / math.sqrt(n), "m_j": b, "m": b, "joint": b * math.sqrt(1.0 + 1.0 / n)}


def paper_bound_holds_for_z(k: int, lam: float, t: float, form: str, n: int = 2) -> bool:
    """Sufficient condition (proved in the chapter) for ||∂L/∂z_i|| ≤ M: 2kt² · A · κ_f(k, t) ≤ 1.

    Independent of α, of the positions and (paper form) of n; for the code form pass n
    (A grows with n towards its limit; n=2 is NOT the worst case — use a large n to be safe).

    Used in :doc:`/book/theorem1`.
    """
    return 2.0 * k * t * t * stability_factor(form, lam, n) * determinacy_factor(form, k, t) <= 1.0


def bound_report(z, m, alpha: float, lam: float, t: float, form: str) -> dict:
    """Gradient norms, M, the corrected bounds and both ratios for one configuration.

    Used in :doc:`/book/theorem1`.
    """
    _, gz, gm = autograd_gradients(z, m, alpha, lam, t, form)
    norms = {b: float(v) for b, v in block_norms(gz, gm).items()}
    big_m = float(paper_bound(z, m, alpha, lam, t))
    corr = corrected_bound(z, m, alpha, lam, t, form)
    return {"norm": norms, "M": big_m, "corrected": corr,
            "ratio_M": {b: norms[b] / big_m for b in BLOCKS},
            "ratio_corrected": {b: norms[b] / corr[b] for b in BLOCKS}}


# ---------------------------------------------------------- the exact envelope for one embedding
def z_ratio_envelope(q: torch.Tensor, t: float, lam: float, form: str, n: int | None = None) -> torch.Tensor:
    """ρ(q) ≥ ||∂L/∂z_i|| / M for a sample whose assignment row is q (the last dimension, k).

        ρ(q) = 2t²/(1+2λ) · A(q) · Σ_j q_j · abs(b_j − Σ_l q_l b_l),   b_j = (1 − 2λ(f_j − f̄)) f'(q_j),

    with A = 1 (paper form) or, for the code form, the largest abs(1 + 2(1−1/n)(s(q) − s̄')) over
    s̄' in [s_lo, 1] (n=None: n → ∞). It does not depend on α or on the positions, and for the
    paper form its supremum over q is the supremum of the ratio over all configurations
    (approached as α → ∞ with the embedding-centroid distances ≪ √α). See :doc:`/book/theorem1`.
    """
    t = _check_t(t)
    kind = FORM_DETERMINACY[form]
    shape = q.shape
    q2 = q.reshape(-1, shape[-1])
    f = determinacy(q2, t, kind)
    b = (1.0 - 2.0 * lam * (f - f.mean(dim=1, keepdim=True))) * determinacy_derivative(q2, t, kind)
    mad = (q2 * (b - (q2 * b).sum(dim=1, keepdim=True)).abs()).sum(dim=1)
    if form == "paper":
        a = torch.ones_like(mad)
    else:
        s = sample_stability(f, lam)
        s_lo = -((lam - 1.0) ** 2) / (4.0 * lam) if lam > 1.0 else 0.0
        c = 1.0 if n is None else 1.0 - 1.0 / n
        a = torch.maximum((1.0 + 2.0 * c * (s - s_lo)).abs(), (1.0 + 2.0 * c * (s - 1.0)).abs())
    return (2.0 * t * t / (1.0 + 2.0 * lam) * a * mad).reshape(shape[:-1])


def sup_z_envelope(k: int, t: float, lam: float, form: str, restarts: int = 256, steps: int = 300,
                   seed: int = 0) -> tuple[float, np.ndarray]:
    """max over the simplex of :func:`z_ratio_envelope` (gradient ascent on softmax logits,
    many random and structured starts). Returns (value, maximising q).

    Used in :doc:`/book/theorem1`.
    """
    gen = torch.Generator().manual_seed(seed)
    logits = torch.randn(restarts, k, generator=gen, dtype=DTYPE) * torch.logspace(-1, 1.3, restarts, dtype=DTYPE)[:, None]
    # structured starts: one relation at q_hi, the others equal (the optimum is usually of this kind)
    hi = torch.linspace(0.02, 0.995, restarts // 2, dtype=DTYPE)
    lo = (1.0 - hi) / (k - 1)
    logits[: restarts // 2] = torch.log(torch.cat([hi[:, None], lo[:, None].expand(-1, k - 1)], dim=1))
    logits[: restarts // 2, 1:] += 1e-3 * torch.randn(restarts // 2, k - 1, generator=gen, dtype=DTYPE)
    logits.requires_grad_(True)
    opt = torch.optim.Adam([logits], lr=0.05)
    best_v, best_q = -1.0, None
    for _ in range(steps + 1):
        q = torch.softmax(logits, dim=1)
        v = z_ratio_envelope(q, t, lam, form)
        i = int(torch.argmax(v))
        if float(v[i].detach()) > best_v:
            best_v, best_q = float(v[i].detach()), q[i].detach().numpy().copy()
        opt.zero_grad()
        (-v.sum()).backward()
        opt.step()
    return best_v, best_q


def two_centroid_sup(alpha: float, lam: float, t: float, grid: int = 400, rmax: float | None = None
                     ) -> tuple[float, tuple[float, float]]:
    """The exact supremum of ||∂L/∂z_i|| / M for k = 2, paper form, at a fixed α.

    With k = 2 the gradient is q_1 q_2 (β_1 − β_2)(g_1 − g_2); its norm is largest when z_i lies
    on the segment between the centroids (g_1, g_2 antiparallel), so only the two distances
    r_1 ≤ r_2 = D matter: a 2-D search (log grid, then a finer grid around the best point).
    Other samples are copies of z_i (they change nothing but could only increase D).
    Returns (sup, (r_1, r_2)).

    Used in :doc:`/book/theorem1`.
    """
    t = _check_t(t)
    rmax = rmax or max(50.0, 30.0 * math.sqrt(alpha))

    def ratio(r1, r2):
        k1 = -(alpha + 1.0) / 2.0 * torch.log1p(r1**2 / alpha)
        k2 = -(alpha + 1.0) / 2.0 * torch.log1p(r2**2 / alpha)
        q1 = torch.sigmoid(k1 - k2)
        q = torch.stack([q1, 1.0 - q1], -1)
        f = determinacy(q.reshape(-1, 2), t, "quadratic").reshape(q.shape)
        w = (1.0 - 2.0 * lam * (f - f.mean(-1, keepdim=True))) / 2.0
        b = -w * determinacy_derivative(q, t, "quadratic")   # n·β_j
        gam = lambda r: (alpha + 1.0) * r / (alpha + r**2)
        grad = q1 * (1.0 - q1) * (b[..., 0] - b[..., 1]).abs() * (gam(r1) + gam(r2))
        big_m = 2.0 * (1.0 + 2.0 * lam) * (alpha + 1.0) / (4.0 * 2.0 * t * t * alpha) * torch.maximum(r1, r2)
        return grad / big_m

    lo, hi = math.log(1e-4), math.log(rmax)
    best, arg = -1.0, (0.0, 0.0)
    for _ in range(3):  # zoom in three times
        r = torch.exp(torch.linspace(lo, hi, grid, dtype=DTYPE))
        frac = torch.linspace(0.0, 1.0, grid, dtype=DTYPE)
        r2, fr = torch.meshgrid(r, frac, indexing="ij")
        v = ratio(fr * r2, r2)
        i = int(torch.argmax(torch.nan_to_num(v, nan=-1.0)))
        if float(v.reshape(-1)[i]) > best:
            best = float(v.reshape(-1)[i])
            arg = (float((fr * r2).reshape(-1)[i]), float(r2.reshape(-1)[i]))
        c = math.log(arg[1])
        width = (hi - lo) / 8
        lo, hi = c - width, c + width
    return best, arg


def two_centroid_configuration(r1: float, r2: float, d: int = 10, n: int = 2) -> tuple[torch.Tensor, torch.Tensor]:
    """z (n copies of the origin) and m (two centroids on the first axis at −r_1 and +r_2).

    Used in :doc:`/book/theorem1`.
    """
    z = torch.zeros(n, d, dtype=DTYPE)
    m = torch.zeros(2, d, dtype=DTYPE)
    m[0, 0], m[1, 0] = -r1, r2
    return z, m


def gaussian_limit_configuration(q, t: float, lam: float, form: str = "paper", alpha: float = 1e8,
                                 dist: float = 300.0, d: int = 10, n: int = 2):
    """A configuration whose ratio ||∂L/∂z_0|| / M comes within about 0.1 % of ρ(q).

    z_0 at the origin; centroid j on the first axis at σ_j r_j, with σ_j the sign of
    (β_j − β̄) (so that all terms of the gradient point the same way) and r_j ≈ dist chosen so
    that the Student-t assignment of z_0 is exactly q. Needs dist² ≪ α (then ∇ log K is linear
    in the distance) and dist² ≫ log(q_max/q_min) (then all distances are ≈ D). The other n−1
    samples are copies of z_0 (paper form: they change nothing).

    Used in :doc:`/book/theorem1`.
    """
    q = torch.as_tensor(q, dtype=DTYPE)
    k = q.shape[0]
    kind = FORM_DETERMINACY[form]
    f = determinacy(q[None], t, kind)[0]
    b = (1.0 - 2.0 * lam * (f - f.mean())) * determinacy_derivative(q, t, kind)
    sign = torch.sign(-(b - (q * b).sum()))   # β = −b/(nk) for the paper form
    sign[sign == 0] = 1.0
    # (1 + r_j²/α) = C · q_j^(−2/(α+1)); C fixed so that the largest q has r = dist
    expo = torch.pow(q / q.max(), -2.0 / (alpha + 1.0))
    r = torch.sqrt(alpha * ((1.0 + dist**2 / alpha) * expo - 1.0))
    z = torch.zeros(n, d, dtype=DTYPE)
    m = torch.zeros(k, d, dtype=DTYPE)
    m[:, 0] = sign * r
    return z, m


def constrained_z_envelope(k: int, t: float, lam: float, form: str, alpha: float, dists=None,
                           restarts: int = 32, steps: int = 150, seed: int = 0) -> float:
    """An upper bound U(α) on ||∂L/∂z_i|| / M over all configurations at this α (any n).

    If every distance is ≤ D, then ||∇ log K|| ≤ Γ_α(D) and q_max/q_min ≤ (1 + D²/α)^((α+1)/2), so

        ratio ≤ Γ_α(D)·α/((α+1)D) · max{ρ(q) : q_max/q_min ≤ (1+D²/α)^((α+1)/2)}.

    The first factor decreases in D and the constraint set grows with D, so on a grid
    D_0 < D_1 < … the value  max_g  gain(D_g) · ρmax(D_{g+1})  bounds every D in between
    (below D_0: gain ≤ 1; the grid ends where gain = 1/2000). The inner maxima are found by
    ascent with logits confined to the allowed range (many starts): U is an upper bound up to the
    accuracy of that inner maximisation.

    Used in :doc:`/book/theorem1`.
    """
    t = _check_t(t)
    if dists is None:
        dists = np.sqrt(alpha) * np.logspace(-3, 3, 49)
    dists = torch.as_tensor(np.asarray(dists, dtype=float), dtype=DTYPE)
    log_range = (alpha + 1.0) / 2.0 * torch.log1p(dists**2 / alpha)          # log(q_max/q_min) allowed
    r = torch.minimum(dists, torch.tensor(math.sqrt(alpha), dtype=DTYPE))
    gain = (alpha + 1.0) * r / (alpha + r * r) * alpha / ((alpha + 1.0) * dists)  # Γ·α/((α+1)D) ≤ 1
    gen = torch.Generator().manual_seed(seed)
    g = len(dists)
    u = torch.randn(g, restarts, k, generator=gen, dtype=DTYPE) * 2.0
    half = restarts // 2   # structured starts: one relation high, the rest equal
    u[:, :half, 0] = torch.linspace(-6.0, 6.0, half, dtype=DTYPE)
    u[:, :half, 1:] = -6.0
    u.requires_grad_(True)
    opt = torch.optim.Adam([u], lr=0.1)
    best = torch.zeros(g, dtype=DTYPE)
    for _ in range(steps + 1):
        q = torch.softmax(log_range[:, None, None] * torch.sigmoid(u), dim=-1)
        v = z_ratio_envelope(q, t, lam, form)
        best = torch.maximum(best, v.detach().max(dim=1).values)
        opt.zero_grad()
        (-v.sum()).backward()
        opt.step()
    best = torch.cummax(best, dim=0).values          # ρmax(D) is non-decreasing in D
    upper = torch.cat([best[:1], gain[:-1] * best[1:], gain[-1:] * best[-1:]])
    return float(upper.max())


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


#: The geometries and threshold rules of :func:`sample_case`.
REGIMES = ("one-hot", "uniform", "mixed", "kink", "otsu")
#: The admissible range that :func:`sample_case` draws from (n, k, α, λ log-uniform; t uniform).
RANGES = {"n": (2, 100_000), "k": (2, 50), "alpha": (0.01, 100.0), "lam": (0.004, 10.0), "t": (1e-3, 1 - 1e-3)}
#: Largest n·k·d of one random draw (memory); d, then k, are reduced to meet it.
MAX_ELEMENTS = 2_000_000


def sample_case(rng: np.random.Generator, n: int | None = None, k: int | None = None, d: int | None = None,
                form: str | None = None, regime: str | None = None, alpha: float | None = None,
                lam: float | None = None, t: float | None = None, n_max: int | None = None) -> Case:
    """A random admissible input: n, k, α, λ log-uniform over :data:`RANGES`, t uniform on
    (0.001, 0.999) — or at a kink (t equal to one of the q's) or Otsu's t of the batch —, and one
    of five geometries: near-one-hot q (embeddings close to their centroid, centroids far apart),
    near-uniform q (everything within a small ball, or embeddings far from all centroids), mixed
    scales, and the two threshold regimes. Any of n, k, d, form, regime, α, λ, t can be fixed;
    n·k·d is capped at :data:`MAX_ELEMENTS` (d, then k, shrink for very large n).

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
        from .stability import otsu_threshold
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
    from torch.func import grad

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
    from torch.func import grad, vmap

    gen = torch.Generator().manual_seed(seed)
    obj = _adversary_objective(alpha, lam, _check_t(t), form, block, bound)
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
    w, x, m = _f64(w, x, m)
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
    from torch.func import functional_call, jacrev

    encoder = encoder.to(DTYPE)
    x, m = _f64(x, m)
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
    from .stability import otsu_threshold

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


# ------------------------------------------------------------------------------ convergence runs
def blobs(n: int = 512, k: int = 5, dim: int = 20, spread: float = 0.5, seed: int = 0):
    """n points in R^dim from k Gaussian clusters (unit-norm random means × 3, noise ``spread``).

    Used in :doc:`/book/theorem1`.
    """
    g = torch.Generator().manual_seed(seed)
    means = torch.randn(k, dim, generator=g, dtype=DTYPE)
    means = 3.0 * means / means.norm(dim=1, keepdim=True)
    y = torch.arange(n) % k
    return means[y] + spread * torch.randn(n, dim, generator=g, dtype=DTYPE), y


def gd_on_embeddings(z0, m0, alpha: float, lam: float, t: float, form: str, lr: float, steps: int) -> dict:
    """Plain full-batch gradient descent on (Z, m) — the variables of Theorem 1 — at a fixed t.

    Records L, the gradient norm and the local smoothness ||∇L(x') − ∇L(x)|| / ||x' − x|| of
    every step (descent is guaranteed by the descent lemma only while lr < 2/smoothness).

    Used in :doc:`/book/theorem1`.
    """
    z, m = (x.detach().clone() for x in _f64(z0, m0))
    losses, gnorms, smooth = [], [], []
    loss, gz, gm = autograd_gradients(z, m, alpha, lam, t, form)
    for _ in range(steps):
        losses.append(float(loss))
        gnorms.append(float((gz.pow(2).sum() + gm.pow(2).sum()).sqrt()))
        z_new, m_new = z - lr * gz, m - lr * gm
        loss_new, gz_new, gm_new = autograd_gradients(z_new, m_new, alpha, lam, t, form)
        dx = ((z_new - z).pow(2).sum() + (m_new - m).pow(2).sum()).sqrt()
        dg = ((gz_new - gz).pow(2).sum() + (gm_new - gm).pow(2).sum()).sqrt()
        smooth.append(float(dg / dx) if dx > 0 else 0.0)
        z, m, loss, gz, gm = z_new, m_new, loss_new, gz_new, gm_new
    losses.append(float(loss))
    inc = [i for i in range(steps) if losses[i + 1] > losses[i] + 1e-15]
    return {"loss": losses, "grad_norm": gnorms, "smoothness": smooth, "increases": len(inc),
            "monotone": not inc, "lr": lr}


def train_small_encoder(x, k: int, alpha: float, lam: float, form: str, steps: int = 300, lr: float = 1e-3,
                        batch: int = 256, hidden: int = 32, dim: int = 10, seed: int = 0,
                        optimizer: str = "adam", threshold: str = "otsu") -> dict:
    """DECS's clustering stage in miniature: an MLP encoder and the centroids trained on L_c.

    ``optimizer="adam"`` with mini-batches and Otsu's t per batch is the training recipe
    (:func:`decs.train.cluster`); ``optimizer="gd"`` is plain full-batch gradient descent.
    Records the loss of every step (with that step's t) and, every step, the full-data loss at
    the first step's t (a fixed function, so its increases are real increases).

    Used in :doc:`/book/theorem1`.
    """
    from .stability import otsu_threshold

    torch.manual_seed(seed)
    x = torch.as_tensor(x, dtype=DTYPE)
    enc = torch.nn.Sequential(torch.nn.Linear(x.shape[1], hidden), torch.nn.ReLU(),
                              torch.nn.Linear(hidden, dim)).to(DTYPE)
    with torch.no_grad():
        z_all = enc(x)
        g = torch.Generator().manual_seed(seed)
        m = z_all[torch.randperm(len(x), generator=g)[:k]].clone()
    m.requires_grad_(True)
    params = list(enc.parameters()) + [m]
    opt = torch.optim.Adam(params, lr=lr) if optimizer == "adam" else torch.optim.SGD(params, lr=lr)
    t_fixed = float(otsu_threshold(soft_assign(z_all, m.detach(), alpha)))
    g = torch.Generator().manual_seed(seed + 1)
    order = torch.randperm(len(x), generator=g)
    step_loss, full_loss, ts = [], [], []
    for it in range(steps):
        with torch.no_grad():
            full_loss.append(float(instability_loss(enc(x), m, alpha, lam, t_fixed, form)))
        if optimizer == "adam":
            b = it % max(1, len(x) // batch)
            xb = x[order[b * batch:(b + 1) * batch]]
        else:
            xb = x
        zb = enc(xb)
        t = (float(otsu_threshold(soft_assign(zb.detach(), m.detach(), alpha))) if threshold == "otsu"
             else t_fixed)
        loss = instability_loss(zb, m, alpha, lam, t, form)
        opt.zero_grad()
        loss.backward()
        opt.step()
        step_loss.append(float(loss.detach()))
        ts.append(t)
    with torch.no_grad():
        full_loss.append(float(instability_loss(enc(x), m, alpha, lam, t_fixed, form)))
    inc = sum(b > a + 1e-15 for a, b in zip(full_loss, full_loss[1:]))
    return {"step_loss": step_loss, "full_loss": full_loss, "t": ts, "t_fixed": t_fixed,
            "full_increases": int(inc), "step_increases": int(sum(b > a for a, b in zip(step_loss, step_loss[1:])))}


# -------------------------------------------------------------------------------------- the sweep
#: How much :func:`run_sweep` computes under each profile.
SWEEP_SIZES = {
    # random: draws; envelope: k, t, λ grids and optimiser size; alpha_map: α grid for U(α);
    # adversarial: restarts/steps; n_scaling: batch sizes; convergence: steps
    "ci": {"random": 120, "env_k": [2, 10], "env_t": [0.1, 0.3, 0.5, 0.7, 0.9], "env_lam": [0.4],
           "env_restarts": 32, "env_steps": 100, "bisect": 0, "map_k": [10], "map_alpha": [0.1, 1.0, 10.0],
           "adv_cases": 2, "adv_restarts": 4, "adv_steps": 40, "otsu_restarts": 1, "otsu_steps": 40,
           "n_list": [8, 64, 512], "conv_steps": 60},
    "cpu": {"random": 3000, "env_k": [2, 3, 5, 10, 20, 50],
            "env_t": [0.02, 0.05, 0.1, 0.15, 0.2, 0.25, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 0.95, 0.98],
            "env_lam": [0.04, 0.4, 4.0], "env_restarts": 48, "env_steps": 150, "bisect": 7,
            "map_k": [2, 10, 50], "map_alpha": [0.01, 0.1, 0.5, 1.0, 10.0, 100.0],
            "adv_cases": None, "adv_restarts": 12, "adv_steps": 150, "otsu_restarts": 4, "otsu_steps": 300,
            "n_list": [8, 64, 256, 1024, 8192, 65536, 100_000], "conv_steps": 300},
    "paper": {"random": 20000, "env_k": [2, 3, 5, 10, 20, 30, 50],
              "env_t": [round(x, 3) for x in np.linspace(0.02, 0.98, 25)],
              "env_lam": [0.01, 0.04, 0.4, 4.0, 10.0], "env_restarts": 128, "env_steps": 300, "bisect": 10,
              "map_k": [2, 5, 10, 20, 50], "map_alpha": [0.01, 0.03, 0.1, 0.3, 0.5, 1.0, 3.0, 10.0, 30.0, 100.0],
              "adv_cases": None, "adv_restarts": 32, "adv_steps": 300, "otsu_restarts": 8, "otsu_steps": 400,
              "n_list": [2, 8, 64, 256, 1024, 8192, 65536, 100_000], "conv_steps": 1000},
}

#: The adversarial cases as tuples (form, k, α, λ, t). First the authors' constants across t,
#: then the corners of the admissible box (small/large α and λ, k = 2 and 50, t small/½/large).
ADVERSARIAL_CASES = (
    [(f, 10, 0.5, 0.4, t) for f in ("paper", "code") for t in (0.1, 0.3, 0.5, 0.7, 0.9)]
    + [(f, k, a, lam, t) for f in ("paper", "code") for (k, a, lam, t) in
       [(2, 100.0, 0.04, 0.9), (2, 0.01, 0.04, 0.9), (50, 100.0, 0.04, 0.5), (50, 0.01, 4.0, 0.5),
        (2, 100.0, 4.0, 0.05), (50, 1.0, 0.4, 0.05), (10, 100.0, 0.4, 0.5), (10, 10.0, 0.04, 0.7)]]
)


def _r(x, digits: int = 5):
    """Round for JSON (significant digits)."""
    if isinstance(x, dict):
        return {k: _r(v, digits) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_r(v, digits) for v in x]
    if isinstance(x, float):
        return float(f"{x:.{digits}g}") if math.isfinite(x) else None
    return x


def save_counterexample(path, z, m, alpha, lam, t, form, blocks, note, **extra) -> None:
    """Write a configuration and the ratios it gives as .npz (reloaded by tests/test_theory.py).

    Used in :doc:`/book/theorem1`.
    """
    rep = bound_report(z, m, alpha, lam, t, form)
    arrays = {"z": np.asarray(z, dtype=np.float64), "m": np.asarray(m, dtype=np.float64),
              "alpha": np.float64(alpha), "lam": np.float64(lam), "t": np.float64(t), "form": np.str_(form),
              "blocks": np.array(list(blocks)), "note": np.str_(note),
              "ratios_M": np.array([rep["ratio_M"][b] for b in BLOCKS]),
              "ratios_corrected": np.array([rep["ratio_corrected"][b] for b in BLOCKS])}
    arrays.update({k: np.asarray(v) for k, v in extra.items()})
    np.savez(path, **arrays)


def run_sweep(profile: str = "cpu", seed: int = 0, counterexample_dir=None, log=print) -> dict:
    """Every numerical check of :doc:`/book/theorem1`, at the size of ``profile``; returns a dict
    (the JSON the chapter reads). With ``counterexample_dir``, also writes the counterexamples."""
    from pathlib import Path

    from .stability import otsu_threshold

    cfg = SWEEP_SIZES[profile]
    out: dict = {"sizes": cfg}
    rng = np.random.default_rng(seed)
    t_start = time.perf_counter()

    def stamp(name):
        log(f"[{time.perf_counter() - t_start:7.1f}s] {name}")

    # 1. random admissible inputs ---------------------------------------------------------
    cols = ["form", "regime", "n", "k", "d", "alpha", "lam", "t", "max_q_mean", "kink_frac"] + \
        [f"M_{b}" for b in BLOCKS] + [f"C_{b}" for b in BLOCKS] + ["env_z_i"]
    rows = []
    for _ in range(cfg["random"]):
        c = sample_case(rng)
        rep = bound_report(c.z, c.m, c.alpha, c.lam, c.t, c.form)
        q = soft_assign(c.z, c.m, c.alpha)
        env = float(z_ratio_envelope(q, c.t, c.lam, c.form, c.n).max())
        rows.append([c.form, c.regime, c.n, c.k, c.z.shape[1], c.alpha, c.lam, c.t,
                     float(q.max(dim=1).values.mean()), float(((q - c.t).abs() < 1e-9).double().mean())]
                    + [rep["ratio_M"][b] for b in BLOCKS] + [rep["ratio_corrected"][b] for b in BLOCKS] + [env])
    out["random"] = {"columns": cols, "rows": [_r(r, 4) for r in rows]}
    stamp(f"random: {len(rows)} draws")

    # 2. the α-free envelope ρ*(k, t, λ) for one embedding, and the threshold t* where it reaches 1
    env_rows, tstar = [], []
    for form in ("paper", "code"):
        for lam in cfg["env_lam"]:
            for k in cfg["env_k"]:
                vals = {}
                for t in cfg["env_t"]:
                    v, q = sup_z_envelope(k, t, lam, form, cfg["env_restarts"], cfg["env_steps"], seed)
                    vals[t] = v
                    env_rows.append({"form": form, "lam": lam, "k": k, "t": t, "rho": v,
                                     "q_sorted": sorted(q.tolist(), reverse=True)[:3]})
                ts = sorted(vals)
                above = [t for t in ts if vals[t] > 1.0]
                entry = {"form": form, "lam": lam, "k": k, "t_star": None}
                if above and cfg["bisect"]:
                    hi = above[0]
                    below = [t for t in ts if t < hi]
                    lo = below[-1] if below else 1e-3
                    for _ in range(cfg["bisect"]):
                        mid = 0.5 * (lo + hi)
                        if sup_z_envelope(k, mid, lam, form, cfg["env_restarts"], cfg["env_steps"], seed)[0] > 1.0:
                            hi = mid
                        else:
                            lo = mid
                    entry.update(t_star=hi, t_star_lo=lo)
                elif above:
                    entry.update(t_star=above[0])
                tstar.append(entry)
    out["envelope"], out["t_star"] = _r(env_rows), _r(tstar)
    stamp("envelope")

    # 3. the certified α-dependent bound U(α, t) and, for k = 2 (paper form), the exact supremum
    amap = []
    for form in ("paper", "code"):
        for k in cfg["map_k"]:
            for alpha in cfg["map_alpha"]:
                for t in cfg["env_t"]:
                    row = {"form": form, "k": k, "alpha": alpha, "lam": 0.4, "t": t,
                           "U": constrained_z_envelope(k, t, 0.4, form, alpha, seed=seed)}
                    if k == 2 and form == "paper":
                        row["exact_k2"], row["r12"] = two_centroid_sup(alpha, 0.4, t)
                    amap.append(row)
    out["alpha_map"] = _r(amap)
    stamp("alpha map")

    # 4. adversarial search (lower bounds) against M and against the corrected bound
    adv = []
    cases = ADVERSARIAL_CASES if cfg["adv_cases"] is None else ADVERSARIAL_CASES[: cfg["adv_cases"]]
    best_code_z = None
    for (form, k, alpha, lam, t) in cases:
        for bound, blocks in (("paper", ("z_i", "m_j")), ("corrected", ("z_i", "m_j"))):
            for block in blocks:
                res = adversarial_search(8, k, alpha, lam, t, form, block, bound, restarts=cfg["adv_restarts"],
                                         steps=cfg["adv_steps"], seed=seed)
                rep = res["report"]
                adv.append({"form": form, "k": k, "alpha": alpha, "lam": lam, "t": t, "n": 8, "block": block,
                            "bound": bound, "ratio": res["ratio"], "ratio_M": rep["ratio_M"],
                            "ratio_corrected": rep["ratio_corrected"],
                            "envelope_z_i": float(z_ratio_envelope(soft_assign(res["z"], res["m"], alpha), t,
                                                                   lam, form, 8).max())})
                if form == "code" and block == "z_i" and bound == "paper" and (
                        best_code_z is None or res["ratio"] > best_code_z[0]):
                    best_code_z = (res["ratio"], res["z"], res["m"], alpha, lam, t, k)
        stamp(f"adversarial {form} k={k} α={alpha} λ={lam} t={t}")
    out["adversarial"] = _r(adv)

    # 5. the authors' setting with Otsu's t recomputed at every step (centroid gradient), n = 8
    otsu = adversarial_search_otsu(8, 10, 0.5, 0.4, "code", "m_j", restarts=cfg["otsu_restarts"],
                                   steps=cfg["otsu_steps"], lr=0.1, seed=seed + 1)
    out["otsu_authors"] = _r({"n": 8, "k": 10, "alpha": 0.5, "lam": 0.4, "form": "code", "t": otsu["t"],
                              "ratio_M": otsu["report"]["ratio_M"],
                              "ratio_corrected": otsu["report"]["ratio_corrected"]})
    stamp("otsu adversary")

    # 6. batch size: the Otsu configuration replicated, and i.i.d. batches, n up to 10^5
    nscale = []
    z8, m8, t8 = otsu["z"], otsu["m"], otsu["t"]
    for n in cfg["n_list"]:
        if n % 8 == 0:
            z = replicate(z8, n // 8)
            rep = bound_report(z, m8, 0.5, 0.4, t8, "code")
            t_otsu = float(otsu_threshold(soft_assign(z, m8, 0.5)))
            nscale.append({"kind": "replicated", "n": n, "t": t8, "t_otsu_of_batch": t_otsu,
                           "ratio_M": rep["ratio_M"], "ratio_corrected": rep["ratio_corrected"]})
        g = np.random.default_rng(seed + n)
        m = torch.as_tensor(g.normal(size=(10, 10)) * 2.0, dtype=DTYPE)
        z = m[torch.as_tensor(g.integers(10, size=n))] + torch.as_tensor(g.normal(size=(n, 10)), dtype=DTYPE)
        t_iid = float(otsu_threshold(soft_assign(z, m, 0.5)))
        rep = bound_report(z, m, 0.5, 0.4, t_iid, "code")
        nscale.append({"kind": "iid", "n": n, "t": t_iid, "ratio_M": rep["ratio_M"],
                       "ratio_corrected": rep["ratio_corrected"]})
    out["n_scaling"] = _r(nscale)
    stamp("n scaling")

    # 7. the encoder: a linear encoder z = x Wᵀ, x scaled by c and W by 1/c (same z, same M)
    g = np.random.default_rng(seed)
    x0 = torch.as_tensor(g.normal(size=(64, 20)), dtype=DTYPE)
    w0 = torch.as_tensor(g.normal(size=(10, 20)) / math.sqrt(20), dtype=DTYPE)
    z0 = x0 @ w0.T
    m0 = z0[:10].clone() + 0.1
    t0 = float(otsu_threshold(soft_assign(z0, m0, 0.5)))
    enc = []
    for c in (1.0, 10.0, 100.0, 1e3, 1e4):
        r = linear_encoder_gradient(w0 / c, x0 * c, m0, 0.5, 0.4, t0, "code")
        enc.append({"c": c, "t": t0, "ratio_M": r["ratio"], "norm_W": r["norm_w"], "norm_Z": r["norm_z"],
                    "jacobian_norm": r["jacobian_norm"], "M": r["M"]})
    out["encoder"] = _r(enc)
    stamp("encoder")

    # 8. convergence: GD on (Z, m) with steps from the bounds; Adam on a small encoder
    xb, _ = blobs(256, 5, 20, 0.5, seed)
    wb = torch.as_tensor(np.random.default_rng(seed).normal(size=(10, 20)) / math.sqrt(20), dtype=DTYPE)
    zb = xb @ wb.T
    mb = zb[:5].clone()
    conv = {"gd": [], "adam": []}
    for form in ("paper", "code"):
        tb = float(otsu_threshold(soft_assign(zb, mb, 0.5)))
        big_m = float(paper_bound(zb, mb, 0.5, 0.4, tb))
        b_joint = corrected_bound(zb, mb, 0.5, 0.4, tb, form)["joint"]
        for name, lr in (("1/B", 1.0 / b_joint), ("1/M", 1.0 / big_m), ("10/M", 10.0 / big_m),
                         ("100/M", 100.0 / big_m)):
            r = gd_on_embeddings(zb, mb, 0.5, 0.4, tb, form, lr, cfg["conv_steps"])
            conv["gd"].append({"form": form, "step": name, "lr": lr, "t": tb, "M": big_m, "B": b_joint,
                               "loss": r["loss"], "increases": r["increases"],
                               "max_smoothness": max(r["smoothness"])})
        r = train_small_encoder(xb, 5, 0.5, 0.4, form, steps=cfg["conv_steps"], seed=seed)
        conv["adam"].append({"form": form, **r})
    out["convergence"] = _r(conv)
    stamp("convergence")

    # 9. counterexamples, saved as data and reloaded by the tests
    if counterexample_dir is not None:
        cdir = Path(counterexample_dir)
        cdir.mkdir(parents=True, exist_ok=True)
        sup, (r1, r2) = two_centroid_sup(100.0, 0.04, 0.9)
        z, m = two_centroid_configuration(r1, r2)
        save_counterexample(cdir / "z_paper_form.npz", z, m, 100.0, 0.04, 0.9, "paper", ["z_i", "m_j"],
                            "k=2, the exact worst case of the paper form at alpha=100, lambda=0.04, t=0.9")
        if best_code_z is not None and best_code_z[0] > 1.0:
            _, z, m, alpha, lam, t, k = best_code_z
            save_counterexample(cdir / "z_code_form.npz", z, m, alpha, lam, t, "code", ["z_i"],
                                f"code form, adversarial search, k={k}, alpha={alpha}, lambda={lam}, t={t}")
        z = replicate(z8, 256 // 8)
        blocks = [b for b in BLOCKS if bound_report(z, m8, 0.5, 0.4, t8, "code")["ratio_M"][b] > 1.0]
        save_counterexample(cdir / "centroid_authors_setting.npz", z, m8, 0.5, 0.4, t8, "code", blocks,
                            "authors' alpha=0.5, lambda=0.4, code form, batch n=256, t = Otsu's threshold of "
                            "this batch")
        c = 1e3
        r = linear_encoder_gradient(w0 / c, x0 * c, m0, 0.5, 0.4, t0, "code")
        save_counterexample(cdir / "encoder_linear.npz", z0, m0, 0.5, 0.4, t0, "code", [],
                            "linear encoder z = x W^T with x scaled by c=1000 and W by 1/c: same z, m, M",
                            w=(w0 / c).numpy(), x=(x0 * c).numpy(), ratio_encoder=r["ratio"])
        stamp("counterexamples")
    out["seconds"] = round(time.perf_counter() - t_start, 1)
    return out


def write_json(obj: dict, path) -> None:
    """Write ``obj`` as JSON (UTF-8, in the layout of :func:`decs.train.record_json`).

    Used in :doc:`/book/theorem1`.
    """
    from pathlib import Path

    Path(path).parent.mkdir(parents=True, exist_ok=True)
    from .train import record_json

    Path(path).write_text(record_json(obj), encoding="utf-8")
