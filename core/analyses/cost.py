"""What the costly views of one image cost, so that pages compute the cheap views at
once and ask before the costly ones (patch ablation and the faithfulness tests of a
ViT-B: hundreds of full forwards each).

A forward costs about ``2 * parameters * tokens`` operations (every weight is used
once per token; attention's own ``T^2`` products are small beside it for ViTs up to
518 px). Counts follow ``core.explain.ablation`` (one forward per removed group) and
``core.analyses.faithfulness`` (every step of every method, before the shared steps
are merged: an upper bound).
"""
from __future__ import annotations

import os

from core.analyses.ablation_map import ablation_forwards
from core.analyses.faithfulness import curve_forwards
from core.model import LoadedModel

AUTO_FLOPS = 5e11  # computed at once up to this many operations (about 7 s on a 2-core
# CPU: EVA-02-Ti's faithfulness scores, 1.6e12, took 22 s; $VIT_EXPLORER_AUTO_FLOPS
# overrides); above it a page asks first
AUTO_EXACT_TOKENS = 20_000  # exact leave-one-out at once up to this many tokens run per
# image ($VIT_EXPLORER_AUTO_EXACT_TOKENS overrides; ViT-B/16 needs 28,368)


def faithfulness_forwards(lm: LoadedModel) -> int:
    """The faithfulness tests of one image: patch ablation's map and every step of
    every method's curves."""
    return ablation_forwards(lm) + curve_forwards(lm)


def automatic(lm: LoadedModel, forwards: int) -> bool:
    """Whether a page computes a view of `forwards` full forwards without asking."""
    parameters = sum(p.numel() for p in lm.model.parameters())
    limit = float(os.environ.get("VIT_EXPLORER_AUTO_FLOPS") or AUTO_FLOPS)
    return forwards * 2.0 * parameters * lm.num_tokens <= limit


def exact_importance_automatic(lm: LoadedModel) -> bool:
    """Whether a page computes exact leave-one-out without asking (one pruned variant
    per head, each from its layer on: about L x H x T tokens per image); otherwise it
    shows the one-backward estimate first."""
    limit = int(os.environ.get("VIT_EXPLORER_AUTO_EXACT_TOKENS") or AUTO_EXACT_TOKENS)
    return lm.num_layers * lm.num_heads * lm.num_tokens <= limit
