"""What the clustering loop keeps besides the weights, so that the loop itself reads as the
algorithm: its resumable state and checkpoint (:class:`LoopState`), the history of evaluations, the
per-iteration diagnostics (:class:`Trace`), the t-SNE stages, and this book's re-seeding remedy
(:func:`reseed_empty`). Used by :func:`decs.train.cluster`; the diagnostics are read in
:doc:`/book/08_training_usps` and :doc:`/book/dying_clusters`.
"""
from __future__ import annotations

from pathlib import Path
from typing import Callable

import numpy as np
import torch
from torch import nn
from tqdm.auto import tqdm

from . import distributed
from .config import Config
from .files import checkpoint_key, load_checkpoint, save_checkpoint, stage_provenance
from .metrics import evaluate
from .passes import batches, embed_all
from .provenance import RunClock, tick
from .stability import determinacy, sample_stability, soft_assign


class Trace:
    """What the clustering loop saw at each iteration since the last evaluation, kept on the
    training device (reading a number back every step would stall a GPU) and summarised at the
    evaluation. Cheap: a few operations on the B×k batch.

    * ``t_mean``, ``t_min``, ``t_max``: Otsu's thresholds t of the batches (DECS);
      ``t_clamped``: how many of them hit the clamp of :func:`decs.stability.otsu_threshold`
      (the authors' rule would have returned t = 0 or 1 there);
    * ``neg_weight_share``: the mean share of a batch's samples whose code-form weight
      1 + 2(s_i − s̄) is negative (the loss then pushes their stability *down*; :doc:`/book/07_instability_loss`);
    * ``centroid_grad_norm``: the mean norm ‖∂L/∂m_j‖ of each centroid's gradient.

    With several processes t and the gradients are the whole batch's, the share of negative
    weights is that of rank 0's shard (with its own s̄).
    """

    def __init__(self, k: int, device: torch.device, bins: int):
        self.k, self.device, self.bins = k, device, bins
        self.reset()

    def state_dict(self) -> dict:  # kept in checkpoints: a resumed run reports the same numbers
        return {"steps": self.steps, "ts": [t.cpu() for t in self.ts], "neg": self.neg.cpu(),
                "grad": self.grad.cpu()}

    def load_state_dict(self, state: dict) -> None:
        self.steps = state["steps"]
        self.ts = [t.to(self.device) for t in state["ts"]]
        self.neg, self.grad = state["neg"].to(self.device), state["grad"].to(self.device)

    def reset(self) -> None:
        self.steps = 0
        self.ts: list[torch.Tensor] = []
        self.neg = torch.zeros((), device=self.device)
        self.grad = torch.zeros(self.k, device=self.device)

    @torch.no_grad()
    def add(self, q: torch.Tensor, t, cfg: Config, grad: torch.Tensor | None) -> None:
        self.steps += 1
        if grad is not None:
            self.grad += grad.norm(dim=1)
        if t is None:  # DEC: no threshold, no stability weights
            return
        self.ts.append(torch.as_tensor(t, dtype=torch.float64, device=self.device).reshape(()))
        if cfg.form == "code":
            s = sample_stability(determinacy(q, t, "linear"), cfg.lam)
            self.neg += (1 + 2 * (s - s.mean()) < 0).float().mean()

    def summary(self) -> dict:
        if self.steps == 0:
            return {}
        out = {"centroid_grad_norm": [float(f"{v:.4g}") for v in (self.grad / self.steps).tolist()]}
        if self.ts:
            t = torch.stack(self.ts)
            half_bin = 0.5 / self.bins
            out.update(t_mean=round(float(t.mean()), 5), t_min=round(float(t.min()), 5),
                       t_max=round(float(t.max()), 5),
                       t_clamped=int(((t <= half_bin + 1e-12) | (t >= 1 - half_bin - 1e-12)).sum()),
                       neg_weight_share=round(float(self.neg) / self.steps, 5))
        self.reset()
        return out


