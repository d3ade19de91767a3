"""Real-browser fixtures: one cache prepared in this process before the server
starts, `streamlit run` on a free port reading it, Debian's Chromium driven by
Playwright. Screenshots go to test-artifacts/. The server is started as `make serve`
and the Docker image start it (deploy/serve.sh, through testing.server).

The prepared cache holds what the tests open, computed by the engine exactly as
the pages ask for it (checked before the server starts), read from the page table
(``ui.pages``):

* demo images ``DEMO_IMAGES``: every per-image analysis a page reads, with the pages'
  default settings (the default view of each page, the shared link of image 123);
* ``clicks``, a folder of 30 demo images (3 classes), for the chart-click and narrow
  window tests: the per-image analyses and whole-set views the pages read, but the
  faithfulness tests (seconds here; minutes for the 1,000 demo images);
* ``ask``, a folder of 9 other demo images with nothing of the whole set cached, for
  the tests of the "Compute now" question.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import pytest

from testing.server import start_server

ROOT = Path(__file__).resolve().parents[2]
ARTIFACTS = ROOT / "test-artifacts"
CHROMIUM = os.environ.get("CHROMIUM", "/usr/bin/chromium")
CHROMIUM_FLAGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking",
                  "--disable-component-update", "--disable-sync", "--no-first-run",
                  "--disable-background-timer-throttling",
                  "--disable-backgrounding-occluded-windows",
                  "--disable-renderer-backgrounding"]
DEMO_IMAGES = (0, 123)  # the default image, the shared-link test's image
CLICK_CLASSES, CLICKS_PER_CLASS = (1, 5, 7), 10  # Trouser, Sandal, Sneaker
ASK_CLASSES, ASK_PER_CLASS = (2, 4, 8), 3  # Pullover, Coat, Bag: no image in common


@dataclass(frozen=True)
class Prepared:
    cache: Path
    clicks: Path  # image folder, whole-set steps cached
    ask: Path  # image folder, nothing of the whole set cached
    demo_ids: dict[int, str]  # demo index -> image id
    spurious_ids: list[str]  # the clicks folder's images in the ranking's order


@pytest.fixture(scope="session")
def engine_model():
    """The demo model in this process (what the server loads: same weights, CPU)."""
    from core import load_model
    return load_model("demo", device="cpu")


@pytest.fixture(scope="session")
def prepared(tmp_path_factory, engine_model) -> Prepared:
    from core import ArrayCache, load_dataset, run, run_step
    from core.analyses import FAITHFULNESS, FORWARD, STRENGTH
    from core.analyses.faithfulness import METHOD_NAMES
    from core.analyses.spurious import DEFAULT_METHOD
    from core.dataset import FAITHFULNESS_TABLE, SPURIOUS_RANKING
    from testing.images import demo_class_folder
    from ui.pages import PAGES

    lm = engine_model
    root = tmp_path_factory.mktemp("e2e")
    cache = ArrayCache(root / "cache")
    assert cache.enabled, cache.warning
    # (image set, images, analyses with the pages' default settings)
    plan = []
    demo = load_dataset("demo", lm.class_names)
    read = list({a.name: a for p in PAGES for a in p.reads}.values())  # every page's
    plan.append((demo, list(DEMO_IMAGES), read))
    clicks_dir = demo_class_folder(root / "clicks", lm.class_names, CLICKS_PER_CLASS,
                                   CLICK_CLASSES)
    clicks = load_dataset(str(clicks_dir), lm.class_names)
    plan.append((clicks, list(range(len(clicks))), [a for a in read if a is not FAITHFULNESS]))
    ask_dir = demo_class_folder(root / "ask", lm.class_names, ASK_PER_CLASS, ASK_CLASSES)
    ask = load_dataset(str(ask_dir), lm.class_names)
    plan.append((ask, [0], [FORWARD]))  # the first image shows; the set is not computed
    steps = [(step, None) for step in {s.name: s for p in PAGES for s in p.steps}.values()
             if step is not FAITHFULNESS_TABLE]
    for ds, indices, analyses in plan:
        for analysis in analyses:
            run(lm, ds, indices, analysis, cache=cache)
    for step, params in steps:
        run_step(lm, clicks, step, params, cache=cache)
    # the pages' own calls find all of it (a change of keys or defaults shows here)
    for ds, indices, analyses in plan:
        for analysis in analyses:
            assert not run(lm, ds, indices, analysis, cache=cache, compute=False).missing
    for step, params in steps:
        assert run_step(lm, clicks, step, params, cache=cache, compute=False).arrays is not None
        assert run_step(lm, ask, step, params, cache=cache, compute=False).arrays is None
    assert run(lm, ask, [1], STRENGTH, cache=cache, compute=False).missing == [1]
    assert len(clicks) == len(CLICK_CLASSES) * CLICKS_PER_CLASS
    ranking = run_step(lm, clicks, SPURIOUS_RANKING, cache=cache).arrays["order"]
    return Prepared(cache=root / "cache", clicks=clicks_dir, ask=ask_dir,
                    demo_ids={i: demo.records[i].id for i in range(len(demo))},
                    spurious_ids=[clicks.records[int(i)].id for i in ranking[
                        METHOD_NAMES.index(DEFAULT_METHOD)]])


@pytest.fixture(scope="session")
def app_url(tmp_path_factory, prepared) -> str:
    env = {"VIT_EXPLORER_CACHE": str(prepared.cache),
           "VIT_EXPLORER_UPLOADS": str(tmp_path_factory.mktemp("uploads")),
           "VIT_EXPLORER_DEVICE": "cpu",
           "VIT_EXPLORER_DATA_ROOTS": None}  # the test folders live in a temp dir
    # the code under test does not change during the run: no "source changed" prompt
    # (it would hold the status widget) and no reload mid-test
    proc, url = start_server(tmp_path_factory.mktemp("log") / "streamlit.log", env,
                             "--server.headless", "true", "--browser.gatherUsageStats",
                             "false", "--server.fileWatcherType", "none",
                             "--server.runOnSave", "false")
    yield url
    proc.terminate()
    proc.wait(timeout=20)


@pytest.fixture(scope="session")
def browser():
    from playwright.sync_api import sync_playwright
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_FLAGS)
        yield b
        b.close()


@pytest.fixture(scope="session")
def new_context(browser):
    """Browser contexts (one Streamlit session per page) that record script runs."""
    from tests.e2e.helpers import MONITOR_JS

    opened = []

    def make(**kwargs):
        kwargs.setdefault("viewport", {"width": 1400, "height": 1000})
        context = browser.new_context(**kwargs)
        context.add_init_script(MONITOR_JS)
        opened.append(context)
        return context

    yield make
    for context in opened:
        try:
            context.close()
        except Exception:  # already closed by its test
            pass


@pytest.fixture(scope="session")
def first_visit(app_url, new_context) -> dict:
    """The fresh server's very first session, opened on a shared link (/patterns), as
    a user following a link would; records whether Streamlit's "Page not found"
    dialog ever showed and the page's heading."""
    from tests.e2e.helpers import open_app, saw_page_not_found

    context = new_context()
    first = context.new_page()
    open_app(first, f"{app_url}/patterns", timeout_ms=180_000)  # imports torch: slower
    ARTIFACTS.mkdir(exist_ok=True)
    first.screenshot(path=str(ARTIFACTS / "first_visit.png"), full_page=True)
    seen = {"not_found": saw_page_not_found(first) or first.get_by_text("Page not found").count() > 0,
            "saw_loading": bool(first.evaluate("window.__appMonitor.sawLoading")),
            "heading": first.locator("h1").first.inner_text()}
    context.close()
    return seen


@pytest.fixture
def page(new_context, first_visit, request):
    context = new_context()
    pg = context.new_page()
    yield pg
    ARTIFACTS.mkdir(exist_ok=True)
    pg.screenshot(path=str(ARTIFACTS / f"{request.node.name}.png"), full_page=True)
    context.close()
