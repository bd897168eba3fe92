"""The sweep: every numerical check of :doc:`/book/theorem1` at the size of a profile, as the JSON
the chapter reads (``benchmarks/theory_sweep.py`` writes it), and the counterexamples that
``tests/test_theory.py`` reloads. :func:`run_sweep` is a list of steps, one helper each.
"""
from __future__ import annotations

import math
import time
from pathlib import Path

import numpy as np
import torch

from ..files import atomic_write, record_json
from ..stability import otsu_threshold, soft_assign
from .convergence import blobs, gd_on_embeddings, train_small_encoder
from .gradients import (BLOCKS, DTYPE, bound_report, constrained_z_envelope, corrected_bound, paper_bound,
                        sup_z_envelope, two_centroid_configuration, two_centroid_sup, z_ratio_envelope)
from .search import adversarial_search, adversarial_search_otsu, linear_encoder_gradient, replicate, sample_case

#: How much :func:`~decs.theory.run_sweep` computes under each profile.
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
    """Write a configuration and the ratios it gives as .npz (reloaded by tests/test_theory.py),
    atomically (:func:`decs.files.atomic_write`).

    Used in :doc:`/book/theorem1`.
    """
    rep = bound_report(z, m, alpha, lam, t, form)
    arrays = {"z": np.asarray(z, dtype=np.float64), "m": np.asarray(m, dtype=np.float64),
              "alpha": np.float64(alpha), "lam": np.float64(lam), "t": np.float64(t), "form": np.str_(form),
              "blocks": np.array(list(blocks)), "note": np.str_(note),
              "ratios_M": np.array([rep["ratio_M"][b] for b in BLOCKS]),
              "ratios_corrected": np.array([rep["ratio_corrected"][b] for b in BLOCKS])}
    arrays.update({k: np.asarray(v) for k, v in extra.items()})
    path = Path(path)
    if path.suffix != ".npz":   # as np.savez names a file
        path = path.with_name(path.name + ".npz")
    atomic_write(path, lambda out: np.savez(out, **arrays))


def run_sweep(profile: str = "cpu", seed: int = 0, counterexample_dir=None, log=print) -> dict:
    """Every numerical check of :doc:`/book/theorem1`, at the size of ``profile``; returns a dict
    (the JSON the chapter reads). With ``counterexample_dir``, also writes the counterexamples.

    The steps, one key of the dict each: 1. random admissible inputs, 2. the envelope for one
    embedding and its threshold t*, 3. the α-dependent bound, 4. adversarial searches, 5. the
    search in the authors' setting with Otsu's t, 6. batch size, 7. the encoder, 8. convergence,
    9. the counterexamples (files).
    """
    cfg = SWEEP_SIZES[profile]
    t_start = time.perf_counter()

    def stamp(name):
        log(f"[{time.perf_counter() - t_start:7.1f}s] {name}")

    out: dict = {"sizes": cfg}
    out["random"] = _random_inputs(cfg["random"], np.random.default_rng(seed))
    stamp(f"random: {len(out['random']['rows'])} draws")
    out["envelope"], out["t_star"] = _envelope(cfg, seed)
    stamp("envelope")
    out["alpha_map"] = _alpha_map(cfg, seed)
    stamp("alpha map")
    out["adversarial"], best_code_z = _adversarial(cfg, seed, stamp)
    out["otsu_authors"], otsu = _otsu_authors(cfg, seed)
    stamp("otsu adversary")
    out["n_scaling"] = _n_scaling(cfg["n_list"], otsu, seed)
    stamp("n scaling")
    encoder = _linear_encoder(seed)
    out["encoder"] = _encoder_scaling(encoder)
    stamp("encoder")
    out["convergence"] = _convergence(cfg["conv_steps"], seed)
    stamp("convergence")
    if counterexample_dir is not None:
        _save_counterexamples(Path(counterexample_dir), best_code_z, otsu, encoder)
        stamp("counterexamples")
    out["seconds"] = round(time.perf_counter() - t_start, 1)
    return out


def _random_inputs(draws: int, rng: np.random.Generator) -> dict:
    """Step 1: ``draws`` random admissible inputs (:func:`sample_case`), each with its ratios to M
    and to the corrected bound and the envelope of its worst embedding."""
    cols = ["form", "regime", "n", "k", "d", "alpha", "lam", "t", "max_q_mean", "kink_frac"] + \
        [f"M_{b}" for b in BLOCKS] + [f"C_{b}" for b in BLOCKS] + ["env_z_i"]
    rows = []
    for _ in range(draws):
        c = sample_case(rng)
        rep = bound_report(c.z, c.m, c.alpha, c.lam, c.t, c.form)
        q = soft_assign(c.z, c.m, c.alpha)
        env = float(z_ratio_envelope(q, c.t, c.lam, c.form, c.n).max())
        rows.append([c.form, c.regime, c.n, c.k, c.z.shape[1], c.alpha, c.lam, c.t,
                     float(q.max(dim=1).values.mean()), float(((q - c.t).abs() < 1e-9).double().mean())]
                    + [rep["ratio_M"][b] for b in BLOCKS] + [rep["ratio_corrected"][b] for b in BLOCKS] + [env])
    return {"columns": cols, "rows": [_r(r, 4) for r in rows]}


