"""Every word of every chart fits (issue 30): each page of the table, on a set whose
whole-set views are computed, at 420 px and 1,400 px wide. In the browser, every Vega
chart is measured once drawn: it is an SVG with marks in it (a chart left empty, by a
spec Vega-Lite drops a part of, fails), none of its texts (axis titles and labels,
legend titles and labels, chart titles, text marks) ends in Vega's ellipsis (a title or
label cut at its limit), and none sticks out of the chart's SVG box (or out of a box
round it that hides what overflows). Vega's warnings
on the browser console fail the test too (they name what it dropped).
"""
from __future__ import annotations

import pytest
from playwright.sync_api import TimeoutError

from tests.e2e.helpers import (LAST_ON_CLICKS, NARROW, assert_no_exception,
                               keyed, open_app)
from ui.pages import PAGES

pytestmark = pytest.mark.e2e
WIDE = {"width": 1400, "height": 1000}

# Per chart (its widget key, or its place on the page): whether it is an SVG with
# marks, its texts cut by an ellipsis and its texts outside the SVG box (role, text,
# px out sideways, px out up or down). A text's box is its line box: across the text it reaches past the font
# size, which Vega's layout does not count and no glyph fills; that much is allowed.
SVGS_DRAWN_JS = """() => {
  const charts = [...document.querySelectorAll('[data-testid="stVegaLiteChart"]')];
  const idle = document.querySelector('[data-testid="stApp"]')
    ?.getAttribute('data-test-script-state') !== 'running';
  return idle && charts.length > 0 && charts.every(c => c.querySelector('svg.marks'));
}"""
MEASURE_JS = """() => {
  const out = [];
  const charts = document.querySelectorAll('[data-testid="stVegaLiteChart"]');
  charts.forEach((c, i) => {
    const keyed = c.closest('[class*="st-key-"]');
    const key = keyed ? keyed.className.match(/st-key-(\\S+)/)[1] : `chart ${i + 1}`;
    const svg = c.querySelector('svg.marks');
    if (!svg) { out.push({key, svg: false, marks: 0, cut: [], outside: []}); return; }
    // what a user sees of the SVG: its box, cut by the boxes round it that hide what
    // overflows them (one that scrolls shows all of it)
    const r0 = svg.getBoundingClientRect();
    const box = {left: r0.left, right: r0.right, top: r0.top, bottom: r0.bottom};
    const hides = (v) => v === 'hidden' || v === 'clip';
    for (let a = svg.parentElement; a && a !== document.body; a = a.parentElement) {
      const style = getComputedStyle(a), r = a.getBoundingClientRect();
      if (hides(style.overflowX)) {
        box.left = Math.max(box.left, r.left); box.right = Math.min(box.right, r.right);
      }
      if (hides(style.overflowY)) {
        box.top = Math.max(box.top, r.top); box.bottom = Math.min(box.bottom, r.bottom);
      }
      if (a.matches('[data-testid="stElementContainer"]')) break;
    }
    const marks = svg.querySelectorAll('.role-mark > *').length;
    const cut = [], outside = [];
    for (const t of svg.querySelectorAll('text')) {
      const text = t.textContent;
      if (!text) continue;
      const role = (t.parentElement.getAttribute('class') || '').replace(/^mark-text /, '');
      if (text.endsWith('\u2026')) cut.push([role, text]);
      const r = t.getBoundingClientRect();
      if (r.width === 0) continue;
      const angle = /rotate\\((-?[0-9.]+)/.exec(t.getAttribute('transform') || '');
      const turn = angle ? Math.abs(parseFloat(angle[1])) % 180 : 0;
      const across = turn === 90 ? r.width : r.height;  // the line box's height
      const slack = Math.max(0, (across - parseFloat(getComputedStyle(t).fontSize)) / 2) + 1;
      const h = Math.max(box.left - r.left, r.right - box.right);
      const v = Math.max(box.top - r.top, r.bottom - box.bottom);
      const [along, perp] = turn === 90 ? [v, h] : [h, v];
      const allowed = turn === 0 || turn === 90 ? 1 : slack;  // slanted: both ways
      if (along > allowed || perp > slack) outside.push([role, text, Math.round(h), Math.round(v)]);
    }
    out.push({key, svg: true, width: Math.round(box.right - box.left),
              height: Math.round(box.bottom - box.top),
              marks, cut, outside});
  });
  return out;
}"""


@pytest.mark.parametrize("size", [NARROW, WIDE], ids=["420px", "1400px"])
@pytest.mark.parametrize("entry", PAGES, ids=[p.name for p in PAGES])
def test_every_chart_word_fits(page, app_url, prepared, entry, size):
    warnings: list[str] = []
    page.on("console", lambda m: warnings.append(m.text) if m.type == "warning" else None)
    page.set_viewport_size(size)
    open_app(page, f"{app_url}/{entry.name}?images={prepared.clicks}",
             page.locator("h1", has_text=entry.heading), keyed(page, LAST_ON_CLICKS[entry.name]))
    # Streamlit draws a chart only once its box has a width: one in a closed expander
    # (Importance's estimate) stays undrawn until the expander opens, so open them all
    for summary in page.locator('[data-testid="stExpander"] details:not([open]) > summary').all():
        summary.click()
    try:  # every chart drawn as the SVG measured here (a rerun redraws them)
        page.wait_for_function(SVGS_DRAWN_JS, polling=100, timeout=60_000)
    except TimeoutError:  # measured as empty below
        pass
    assert_no_exception(page)
    charts = page.evaluate(MEASURE_JS)
    assert charts
    empty = [c for c in charts if not c["svg"] or c["marks"] == 0 or c["width"] < 20
             or c["height"] < 20]
    problems = [(c["key"], c["cut"], c["outside"]) for c in charts if c["cut"] or c["outside"]]
    vega = [w for w in warnings if "WARN" in w or "Dropping" in w]
    assert not (empty or problems or vega), {"empty": empty, "cut or outside": problems,
                                             "Vega's warnings": vega}
