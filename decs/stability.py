"""Sample stability on centroids: the mathematical core of DECS.

The chain, as the book derives it (symbols as in the book):

    z_i, m_j  --soft_assign-->  q_ij  --determinacy(t)-->  f(q_ij)
              --sample_stability(λ)-->  s_i  --instability_loss-->  L_c

All functions take tensors and return tensors on the inputs' device and dtype, so the
same code runs in float64 for ``gradcheck`` and in float32 on a GPU for training.
"""
from __future__ import annotations

import torch

FORMS = ("code", "paper")
DETERMINACY_FORMS = ("linear", "quadratic")


def _check_alpha(alpha: float) -> None:
    if not alpha > 0:
        raise ValueError(f"alpha (the Student-t degrees of freedom) must be > 0, got {alpha}.")


def squared_distances(z: torch.Tensor, centroids: torch.Tensor) -> torch.Tensor:
    """||z_i - m_j||^2 for every sample i and centroid j, an n×k tensor.

    Written as an explicit difference (not ``torch.cdist``) so that the gradient is
    exact, also where a sample sits on a centroid. Derived in :doc:`/book/05_ensembles_to_centroids`.
    """
    if z.ndim != 2 or centroids.ndim != 2 or z.shape[1] != centroids.shape[1]:
        raise ValueError(
            f"z must be n×d and centroids k×d with the same d; got {tuple(z.shape)} and "
            f"{tuple(centroids.shape)}."
        )
    return (z.unsqueeze(1) - centroids.unsqueeze(0)).pow(2).sum(-1)


def soft_assign(z: torch.Tensor, centroids: torch.Tensor, alpha: float = 0.5) -> torch.Tensor:
    """Co-association probability q_ij of sample i and centroid j (Student-t kernel).

        q_ij = (1 + ||z_i - m_j||^2/α)^(-(α+1)/2) / Σ_j' (1 + ||z_i - m_j'||^2/α)^(-(α+1)/2)

    Computed as a softmax of log-kernels, which is the same number but cannot overflow
    or give 0/0 for far-away samples. DECS uses α = 0.5, DEC α = 1.
    Derived in :doc:`/book/05_ensembles_to_centroids`.
    """
    _check_alpha(alpha)
    d2 = squared_distances(z, centroids)
    log_kernel = -(alpha + 1.0) / 2.0 * torch.log1p(d2 / alpha)
    return torch.softmax(log_kernel, dim=1)


def histogram_bins(values: torch.Tensor, bins: int) -> torch.Tensor:
    """The bin of each value among ``bins`` equal bins on [0, 1], as int64 indices.

    Bin b holds b/bins ≤ v < (b + 1)/bins, compared against float64 edges (the very numbers
    a threshold is reported as); values outside [0, 1] go to the first or last bin. Not
    ``floor(v·bins)``: that rounds some values just below an edge (float64 0.117⁻, float32
    0.005⁻) up into the next bin, so a threshold at a bin's left edge would exceed values of
    its own bin. Shared by :func:`otsu_threshold` and :func:`decs.ensemble.core_halo`.
    """
    values = values.detach().reshape(-1).to(torch.float64)
    edges = torch.arange(bins + 1, device=values.device, dtype=torch.float64) / bins
    return (torch.bucketize(values, edges, right=True) - 1).clamp(0, bins - 1)


