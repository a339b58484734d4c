"""Preprocessing: priors computed from expression before fitting dynamics.

:func:`score_growth` turns proliferation and apoptosis gene scores into a per-cell prior growth rate
(birth-death model of Waddington-OT / moscot), written to ``adata.obs``; :func:`growth_gene_sets`
returns the gene sets it uses by default.
"""

from ._growth import growth_gene_sets, score_growth

__all__ = ["growth_gene_sets", "score_growth"]
