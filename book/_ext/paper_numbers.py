"""A Sphinx extension of this book: theorems that keep the paper's number.

The book numbers its theorems per chapter (Theorem 8.3), but the paper's Theorem 1 and this
book's corrected Theorem 1′ are known by those names, and the text refers to them so. Each label
in ``proof_paper_numbers`` (``_config.yml``: ``{label: number}``) names a ``{prf:theorem}``
written with ``:nonumber:``; its heading then reads "Theorem 1′ (title)" and a ``{prf:ref}`` to it
"Theorem 1′", instead of an unnumbered "Theorem (title)".
"""
from __future__ import annotations


def _name(app, doctree) -> None:
    from sphinx_proof.nodes import unenumerable_node

    numbers = app.config.proof_paper_numbers
    for node in doctree.findall(unenumerable_node):
        label = node.get("label")
        if label in numbers:
            node["realtype"] = f"{node['realtype']} {numbers[label]}"
            app.env.proof_list[label]["realtype"] = node["realtype"]


def setup(app):
    app.add_config_value("proof_paper_numbers", {}, "env")
    # after sphinx-proof's directives ran (doctree-read comes after parsing)
    app.connect("doctree-read", _name)
    return {"parallel_read_safe": False, "parallel_write_safe": True}
