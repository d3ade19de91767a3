"""One table of cases for the cross-cutting tests (captum's ``test_config.py`` style):
every registered analysis with its defaults, with a non-default parameter set, and
with each target form where it is class-specific; every dataset step with its
defaults and a non-default parameter set. ``tests/unit/test_registry.py`` runs each
case through the same checks; a test there fails when an analysis or step with
parameters has no variant here."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from core.analyses import ANALYSES
from core.analyses.base import TargetChoice
from core.analyses.interactions import InteractionParams
from core.analyses.keypoints import KeypointParams
from core.analyses.partial_pruning import PartialPruningParams
from core.analyses.patterns import PatternParams
from core.analyses.prompt import PromptParams
from core.analyses.sift import SiftParams
from core.dataset import DATASET_STEPS
from core.dataset.class_views import ClassViewParams
from core.dataset.faithfulness_table import TableParams
from core.dataset.importance_overview import OverviewParams
from core.dataset.pattern_layouts import LayoutParams
from core.dataset.sanity import SanityParams
from core.explain import AblationParams, RolloutParams

VARIANTS: dict[str, Any] = {  # analysis -> parameters other than its defaults
    "patterns": PatternParams(top_percent=5.0),
    "interactions": InteractionParams(k=3, rank_by="jsd"),
    "partial_pruning": PartialPruningParams(layer=2, head=1),
    "explanations": RolloutParams(discard_ratio=0.5, start_layer=1, fusion="max"),
    "ablation_map": AblationParams(group=2),
    "sift": SiftParams(min_side=112),
    "keypoints": KeypointParams(min_side=112, weight="response"),
    "objects": SiftParams(min_side=112),
    "spurious": SiftParams(min_side=112),
    "prompt": PromptParams(alphas=(0.0, 0.5)),
}
STEP_VARIANTS: dict[str, Any] = {  # dataset step -> parameters other than its defaults
    "importance_overview": OverviewParams(metric="jsd"),
    "class_views": ClassViewParams(group_by="prediction"),
    "pattern_layouts": LayoutParams(top_percent=5.0, max_epochs=2),
    "faithfulness_table": TableParams(sample=6),
    "keypoint_lift": KeypointParams(min_side=112, weight="response"),
    "spurious_ranking": SiftParams(min_side=112),
    "sanity_checks": SanityParams(sample=3),
    "prompt_rates": PromptParams(alphas=(0.0, 0.5)),
}
TARGETS: tuple[TargetChoice, ...] = ("label", "prediction", 3)  # a chosen class: 3


@dataclass(frozen=True)
class Case:
    """An analysis run with `params` (None: its defaults) for `target` (None: its own)."""

    analysis: str
    params: Any = None
    target: TargetChoice | None = None

    @property
    def id(self) -> str:
        parts = [self.analysis] + (["variant"] if self.params is not None else []) + (
            [f"target={self.target}"] if self.target is not None else [])
        return "-".join(parts)


CASES = ([Case(name) for name in ANALYSES]
         + [Case(name, params) for name, params in VARIANTS.items()]
         + [Case(name, target=t) for name, a in ANALYSES.items() if a.class_specific
            for t in TARGETS])
STEP_CASES = [(name, None) for name in DATASET_STEPS] + list(STEP_VARIANTS.items())
