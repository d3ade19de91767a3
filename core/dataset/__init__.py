"""Dataset-level steps behind one contract (``core.dataset.base``) and one registry,
run after the per-image analyses by the batch precompute and on request by the pages."""
from core.dataset.base import DatasetStep, Stage
from core.dataset.class_views import CLASS_VIEWS
from core.dataset.estimate_agreement import ESTIMATE_AGREEMENT
from core.dataset.faithfulness_table import FAITHFULNESS_TABLE
from core.dataset.importance_overview import IMPORTANCE_OVERVIEW
from core.dataset.keypoint_lift import KEYPOINT_LIFT
from core.dataset.pattern_layouts import PATTERN_LAYOUTS
from core.dataset.prompt_rates import PROMPT_RATES
from core.dataset.sanity import SANITY
from core.dataset.spurious_ranking import SPURIOUS_RANKING

DATASET_STEPS: dict[str, DatasetStep] = {s.name: s for s in (
    IMPORTANCE_OVERVIEW, ESTIMATE_AGREEMENT, CLASS_VIEWS, PATTERN_LAYOUTS, FAITHFULNESS_TABLE,
    KEYPOINT_LIFT, SPURIOUS_RANKING, SANITY, PROMPT_RATES)}

__all__ = ["CLASS_VIEWS", "DATASET_STEPS", "DatasetStep", "ESTIMATE_AGREEMENT", "FAITHFULNESS_TABLE", "IMPORTANCE_OVERVIEW",
           "KEYPOINT_LIFT", "PATTERN_LAYOUTS", "PROMPT_RATES", "SANITY", "SPURIOUS_RANKING", "Stage"]
