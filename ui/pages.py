"""The one table of the app's pages, read by the navigation (app.py), the HTML report
(ui/report.py), AppTest and the browser tests: each page's URL path, navigation title,
module (its file, run by Streamlit, draws the page with ``render()``; ``HEADING`` is
its title; ``report``, if any, writes its section of the report), the per-image
analyses and the dataset steps it reads."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Callable

from app_pages import (classes_page, compare_page, importance_page, keypoints_page,
                       overview_page, patterns_page, rollout_page, strength_page)
from core.analyses import (ABLATION_MAP, EXPLANATIONS, FAITHFULNESS, FORWARD, IMPORTANCE,
                           IMPORTANCE_ESTIMATE, INTERACTIONS, KEYPOINTS, OBJECTS, SIFT,
                           PARTIAL_PRUNING, PATTERNS, PROMPT, SPURIOUS, STRENGTH)
from core.analyses.base import Analysis
from core.dataset import (CLASS_VIEWS, ESTIMATE_AGREEMENT, FAITHFULNESS_TABLE,
                          IMPORTANCE_OVERVIEW, KEYPOINT_LIFT, PATTERN_LAYOUTS, SANITY,
                          SPURIOUS_RANKING)
from core.dataset.base import DatasetStep
from ui.report_html import Report

ROOT = Path(__file__).resolve().parents[1]  # app.py's folder: page paths are relative to it


@dataclass(frozen=True)
class AppPage:
    name: str  # the URL path (/name); the default page is at / too
    title: str  # in the navigation
    module: ModuleType  # render(), HEADING and (optional) report(Report) -> HTML
    reads: tuple[Analysis, ...]  # per-image analyses
    steps: tuple[DatasetStep, ...] = ()  # whole-set views
    default: bool = False

    @property
    def heading(self) -> str:
        return self.module.HEADING

    @property
    def report(self) -> Callable[[Report], str] | None:
        """The page's section of the HTML report (None: the page has none)."""
        return getattr(self.module, "report", None)

    @property
    def path(self) -> str:
        """The page file relative to app.py (what st.Page and AppTest take)."""
        return Path(self.module.__file__).resolve().relative_to(ROOT).as_posix()


PAGES = (
    AppPage("overview", "Overview", overview_page, (FORWARD,), (IMPORTANCE_OVERVIEW,),
            default=True),
    AppPage("importance", "Importance", importance_page,
            (FORWARD, IMPORTANCE, IMPORTANCE_ESTIMATE, INTERACTIONS, PARTIAL_PRUNING),
            (ESTIMATE_AGREEMENT,)),
    AppPage("strength", "Strength", strength_page, (FORWARD, STRENGTH)),
    AppPage("patterns", "Patterns", patterns_page, (FORWARD, PATTERNS), (PATTERN_LAYOUTS,)),
    AppPage("rollout", "Rollout", rollout_page,
            (FORWARD, EXPLANATIONS, ABLATION_MAP, FAITHFULNESS), (FAITHFULNESS_TABLE, SANITY)),
    AppPage("keypoints", "Keypoints", keypoints_page,
            (FORWARD, SIFT, KEYPOINTS, OBJECTS, SPURIOUS, PROMPT),
            (KEYPOINT_LIFT, SPURIOUS_RANKING)),
    AppPage("classes", "Classes", classes_page, (), (CLASS_VIEWS,)),
    AppPage("compare", "Compare", compare_page,
            (FORWARD, IMPORTANCE, IMPORTANCE_ESTIMATE, STRENGTH, EXPLANATIONS, ABLATION_MAP)),
)


def by_name(name: str) -> AppPage:
    """The page at URL path `name`."""
    return next(p for p in PAGES if p.name == name)