def _envelope(cfg: dict, seed: int) -> tuple[list, list]:
    """Step 2: the α-free envelope ρ*(k, t, λ) for one embedding on the grids of ``cfg``, and the
    threshold t* where it reaches 1 (:func:`_t_star`)."""
    rows, tstar = [], []
    for form in ("paper", "code"):
        for lam in cfg["env_lam"]:
            for k in cfg["env_k"]:
                vals = {}
                for t in cfg["env_t"]:
                    v, q = sup_z_envelope(k, t, lam, form, cfg["env_restarts"], cfg["env_steps"], seed)
                    vals[t] = v
                    rows.append({"form": form, "lam": lam, "k": k, "t": t, "rho": v,
                                 "q_sorted": sorted(q.tolist(), reverse=True)[:3]})
                tstar.append({"form": form, "lam": lam, "k": k, **_t_star(vals, k, lam, form, cfg, seed)})
    return _r(rows), _r(tstar)


def _t_star(vals: dict, k: int, lam: float, form: str, cfg: dict, seed: int) -> dict:
    """The smallest t of the grid where ρ* > 1 (``vals``: t → ρ*), narrowed by ``cfg["bisect"]``
    bisection steps towards the t below it; ``{"t_star": None}`` when ρ* ≤ 1 on the whole grid."""
    ts = sorted(vals)
    above = [t for t in ts if vals[t] > 1.0]
    if not above:
        return {"t_star": None}
    if not cfg["bisect"]:
        return {"t_star": above[0]}
    hi = above[0]
    below = [t for t in ts if t < hi]
    lo = below[-1] if below else 1e-3
    for _ in range(cfg["bisect"]):
        mid = 0.5 * (lo + hi)
        if sup_z_envelope(k, mid, lam, form, cfg["env_restarts"], cfg["env_steps"], seed)[0] > 1.0:
            hi = mid
        else:
            lo = mid
    return {"t_star": hi, "t_star_lo": lo}


def _alpha_map(cfg: dict, seed: int) -> list:
    """Step 3: the certified α-dependent bound U(α, t) (λ = 0.4) and, for k = 2 (paper form), the
    exact supremum."""
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
    return _r(amap)


def _adversarial(cfg: dict, seed: int, stamp) -> tuple[list, tuple | None]:
    """Step 4: adversarial searches (lower bounds) against M and against the corrected bound, for
    the blocks z_i and m_j of every case of :data:`~decs.theory.sweep.ADVERSARIAL_CASES` (the first
    ``cfg["adv_cases"]`` of them, or all). Returns the rows and the code form's best point against
    M for z_i: (ratio, z, m, α, λ, t, k), or None."""
    adv = []
    cases = ADVERSARIAL_CASES if cfg["adv_cases"] is None else ADVERSARIAL_CASES[: cfg["adv_cases"]]
    best_code_z = None
    for (form, k, alpha, lam, t) in cases:
        for bound in ("paper", "corrected"):
            for block in ("z_i", "m_j"):
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
    return _r(adv), best_code_z


def _otsu_authors(cfg: dict, seed: int) -> tuple[dict, dict]:
    """Step 5: the search against M for the centroid gradient in the authors' setting (n = 8,
    k = 10, α = 0.5, λ = 0.4, code form) with Otsu's t recomputed at every step
    (:func:`adversarial_search_otsu`). Returns its entry and the search's result."""
    otsu = adversarial_search_otsu(8, 10, 0.5, 0.4, "code", "m_j", restarts=cfg["otsu_restarts"],
                                   steps=cfg["otsu_steps"], lr=0.1, seed=seed + 1)
    entry = {"n": 8, "k": 10, "alpha": 0.5, "lam": 0.4, "form": "code", "t": otsu["t"],
             "ratio_M": otsu["report"]["ratio_M"], "ratio_corrected": otsu["report"]["ratio_corrected"]}
    return _r(entry), otsu


def _n_scaling(n_list: list, otsu: dict, seed: int) -> list:
    """Step 6: batch size. The Otsu configuration of step 5 replicated up to n, and i.i.d. batches
    of n samples (t = Otsu's threshold of the batch)."""
    nscale = []
    z8, m8, t8 = otsu["z"], otsu["m"], otsu["t"]
    for n in n_list:
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
    return _r(nscale)