@torch.no_grad()
def reseed_empty(z: torch.Tensor, centroids: nn.Parameter, labels: np.ndarray,
                  opt: torch.optim.Optimizer) -> list[int]:
    """This book's remedy ``Config.reseed_empty`` (not the paper's method): move the centroid of
    every emptied cluster onto the embedding of the sample of the largest cluster that lies
    farthest from that cluster's centroid (as k-means implementations handle an empty cluster),
    and clear that centroid's Adam moments. Returns the clusters moved."""
    k = centroids.shape[0]
    sizes = np.bincount(labels, minlength=k)
    moved = []
    for j in np.flatnonzero(sizes == 0):
        big = int(sizes.argmax())
        members = np.flatnonzero(labels == big)
        dist = (z[torch.as_tensor(members, device=z.device)] - centroids[big]).norm(dim=1)
        far = members[int(dist.argmax())]
        centroids[j] = z[far]
        labels[far], sizes[big], sizes[j] = j, sizes[big] - 1, 1
        for moment in ("exp_avg", "exp_avg_sq"):
            if moment in opt.state.get(centroids, {}):
                opt.state[centroids][moment][j] = 0
        moved.append(int(j))
    return moved


class LoopState:
    """Everything the clustering loop carries besides the weights: the iteration, the order of
    the current epoch, DEC's targets, the loss summed since the last evaluation, the history of
    evaluations, the diagnostics :class:`Trace`, the t-SNE stages and the seconds spent — and the
    checkpoint that holds it all with the weights, so that a resumed run continues to the
    identical result. :func:`decs.train.cluster` calls it one line at a time:
    :meth:`evaluation`, :meth:`next_batch`, :meth:`step_done`, :meth:`save`, :meth:`finish`.
    """

    def __init__(self, encoder: nn.Module, centroids: nn.Parameter, opt: torch.optim.Optimizer,
                 generator: torch.Generator, x: torch.Tensor, cfg: Config, method: str,
                 y: np.ndarray | None = None, checkpoint: Path | None = None, key: dict | None = None,
                 stages: tuple[int, ...] = (), stage_samples: int = 2000, on_eval: Callable | None = None,
                 progress: bool = True):
        self.encoder, self.centroids, self.opt, self.generator, self.x = encoder, centroids, opt, generator, x
        self.cfg, self.method, self.y, self.checkpoint, self.stages, self.on_eval = \
            cfg, method, y, checkpoint, stages, on_eval
        self.alpha = cfg.kernel_alpha(method)
        n = x.shape[0]
        self.batches = batches(n, cfg.batch_size)
        # What is saved beside weights and optimiser (a checkpoint's "state").
        self.state = {"iteration": 0, "history": [], "labels_last": None, "order": torch.arange(n),
                      "loss_sum": 0.0, "target": None, "stopped_early": False, "seconds": 0.0,
                      "stages": {"indices": torch.from_numpy(np.sort(np.random.default_rng(0).choice(
                          n, min(n, stage_samples), replace=False))), "iterations": [], "z": [], "centroids": []}}
        self.key = checkpoint_key(**key) if key is not None else None  # later settings at their defaults drop out
        resumed = self._resume()
        trains_here = self.state["iteration"] < cfg.maxiter
        self.state["processes"], self.state["commits"], self.state["threads"] = stage_provenance(
            self.state if resumed else None, trains_here, "the clustering")
        self.order = self.state["order"].to(x.device)
        self.target = None if self.state["target"] is None else self.state["target"].to(x.device)  # DEC's P
        self.loss_sum = torch.tensor(self.state["loss_sum"], device=x.device)
        self.trace = Trace(centroids.shape[0], x.device, cfg.otsu_bins)  # diagnostics since the last evaluation
        if "trace" in self.state:
            self.trace.load_state_dict(self.state["trace"])
        self.clock = RunClock(self.state["seconds"])  # less any time the process was stopped
        self.it = self.start = self.state["iteration"]
        if self.start > cfg.maxiter:
            raise ValueError(f"{checkpoint} is at iteration {self.start}, past maxiter={cfg.maxiter}; delete it "
                             "or ask for at least as many iterations.")
        self.bar = tqdm(total=cfg.maxiter, initial=self.start, desc=method,
                        disable=not progress or not distributed.is_main())

    # ---------------------------------------------------------------------- resume and save
    def _resume(self) -> bool:
        saved = load_checkpoint(self.checkpoint, self.key, "holds a clustering run")
        if saved is None:
            return False
        self.encoder.load_state_dict(saved["encoder"])
        with torch.no_grad():
            self.centroids.copy_(saved["centroids"])
        self.opt.load_state_dict(saved["optimizer"])
        self.generator.set_state(saved["generator"])
        self.state = saved["state"]
        return True

    def save(self) -> None:
        """Write the checkpoint: weights, optimiser, generator and this state."""
        self.state.update(iteration=self.it, order=self.order.cpu(), loss_sum=float(self.loss_sum),
                          seconds=self.clock.seconds(), trace=self.trace.state_dict(),
                          target=None if self.target is None else self.target.cpu())
        save_checkpoint(self.checkpoint, {
            "encoder": self.encoder.state_dict(), "centroids": self.centroids.detach().cpu(),
            "optimizer": self.opt.state_dict(), "generator": self.generator.get_state(),
            "state": self.state, "key": self.key})

    @property
    def stopped_early(self) -> bool:
        return self.state["stopped_early"]

    @stopped_early.setter
    def stopped_early(self, value: bool) -> None:
        self.state["stopped_early"] = value

    # ---------------------------------------------------------------------------- evaluations
    def _keep_stage(self, z_all: torch.Tensor) -> None:
        """Keep the embedding of the fixed sample and the centroids (the t-SNE stages of :doc:`/book/embedding_tsne`)."""
        keep = self.state["stages"]
        keep["iterations"].append(self.it)
        keep["z"].append(z_all[keep["indices"].to(self.x.device)].cpu())
        keep["centroids"].append(self.centroids.detach().cpu().clone())

    def _evaluate(self) -> tuple[torch.Tensor, float]:
        """Label the clean data, score it, append the record to the history; returns q and the
        share of labels that changed since the last evaluation."""
        it, history, centroids = self.it, self.state["history"], self.centroids
        z_all = embed_all(self.encoder, self.x, self.cfg.eval_batch_size)
        q_all = soft_assign(z_all, centroids.detach(), self.alpha)
        labels = q_all.argmax(dim=1).cpu().numpy()
        last = self.state["labels_last"]
        delta = 1.0 if last is None else float(np.mean(labels != last))
        steps = it - (history[-1]["iteration"] if history else 0)
        record = {"iteration": it, "loss": round(float(self.loss_sum) / steps, 6) if steps > 0 else None,
                  "delta_label": round(delta, 6),
                  # an emptied cluster is how DECS degrades (nothing in its loss resists one)
                  "cluster_sizes": np.bincount(labels, minlength=centroids.shape[0]).tolist(),
                  "soft_mass": [round(v, 2) for v in q_all.sum(0).tolist()], **self.trace.summary()}
        if self.method == "decs" and self.cfg.reseed_empty:
            moved = reseed_empty(z_all, centroids, labels.copy(), self.opt)
            if moved:
                record["reseeded"] = moved
        if self.y is not None:
            record.update(evaluate(self.y, labels))
            self.bar.set_postfix(acc=record["acc"], nmi=record["nmi"])
        history.append(record)
        self.state["labels_last"] = labels
        self.loss_sum.zero_()
        if it in self.stages or it >= self.cfg.maxiter:
            self._keep_stage(z_all)
        if self.on_eval is not None:
            self.on_eval(record, z_all, centroids.detach())
        return q_all, delta

    def evaluation(self) -> tuple[torch.Tensor | None, float]:
        """Evaluate at this iteration — unless a resumed run ended here and was evaluated: then
        the same model gives the same record, and only DEC's q is computed again."""
        history = self.state["history"]
        if not (history and history[-1]["iteration"] == self.it):
            return self._evaluate()
        q_all = (soft_assign(embed_all(self.encoder, self.x, self.cfg.eval_batch_size), self.centroids.detach(),
                             self.alpha) if self.method == "dec" else None)
        return q_all, history[-1]["delta_label"]

    # -------------------------------------------------------------------------------- steps
    def next_batch(self) -> torch.Tensor:
        """The sample indices of this iteration's mini-batch (a new shuffle at each epoch's start)."""
        b = self.it % len(self.batches)
        if b == 0 and self.cfg.shuffle_clustering:
            self.order = torch.randperm(self.x.shape[0], generator=self.generator, device=self.x.device)
        return self.order[self.batches[b][0]:self.batches[b][1]]

    def step_done(self, loss: torch.Tensor) -> None:
        """Count the step: its loss into the sum since the last evaluation, the iteration, the bar."""
        self.loss_sum += loss.detach()
        self.it += 1
        tick()
        self.bar.update(1)

    def finish(self) -> None:
        """The last evaluation (if the last iteration was not evaluated), the last stage, the
        last checkpoint."""
        if not self.state["history"] or self.state["history"][-1]["iteration"] != self.it:
            self._evaluate()
        if self.state["stages"]["iterations"][-1:] != [self.it]:  # DEC stopped early: keep where it ended
            self._keep_stage(embed_all(self.encoder, self.x, self.cfg.eval_batch_size))
        self.bar.close()
        self.save()
