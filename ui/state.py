"""The shared selection (model, images, image, layer, head) and the pages' own
settings (:func:`setting`), kept in ``st.session_state`` and mirrored in the URL query
parameters (defaults left out) so that a copied link opens the same view."""
from __future__ import annotations

from typing import Any, Callable

import streamlit as st

DEFAULTS: dict[str, Any] = {"model": "demo", "checkpoint": "", "images": "demo",
                            "image": "", "layer": 0, "head": 0,
                            "reference": ""}  # a model without classes: the image whose
# embedding every image is measured on ("": each image its own)
_KEY = "selection"
_SETTINGS = "setting_defaults"  # page setting name -> its default


def selection() -> dict[str, Any]:
    """The current selection, first read from the URL (a page's settings are kept as
    the link gave them until the page reads them with :func:`setting`)."""
    if _KEY not in st.session_state:
        sel = dict(DEFAULTS)
        for name, raw in st.query_params.to_dict().items():
            if name not in DEFAULTS:
                sel[name] = raw
                continue
            try:
                sel[name] = type(DEFAULTS[name])(raw)
            except ValueError:
                pass  # a malformed link keeps the default
        st.session_state[_KEY] = sel
    return st.session_state[_KEY]


def select(**changes: Any) -> None:
    """Change the selection (for example from a chart click) and update the URL."""
    selection().update(changes)
    write_url()


def _parsed(raw: Any, default: Any) -> Any:
    """A link's text as a value of the default's type (ValueError when it is not one)."""
    if isinstance(default, bool) and isinstance(raw, str):
        if raw not in ("True", "False"):
            raise ValueError(raw)
        return raw == "True"
    return type(default)(raw)


def setting(name: str, default: Any, options: list[Any] | None = None,
            valid: Callable[[Any], bool] | None = None) -> Any:
    """A page's setting: on first use in a session, the link's value (one not among
    `options`, refused by `valid`, or not of the default's type, gives the default);
    then kept in the selection, so that it goes into the URL when it differs from
    `default`."""
    defaults = st.session_state.setdefault(_SETTINGS, {})
    sel = selection()
    if name not in defaults:
        defaults[name] = default
        try:
            value = _parsed(sel.get(name, default), default)
        except (TypeError, ValueError):
            value = default
        usable = ((options is None or value in options) and (valid is None or valid(value)))
        sel[name] = value if usable else default
    return sel[name]


OPTION_WIDGETS = (st.selectbox, st.radio)  # widgets that take the options as an argument


def bound(name: str, default: Any, widget: Callable[..., Any], label: str,
          options: list[Any] | None = None, valid: Callable[[Any], bool] | None = None,
          key: str | None = None, **kwargs: Any) -> Any:
    """A widget (``st.selectbox``, ``st.radio``, ``st.toggle``, ``st.slider``,
    ``st.number_input``, ``st.text_input``...) showing the page setting `name`, kept in
    the URL (:func:`setting`); returns its value. `options` go to the option widgets
    and check a link's value; `valid` checks it for the others (their range is in
    `kwargs`, e.g. ``min_value``). Call it inside the column (``with column:``)."""
    value = setting(name, default, options, valid)
    key = key or f"w_{name}"
    bind(key, name)
    args = (options,) if widget in OPTION_WIDGETS else ()
    widget(label, *args, key=key, on_change=from_widget, args=(key, name), **kwargs)
    return value


def write_url() -> None:
    """The selection into the URL: every value that differs from its default (a page
    setting not read yet in this session, as the link gave it)."""
    defaults = {**st.session_state.get(_SETTINGS, {}), **DEFAULTS}
    st.query_params.from_dict({k: str(v) for k, v in selection().items()
                               if k not in defaults or v != defaults[k]})


def bind(widget_key: str, name: str) -> None:
    """Put the selection's value into a widget's key (call before creating it)."""
    st.session_state[widget_key] = selection()[name]


def from_widget(widget_key: str, name: str) -> None:
    """on_change callback: copy a widget's value into the selection."""
    select(**{name: st.session_state[widget_key]})


def chart_point(event: Any) -> dict[str, Any] | None:
    """The point clicked in an Altair chart (``st.altair_chart(on_select="rerun")``),
    None when none is."""
    for value in (event.selection if event else {}).values():
        if isinstance(value, list) and value:
            return value[0]
    return None


def new_chart_pick(chart_key: str, event: Any) -> dict[str, Any] | None:
    """The point clicked in chart `chart_key`, returned once (:func:`new_pick`)."""
    return new_pick(chart_key, chart_point(event))


def table_row(event: Any) -> int | None:
    """The row selected in a table (``st.dataframe(on_select="rerun",
    selection_mode="single-row")``), None when none is."""
    rows = event.selection.rows if event else []
    return rows[0] if rows else None


def select_picked_head(key: str, pick: dict[str, Any] | None) -> None:
    """A head picked in widget `key` (a clicked point or table row with fields layer
    and head) selects that head on every page, once: the widget keeps its pick across
    reruns, and a later sidebar change must win. The page then runs again, so that the
    sidebar shows the head."""
    pick = new_pick(key, pick)
    if pick and "layer" in pick and "head" in pick:
        select(layer=int(pick["layer"]), head=int(pick["head"]))
        st.rerun()


def select_clicked_head(chart_key: str, event: Any) -> None:
    """A click on a head in chart `chart_key` selects it (:func:`select_picked_head`)."""
    select_picked_head(chart_key, chart_point(event))


def new_pick(key: str, pick: Any) -> Any:
    """`pick` (a clicked point or table row of widget `key`) the first time it is seen,
    else None: a widget keeps its selection across reruns, and an old one must not
    override later changes."""
    seen_key = f"_seen_pick_{key}"
    if pick == st.session_state.get(seen_key):
        return None
    st.session_state[seen_key] = pick
    return pick