def otsu_split(values: torch.Tensor, bins: int = 1000, reduce=None) -> tuple[torch.Tensor, torch.Tensor]:
    """Otsu's split of values in [0, 1]: ``(bin of each value, last bin of the low class)``.

    The values are binned by :func:`histogram_bins`; the low class is bins 0..b for the b that
    maximises the between-class variance ω0·ω1·(μ0 − μ1)² (bin indices as levels, as in the
    authors' code). A value is in the low class exactly when its bin is ≤ b.
    ``reduce``, if given, maps the histogram of counts (int64) to the histogram actually split:
    ``decs.distributed.otsu_threshold`` passes a sum over processes, so every process splits
    the histogram of the whole batch (:doc:`/book/distributed`).
    """
    if bins < 2:
        raise ValueError(f"bins must be at least 2, got {bins}.")
    if values.numel() == 0:
        raise ValueError("Otsu's threshold needs at least one value; got an empty tensor.")
    if not torch.isfinite(values).all():
        raise ValueError("the values contain NaN or inf; check the embeddings and centroids for NaN.")
    index = histogram_bins(values, bins)
    hist = torch.bincount(index, minlength=bins)
    if reduce is not None:
        hist = reduce(hist)
    hist = hist.to(torch.float64)
    p = hist / hist.sum()
    levels = torch.arange(bins, device=p.device, dtype=torch.float64)
    omega0 = torch.cumsum(p, 0)  # weight of the low class when it ends at bin b
    mu_cum = torch.cumsum(levels * p, 0)
    mu_total = mu_cum[-1]
    omega1 = 1.0 - omega0
    valid = (omega0 > 1e-12) & (omega1 > 1e-12)
    # between-class variance; identical to omega0*omega1*(mu0 - mu1)^2
    between = torch.where(
        valid,
        (mu_total * omega0 - mu_cum) ** 2 / (omega0 * omega1).clamp_min(1e-300),
        torch.full_like(omega0, -1.0),
    )
    return index, torch.argmax(between)


def otsu_threshold(q: torch.Tensor, bins: int = 1000, reduce=None) -> torch.Tensor:
    """Otsu's threshold t of all values in ``q``, as the authors' code computes it.

    The values are binned into ``bins`` equal bins on [0, 1]; t is the left edge of the bin
    that maximises the between-class variance ω0·ω1·(μ0 − μ1)² when bins up to and
    including it form the "low" class (:func:`otsu_split`). The result is detached (t is a
    constant for the gradient) and a 0-d tensor on q's device and dtype.

    One change from the authors' code: when every low value falls in the first bin, their
    rule returns t = 0 and the determinacy divides by zero. We clamp t to
    [1/(2·bins), 1 − 1/(2·bins)] (the middle of the first or last bin), so t is always
    strictly inside (0, 1). ``reduce``: see :func:`otsu_split`. Derived in
    :doc:`/book/06_determinacy_and_stability`.
    """
    _, best = otsu_split(q, bins, reduce)
    half_bin = 0.5 / bins
    t = (best.to(torch.float64) / bins).clamp(half_bin, 1.0 - half_bin)
    return t.to(device=q.device, dtype=q.dtype)


def _check_t(t) -> None:
    # A threshold on an accelerator comes from otsu_threshold, which guarantees the range;
    # reading it back here would stall the device every training step.
    if isinstance(t, torch.Tensor) and t.device.type != "cpu":
        return
    tt = torch.as_tensor(t)
    if tt.numel() != 1 or not (0.0 < float(tt) < 1.0):
        raise ValueError(
            f"the threshold t must be a single number strictly between 0 and 1, got {t}; "
            "use otsu_threshold(q) or a fixed value such as 1/k."
        )


def determinacy(q: torch.Tensor, t, form: str = "linear") -> torch.Tensor:
    """Determinacy f(q) of each relation: 0 at the threshold t, 1 at q = 0 and q = 1.

    linear (authors' code):   f(q) = (t − q)/t for q < t,  (q − t)/(1 − t) for q ≥ t
    quadratic (the form that matches the constant of Theorem 1): the square of the above.
    Derived in :doc:`/book/06_determinacy_and_stability`.
    """
    _check_t(t)
    if form not in DETERMINACY_FORMS:
        raise ValueError(f"form must be one of {DETERMINACY_FORMS}, got {form!r}.")
    t = torch.as_tensor(t, dtype=q.dtype, device=q.device)
    f = torch.where(q < t, (t - q) / t, (q - t) / (1.0 - t))
    return f if form == "linear" else f * f


