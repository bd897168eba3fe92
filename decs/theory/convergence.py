"""Does training converge? Plain gradient descent on the variables of Theorem 1 with steps set
by the bounds, and a small encoder trained on L_c as DECS trains it. Explained in
:doc:`/book/theorem1`.
"""
from __future__ import annotations

import torch

from ..stability import instability_loss, otsu_threshold, soft_assign
from .gradients import DTYPE, as_f64, autograd_gradients


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
    z, m = (x.detach().clone() for x in as_f64(z0, m0))
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
