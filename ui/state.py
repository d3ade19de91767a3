"""The shared selection (model, images, image, layer, head), kept in
``st.session_state`` and mirrored in the URL query parameters so that a copied
link opens the same view."""
from __future__ import annotations

from typing import Any

import streamlit as st

DEFAULTS: dict[str, Any] = {"model": "demo", "checkpoint": "", "images": "demo",
                            "image": "", "layer": 0, "head": 0}
_KEY = "selection"


def selection() -> dict[str, Any]:
    """The current selection, first read from the URL."""
    if _KEY not in st.session_state:
        sel = dict(DEFAULTS)
        for name, default in DEFAULTS.items():
            raw = st.query_params.get(name)
            if raw is not None:
                try:
                    sel[name] = type(default)(raw)
                except ValueError:
                    pass  # a malformed link keeps the default
        st.session_state[_KEY] = sel
    return st.session_state[_KEY]


def select(**changes: Any) -> None:
    """Change the selection (for example from a chart click) and update the URL."""
    selection().update(changes)
    write_url()


def write_url() -> None:
    sel = selection()
    st.query_params.from_dict({k: str(v) for k, v in sel.items() if v != DEFAULTS[k]})


def bind(widget_key: str, name: str) -> None:
    """Put the selection's value into a widget's key (call before creating it)."""
    st.session_state[widget_key] = selection()[name]


def from_widget(widget_key: str, name: str) -> None:
    """on_change callback: copy a widget's value into the selection."""
    select(**{name: st.session_state[widget_key]})


def new_chart_pick(chart_key: str, event: Any) -> dict[str, Any] | None:
    """The point clicked in an Altair chart (``st.altair_chart(on_select="rerun")``),
    returned once: a selection the chart still holds from an earlier click is not
    returned again, so later sidebar changes are not overridden by it."""
    points: list[dict[str, Any]] = []
    for value in (event.selection if event else {}).values():
        if isinstance(value, list) and value:
            points = value
            break
    seen_key = f"_seen_pick_{chart_key}"
    pick = points[0] if points else None
    if pick == st.session_state.get(seen_key):
        return None
    st.session_state[seen_key] = pick
    return pick
