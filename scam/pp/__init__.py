"""Preprocessing: priors computed from expression before fitting dynamics.

:func:`score_growth` turns proliferation and apoptosis gene scores into a per-cell prior growth rate
(birth-death model of Waddington-OT / moscot), written to ``adata.obs``.
"""

from ._growth import score_growth

__all__ = ["score_growth"]