def sample_stability(fq: torch.Tensor, lam: float = 0.4) -> torch.Tensor:
    """Stability s_i = mean_j f(q_ij) − λ · var_j f(q_ij) (population variance over the k centroids).

    High when sample i is decisively close to one centroid and decisively far from the
    others. Derived in :doc:`/book/06_determinacy_and_stability`.
    """
    if fq.ndim != 2:
        raise ValueError(f"fq must be n×k, got shape {tuple(fq.shape)}.")
    return fq.mean(dim=1) - lam * fq.var(dim=1, unbiased=False)


def instability(q: torch.Tensor, t=None, lam: float = 0.4, form: str = "code",
                variance_reward: bool = True) -> torch.Tensor:
    """The instability loss L_c computed from co-association probabilities q (n×k).

    form="code" (authors' code, which produced the published numbers):
        linear determinacy and  L_c = 1 − (mean_i s_i + var_i s_i)
    form="paper" (the form Theorem 1 is stated for):
        quadratic determinacy and  L_c = 1 − mean_i s_i

    ``t=None`` takes Otsu's threshold of these q. ``variance_reward=False`` drops the code
    form's batch-variance term (an ablation, :doc:`/book/10_ablations`). Derived in
    :doc:`/book/07_instability_loss`.
    """
    if form not in FORMS:
        raise ValueError(f"form must be one of {FORMS}, got {form!r}.")
    if t is None:
        t = otsu_threshold(q)
    fq = determinacy(q, t, "linear" if form == "code" else "quadratic")
    s = sample_stability(fq, lam)
    if form == "code" and variance_reward:
        return 1.0 - (s.mean() + s.var(unbiased=False))
    return 1.0 - s.mean()


def balance_penalty(q: torch.Tensor) -> torch.Tensor:
    """KL(q̄ ‖ uniform) = Σ_j q̄_j log(k q̄_j) of the batch's mean assignment q̄_j = mean_i q_ij:
    0 when the batch spreads evenly over the k clusters, log k when one cluster takes it all.
    The cluster-balance term of IIC and SCAN; this book's remedy for emptied clusters
    (``Config.balance``), not part of DECS. Derived in :doc:`/book/08_training_usps`."""
    if q.ndim != 2:
        raise ValueError(f"q must be n×k, got shape {tuple(q.shape)}.")
    mean = q.mean(dim=0)
    return (mean * torch.log(mean * q.shape[1]).clamp_min(-1e4)).sum()


def instability_loss(
    z: torch.Tensor,
    centroids: torch.Tensor,
    alpha: float = 0.5,
    lam: float = 0.4,
    t=None,
    form: str = "code",
) -> torch.Tensor:
    """The instability loss L_c of a batch of embeddings z and the centroids m.

    q = soft_assign(z, m, α), then :func:`instability` (see there for the two forms).
    Gradients flow into z (hence the encoder) and the centroids.
    Derived in :doc:`/book/07_instability_loss`.
    """
    return instability(soft_assign(z, centroids, alpha), t, lam, form)


def gradient_bound(z: torch.Tensor, centroids: torch.Tensor, alpha: float, lam: float, t) -> torch.Tensor:
    """The constant M of Theorem 1 as the paper states it:

        M = 2(1 + 2λ)(α + 1) / (4 n k t² α) · max_ij ||z_i − m_j||

    n = number of rows of z, k = number of centroids. Whether and for which gradient this
    bound holds is examined in :doc:`/book/theorem1`.
    """
    _check_alpha(alpha)
    _check_t(t)
    n, k = z.shape[0], centroids.shape[0]
    t = torch.as_tensor(t, dtype=z.dtype, device=z.device)
    dmax = squared_distances(z, centroids).max().sqrt()
    return 2.0 * (1.0 + 2.0 * lam) * (alpha + 1.0) / (4.0 * n * k * t**2 * alpha) * dmax


