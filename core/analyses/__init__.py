"""Per-image analyses behind one contract (``core.analyses.base``) and one registry.

Adding an analysis is one module plus one line here; the batch precompute, the pages,
the HTML report, the benchmarks and the cross-cutting tests read this registry.
"""
from core.analyses.ablation_map import ABLATION_MAP
from core.analyses.base import Analysis, NoParams, Output, TargetChoice
from core.analyses.explanations import EXPLANATIONS
from core.analyses.faithfulness import FAITHFULNESS
from core.analyses.forward import FORWARD
from core.analyses.importance import IMPORTANCE
from core.analyses.importance_estimate import IMPORTANCE_ESTIMATE
from core.analyses.interactions import INTERACTIONS
from core.analyses.keypoints import KEYPOINTS
from core.analyses.objects import OBJECTS
from core.analyses.partial_pruning import PARTIAL_PRUNING
from core.analyses.patterns import PATTERNS
from core.analyses.prompt import PROMPT
from core.analyses.sift import SIFT
from core.analyses.spurious import SPURIOUS
from core.analyses.strength import STRENGTH

ANALYSES: dict[str, Analysis] = {a.name: a for a in (
    FORWARD, STRENGTH, PATTERNS, IMPORTANCE, IMPORTANCE_ESTIMATE, INTERACTIONS,
    PARTIAL_PRUNING, EXPLANATIONS, ABLATION_MAP, FAITHFULNESS, SIFT, KEYPOINTS, OBJECTS,
    SPURIOUS, PROMPT)}  # (the capturing forward they read, ``core.analyses.capture``, is never
# stored: it is machinery, not an analysis of its own)

__all__ = ["ABLATION_MAP", "ANALYSES", "Analysis", "EXPLANATIONS", "FAITHFULNESS", "FORWARD", "IMPORTANCE",
           "IMPORTANCE_ESTIMATE", "INTERACTIONS", "KEYPOINTS", "NoParams", "OBJECTS", "Output", "PARTIAL_PRUNING", "PATTERNS", "PROMPT", "SIFT", "SPURIOUS",
           "STRENGTH", "TargetChoice"]
