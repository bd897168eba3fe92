"""Theorem 1 of the paper, checked: the gradients of L_c, the paper's bound M, a corrected bound.

Everything is derived, and every number checked, in the chapter :doc:`/book/theorem1`. The
package is split by what the chapter does with it; every name below can be used as
``decs.theory.<name>``:

* ``decs.theory.gradients`` — the gradients and the bounds: the gradients of L_c by autograd
  and by the hand-derived formulas, the norms of the gradient blocks
  (:data:`~decs.theory.gradients.BLOCKS`), the paper's bound M, the corrected bound (Theorem 1′)
  and its factors, and the exact envelope for one embedding (ρ, its supremum, the worst cases
  for k = 2 and in the Gaussian limit, U(α)).
* ``decs.theory.search`` — the searches: random admissible inputs (:class:`Case`,
  :func:`sample_case`), the adversarial searches against M and the corrected bound (t fixed or
  Otsu's), and the encoder's part (the chain rule to the encoder's parameters).
* ``decs.theory.convergence`` — the convergence runs: gradient descent on (Z, m) and a small
  encoder trained as DECS trains it.
* ``decs.theory.sweep`` — the sweep: :func:`run_sweep` runs every check at the size of a
  profile (:data:`~decs.theory.sweep.SWEEP_SIZES`) for ``benchmarks/theory_sweep.py``, which
  writes the JSON (:func:`write_json`) and the counterexamples (:func:`save_counterexample`)
  the chapter and ``tests/test_theory.py`` read.

The constants are documented in the module that defines them.
"""
from __future__ import annotations

from .convergence import blobs, gd_on_embeddings, train_small_encoder
from .gradients import (BLOCKS, DTYPE, FORM_DETERMINACY, analytic_gradients, as_f64, autograd_gradients,
                        block_norms, bound_report, check_t, constrained_z_envelope, corrected_bound,
                        corrected_constant, determinacy_derivative, determinacy_factor,
                        gaussian_limit_configuration, kernel_gain, paper_bound, paper_bound_holds_for_z,
                        ratios, stability_factor, sup_z_envelope, two_centroid_configuration,
                        two_centroid_sup, z_ratio_envelope)
from .search import (MAX_ELEMENTS, RANGES, REGIMES, Case, adversarial_search, adversarial_search_otsu,
                     encoder_jacobian_check, linear_encoder_gradient, replicate, sample_case)
from .sweep import ADVERSARIAL_CASES, SWEEP_SIZES, run_sweep, save_counterexample, write_json

# in the order of the chapter (and of the API page)
__all__ = [
    # gradients
    "DTYPE", "FORM_DETERMINACY", "BLOCKS", "as_f64", "check_t", "autograd_gradients",
    "determinacy_derivative", "analytic_gradients", "block_norms", "paper_bound", "ratios",
    # the corrected bound
    "kernel_gain", "stability_factor", "determinacy_factor", "corrected_constant", "corrected_bound",
    "paper_bound_holds_for_z", "bound_report",
    # the exact envelope for one embedding
    "z_ratio_envelope", "sup_z_envelope", "two_centroid_sup", "two_centroid_configuration",
    "gaussian_limit_configuration", "constrained_z_envelope",
    # random admissible inputs, the adversarial searches, the encoder's part
    "Case", "REGIMES", "RANGES", "MAX_ELEMENTS", "sample_case", "replicate", "adversarial_search",
    "linear_encoder_gradient", "encoder_jacobian_check", "adversarial_search_otsu",
    # convergence runs
    "blobs", "gd_on_embeddings", "train_small_encoder",
    # the sweep
    "SWEEP_SIZES", "ADVERSARIAL_CASES", "save_counterexample", "run_sweep", "write_json",
]
