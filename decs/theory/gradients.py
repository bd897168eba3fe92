"""The gradients of L_c, the paper's bound M, the corrected bound and the exact envelope for one
embedding: the analysis of Theorem 1 in :doc:`/book/theorem1`.

The paper states ``||∇L_c|| ≤ M = 2(1+2λ)(α+1)/(4nkt²α) · max_ij ||z_i − m_j||`` without
saying which gradient it bounds. This module computes each candidate — with respect to one
embedding z_i, all embeddings Z, one centroid m_j, all centroids (the encoder's parameters are
in ``decs.theory.search``) — both by the hand-derived formulas of the chapter and by
autograd, and compares them with M and with the bound derived in the chapter
(:func:`corrected_bound`).

Conventions (as in training):

* The threshold t is a constant: the gradient does not flow through Otsu's threshold
  (the training code detaches it). Every function here takes t as a number in (0, 1).
* L_c is only piecewise differentiable: the linear determinacy has a kink at q = t (the
  quadratic one is C¹ there). The gradient used is the one autograd returns — the branch
  ``q < t`` for q < t, the branch ``q ≥ t`` otherwise — and the corrected bound holds for both
  one-sided branches, hence for every element of the Clarke generalised gradient.
* Work in float64 (the inputs are converted, :func:`as_f64`).
"""
from __future__ import annotations

import math

import numpy as np
import torch

from ..stability import determinacy, gradient_bound, instability_loss, sample_stability, soft_assign

DTYPE = torch.float64
FORM_DETERMINACY = {"paper": "quadratic", "code": "linear"}
#: The gradients whose norm is compared with M, by name. ``z_i`` is the largest norm of one
#: embedding's gradient, ``Z`` all embeddings (Frobenius norm), ``m_j`` the largest of one
#: centroid, ``m`` all centroids, ``joint`` embeddings and centroids together.
BLOCKS = ("z_i", "Z", "m_j", "m", "joint")


def as_f64(*xs):
    """The arguments as float64 tensors (a list), the precision of every check.

    Used in :doc:`/book/theorem1`.
    """
    return [torch.as_tensor(x).to(DTYPE) for x in xs]


def check_t(t: float) -> float:
    """t as a float, after checking that it is a constant strictly between 0 and 1.

    Used in :doc:`/book/theorem1`.
    """
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
    t = check_t(t)
    if not create_graph:
        z, m = (x.detach().clone().requires_grad_(True) for x in as_f64(z, m))
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
    t = check_t(t)
    z, m = as_f64(z, m)
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
    """The norms of the five gradient blocks of :data:`~decs.theory.gradients.BLOCKS` (0-d tensors,
    differentiable).

    Used in :doc:`/book/theorem1`.
    """
    gz2, gm2 = gz.pow(2).sum(), gm.pow(2).sum()
    return {"z_i": gz.norm(dim=1).max(), "Z": gz2.sqrt(), "m_j": gm.norm(dim=1).max(), "m": gm2.sqrt(),
            "joint": (gz2 + gm2).sqrt()}


def paper_bound(z, m, alpha: float, lam: float, t: float) -> torch.Tensor:
    """M of Theorem 1 as stated (:func:`decs.stability.gradient_bound`), in float64.

    Used in :doc:`/book/theorem1`.
    """
    z, m = as_f64(z, m)
    return gradient_bound(z, m, alpha, lam, check_t(t))


def ratios(z, m, alpha: float, lam: float, t: float, form: str) -> dict[str, float]:
    """||∇_block L_c|| / M for every block of :data:`~decs.theory.gradients.BLOCKS` (autograd
    gradients).

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
    t = check_t(t)
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
    """The corrected bound for every block of :data:`~decs.theory.gradients.BLOCKS` (Theorem 1′
    of :doc:`/book/theorem1`):

        ||∂L/∂z_i|| ≤ B/n,  ||∂L/∂Z||_F ≤ B/√n,  ||∂L/∂m_j|| ≤ ||∂L/∂m||_F ≤ B,
        ||(∂L/∂Z, ∂L/∂m)||_F ≤ B·√(1 + 1/n),   B = :func:`corrected_constant`.
    """
    z, m = as_f64(z, m)
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
    t = check_t(t)
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
    t = check_t(t)
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
    t = check_t(t)
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