def start_profile(z: torch.Tensor, centroids: torch.Tensor, alpha: float = 0.5, lam: float = 0.4,
                  batch_size: int = 256, bins: int = 1000, seed: int = 0) -> dict:
    """What the instability loss sees at a start (iteration 0), rather than the start's k-means ACC.

    ``z``: the clean embedding of every sample (n×d); ``centroids``: the k-means start (k×d).
    Returned, all as plain numbers or lists:

    * the embedding's scale against the Student kernel: the median squared distance of a sample
      to its nearest and second-nearest centroid, divided by α (the kernel
      (1 + d²/α)^(−(α+1)/2) is flat for d²/α ≪ 1 and decided for d²/α ≫ 1), and the smallest and
      median squared distance between two centroids over α;
    * q's entropy (divided by log k: 1 for uniform) and its largest value, averaged over samples;
    * Otsu's t over all n·k values of q, and the mean and spread of Otsu's t over the batches of
      ``batch_size`` that the loop splits (each batch has its own t);
    * the share of undecided samples: no q_ij ≥ t (no relation on the "associated" side of the
      threshold), and of samples with two or more q_ij ≥ t;
    * each centroid's pull: the norm of the loss's gradient ∂L/∂m_j (code form, Otsu's t per
      batch), averaged over the batches of one shuffled pass, and its soft mass Σ_i q_ij.

    Used in :doc:`/book/dying_clusters`; the loop records Otsu's t and each centroid's pull during
    training at every evaluation (:doc:`/book/08_training_usps`).
    """
    _check_alpha(alpha)
    with torch.no_grad():
        d2 = squared_distances(z, centroids)
        near = d2.topk(2, dim=1, largest=False).values
        q = soft_assign(z, centroids, alpha)
        k = q.shape[1]
        entropy = -(q * q.clamp_min(1e-30).log()).sum(1) / torch.log(torch.tensor(float(k)))
        t_all = otsu_threshold(q, bins)
        above = (q >= t_all).sum(1)
        m = centroids.shape[0]
        cd2 = squared_distances(centroids, centroids)[~torch.eye(m, dtype=torch.bool, device=z.device)]
    order = torch.randperm(z.shape[0], generator=torch.Generator().manual_seed(seed)).to(z.device)
    pulls, ts = torch.zeros(k, dtype=torch.float64), []
    n_batches = 0
    for start in range(0, z.shape[0], batch_size):
        m_ = centroids.detach().clone().requires_grad_(True)
        qb = soft_assign(z[order[start:start + batch_size]], m_, alpha)
        t = otsu_threshold(qb, bins)
        ts.append(float(t))
        instability(qb, t, lam, "code").backward()
        pulls += m_.grad.norm(dim=1).double().cpu()
        n_batches += 1
    ts_t = torch.tensor(ts)
    r = lambda v: float(f"{float(v):.4g}")  # noqa: E731 — four significant digits
    return {
        "alpha": alpha, "lam": lam, "n": int(z.shape[0]), "k": int(k),
        "d2_nearest_over_alpha_median": r(near[:, 0].median() / alpha),
        "d2_second_over_alpha_median": r(near[:, 1].median() / alpha),
        "centroid_d2_over_alpha_min": r(cd2.min() / alpha),
        "centroid_d2_over_alpha_median": r(cd2.median() / alpha),
        "q_entropy_mean": r(entropy.mean()), "q_max_mean": r(q.max(1).values.mean()),
        "otsu_t_all": r(t_all), "otsu_t_batch_mean": r(ts_t.mean()), "otsu_t_batch_std": r(ts_t.std()),
        "undecided_share": r((above == 0).float().mean()),
        "several_above_t_share": r((above >= 2).float().mean()),
        "centroid_pull": [r(v) for v in (pulls / n_batches).tolist()],
        "soft_mass": [round(float(v), 1) for v in q.sum(0).tolist()],
    }