def _linear_encoder(seed: int) -> dict:
    """The linear encoder of steps 7 and 9: z = x Wᵀ (64 samples of dimension 20 mapped to 10),
    the centroids m near the first 10 embeddings, t = Otsu's threshold."""
    g = np.random.default_rng(seed)
    x0 = torch.as_tensor(g.normal(size=(64, 20)), dtype=DTYPE)
    w0 = torch.as_tensor(g.normal(size=(10, 20)) / math.sqrt(20), dtype=DTYPE)
    z0 = x0 @ w0.T
    m0 = z0[:10].clone() + 0.1
    t0 = float(otsu_threshold(soft_assign(z0, m0, 0.5)))
    return {"x": x0, "w": w0, "z": z0, "m": m0, "t": t0}


def _encoder_scaling(encoder: dict) -> list:
    """Step 7: the linear encoder of :func:`_linear_encoder`, x scaled by c and W by 1/c (same z,
    same M) for c from 1 to 10⁴."""
    x0, w0, m0, t0 = encoder["x"], encoder["w"], encoder["m"], encoder["t"]
    enc = []
    for c in (1.0, 10.0, 100.0, 1e3, 1e4):
        r = linear_encoder_gradient(w0 / c, x0 * c, m0, 0.5, 0.4, t0, "code")
        enc.append({"c": c, "t": t0, "ratio_M": r["ratio"], "norm_W": r["norm_w"], "norm_Z": r["norm_z"],
                    "jacobian_norm": r["jacobian_norm"], "M": r["M"]})
    return _r(enc)


def _convergence(steps: int, seed: int) -> dict:
    """Step 8: convergence. Gradient descent on (Z, m) with steps from the bounds (1/B, 1/M, 10/M,
    100/M), and Adam on a small encoder, both forms."""
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
            r = gd_on_embeddings(zb, mb, 0.5, 0.4, tb, form, lr, steps)
            conv["gd"].append({"form": form, "step": name, "lr": lr, "t": tb, "M": big_m, "B": b_joint,
                               "loss": r["loss"], "increases": r["increases"],
                               "max_smoothness": max(r["smoothness"])})
        r = train_small_encoder(xb, 5, 0.5, 0.4, form, steps=steps, seed=seed)
        conv["adam"].append({"form": form, **r})
    return _r(conv)


def _save_counterexamples(cdir: Path, best_code_z, otsu: dict, encoder: dict) -> None:
    """Step 9: the counterexamples, saved as data (:func:`save_counterexample`) and reloaded by the
    tests: the paper form's exact worst case for k = 2, the code form's best adversarial point
    (if it beats M), the authors' setting replicated to n = 256, the scaled linear encoder."""
    cdir.mkdir(parents=True, exist_ok=True)
    _, (r1, r2) = two_centroid_sup(100.0, 0.04, 0.9)
    z, m = two_centroid_configuration(r1, r2)
    save_counterexample(cdir / "z_paper_form.npz", z, m, 100.0, 0.04, 0.9, "paper", ["z_i", "m_j"],
                        "k=2, the exact worst case of the paper form at alpha=100, lambda=0.04, t=0.9")
    if best_code_z is not None and best_code_z[0] > 1.0:
        _, z, m, alpha, lam, t, k = best_code_z
        save_counterexample(cdir / "z_code_form.npz", z, m, alpha, lam, t, "code", ["z_i"],
                            f"code form, adversarial search, k={k}, alpha={alpha}, lambda={lam}, t={t}")
    z8, m8, t8 = otsu["z"], otsu["m"], otsu["t"]
    z = replicate(z8, 256 // 8)
    blocks = [b for b in BLOCKS if bound_report(z, m8, 0.5, 0.4, t8, "code")["ratio_M"][b] > 1.0]
    save_counterexample(cdir / "centroid_authors_setting.npz", z, m8, 0.5, 0.4, t8, "code", blocks,
                        "authors' alpha=0.5, lambda=0.4, code form, batch n=256, t = Otsu's threshold of "
                        "this batch")
    x0, w0, z0, m0, t0 = encoder["x"], encoder["w"], encoder["z"], encoder["m"], encoder["t"]
    c = 1e3
    r = linear_encoder_gradient(w0 / c, x0 * c, m0, 0.5, 0.4, t0, "code")
    save_counterexample(cdir / "encoder_linear.npz", z0, m0, 0.5, 0.4, t0, "code", [],
                        "linear encoder z = x W^T with x scaled by c=1000 and W by 1/c: same z, m, M",
                        w=(w0 / c).numpy(), x=(x0 * c).numpy(), ratio_encoder=r["ratio"])


def write_json(obj: dict, path) -> None:
    """Write ``obj`` as JSON (UTF-8, in the layout of :func:`decs.files.record_json`), atomically
    (:func:`decs.files.atomic_write`).

    Used in :doc:`/book/theorem1`.
    """
    atomic_write(path, record_json(obj))
