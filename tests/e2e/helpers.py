"""Waiting for Streamlit in a real browser, on explicit signals only.

A script run is over when Streamlit's root element says so
(``data-test-script-state="notRunning"``, set from the server's "script finished"
message), no element is left stale from the run before and the running indicator
is gone. That alone can also hold for an instant between two runs (a chart click
reruns once to read the click, then ``st.rerun()`` runs again) or before the run a
click asked for has begun, so every wait also names the content that the expected
run renders: :func:`wait_for_app` returns once that content is visible AND the
script is idle, and checks the content again after.

:data:`MONITOR_JS` (added to every browser context) records each change of the
script state with its time, and whether a "Page not found" dialog ever showed, so
that tests can count runs and see which sessions ran at the same time.
"""
from __future__ import annotations

from urllib.parse import parse_qs, urlparse

from playwright.sync_api import Locator, Page, expect

TIMEOUT_MS = 120_000  # a ceiling for a failing test, never a pause
NARROW = {"width": 420, "height": 900}  # a phone held upright
# on the clicks folder (its whole-set views cached), what each page draws last
LAST_ON_CLICKS = {"overview": "csv_overview_tsne", "importance": "png_importance_mode_predictions",
                  "strength": "csv_distance_by_layer", "patterns": "pattern_token",
                  "rollout": "ro_checkpoint", "keypoints": "csv_spurious_relevance",
                  "classes": "csv_classes_strength", "compare": "csv_compare_maps_right"}
CHARTS_DRAWN_JS = """() => {
  const charts = [...document.querySelectorAll('[data-testid="stVegaLiteChart"]')];
  return charts.length > 0 && charts.every(c => c.querySelector('canvas, svg.marks'));
}"""

MONITOR_JS = """
(() => {
  const m = window.__appMonitor = {runs: [], pageNotFound: false, sawLoading: false,
                                   state: null};
  const look = () => {
    const app = document.querySelector('[data-testid="stApp"]');
    const state = app && app.getAttribute('data-test-script-state');
    if (state && state !== m.state) {
      const now = Date.now();
      if (state === 'running') m.runs.push({start: now, end: null});
      else if (m.state === 'running' && m.runs.length) m.runs[m.runs.length - 1].end = now;
      m.state = state;
    }
  };
  new MutationObserver((records) => {
    for (const r of records) {
      if (r.type === 'childList') {
        for (const n of r.addedNodes) {
          if (n.textContent && n.textContent.includes('Page not found')) m.pageNotFound = true;
          if (n.textContent && n.textContent.includes('Loading the engine')) m.sawLoading = true;
        }
      }
    }
    look();
  }).observe(document, {subtree: true, childList: true, attributes: true,
                        attributeFilter: ['data-test-script-state']});
})();
"""

IDLE_JS = """() => {
  const app = document.querySelector('[data-testid="stApp"]');
  return !!app && app.getAttribute('data-test-script-state') === 'notRunning'
    && app.getAttribute('data-test-connection-state') === 'CONNECTED'
    && !document.querySelector('[data-testid="stStatusWidget"]')
    && !document.querySelector('[data-testid="stElementContainer"][data-stale="true"]')
    && !!document.querySelector('h1');
}"""


def wait_idle(page: Page, timeout_ms: int = TIMEOUT_MS) -> None:
    """Wait until no script run is going on (see the module docstring: on its own this
    does not say WHICH run finished; use :func:`wait_for_app`)."""
    page.wait_for_function(IDLE_JS, polling=100, timeout=timeout_ms)


def wait_for_app(page: Page, *ready: Locator | str, timeout_ms: int = TIMEOUT_MS) -> None:
    """Wait until `ready` (locators, or texts to find) is visible and the script run
    that drew it has finished. Without `ready`: the page's title and the selected
    image, which every page draws (for a first load: the first run has ended)."""
    wanted = [(page.get_by_text(r) if isinstance(r, str) else r).first for r in ready] or [
        page.locator("h1").first, page.locator('[data-testid="stImage"] img').first]
    for locator in wanted:
        expect(locator).to_be_visible(timeout=timeout_ms)
    wait_idle(page, timeout_ms)
    for locator in wanted:  # drawn by the run that has now ended, not a stale one
        expect(locator).to_be_visible(timeout=5_000)


def open_app(page: Page, url: str, *ready: Locator | str,
             timeout_ms: int = TIMEOUT_MS) -> None:
    page.goto(url)
    wait_for_app(page, *ready, timeout_ms=timeout_ms)


def runs(page: Page) -> list[dict]:
    """The script runs this page has seen: ``{"start": ms, "end": ms or None}``."""
    return page.evaluate("window.__appMonitor.runs")


def saw_page_not_found(page: Page) -> bool:
    return bool(page.evaluate("window.__appMonitor.pageNotFound"))


def assert_no_exception(page: Page) -> None:
    expect(page.locator('[data-testid="stException"]')).to_have_count(0)


def query_param(page: Page, name: str) -> str | None:
    values = parse_qs(urlparse(page.url).query).get(name)
    return values[0] if values else None


def keyed(page: Page, key: str) -> Locator:
    """The element of a widget (or chart) created with ``key=`` (Streamlit's
    ``st-key-<key>`` class on its container)."""
    return page.locator(f".st-key-{key}")


def chart(page: Page, key: str) -> Locator:
    """What Vega drew of the Altair chart made with ``key=`` (its canvas or SVG marks):
    visible once the chart is drawn and can take clicks."""
    return keyed(page, key).locator('[data-testid="stVegaLiteChart"]').locator(
        "canvas, svg.marks").first


def open_page_from_sidebar(page: Page, title: str, *ready: Locator | str) -> None:
    """Follow the sidebar navigation link (the session and its selection stay) and
    wait for `ready` (something only the new page draws)."""
    page.get_by_role("link", name=title, exact=True).click()
    wait_for_app(page, *ready)


def click_chart(page: Page, key: str, positions: list[tuple[float, float]],
                changed: str) -> None:
    """Click the chart made with ``key=`` at fractions (fx, fy) of its drawing until
    the JS predicate `changed` holds after the click's run. Each click waits for the
    run it starts and for its end (nearest-point selections: a click anywhere in the
    plot picks a point and starts a run); a click that picked the point already
    selected changes nothing, and the next position is tried."""
    drawn = chart(page, key)
    for fx, fy in positions:
        expect(drawn).to_be_visible(timeout=TIMEOUT_MS)
        before = len(runs(page))
        drawn.scroll_into_view_if_needed()
        area = drawn.bounding_box()
        x, y = area["x"] + fx * area["width"], area["y"] + fy * area["height"]
        page.mouse.move(x, y)
        page.mouse.click(x, y)
        page.wait_for_function(f"() => window.__appMonitor.runs.length > {before}",
                               polling=100, timeout=TIMEOUT_MS)
        wait_idle(page)
        if page.evaluate(changed):
            return
    raise AssertionError(f"no click at {positions} changed the page ({changed})")


def download(page: Page, button: Locator) -> bytes:
    """Click a download button and return the downloaded file's bytes."""
    expect(button).to_be_visible(timeout=TIMEOUT_MS)
    with page.expect_download(timeout=TIMEOUT_MS) as info:
        button.click()
    with open(info.value.path(), "rb") as f:
        return f.read()
