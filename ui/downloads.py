"""Charts and tables with download buttons: every chart as PNG (rendered on
click with vl-convert) and its data as CSV, every table as CSV. A downloaded file is
named after the model, the selected image and the view (:func:`download_name`)."""
from __future__ import annotations

import io
from typing import Any

import altair as alt
import numpy as np
import pandas as pd
import streamlit as st
from matplotlib.figure import Figure
from PIL import Image

from ui.state import selection


def chart_png(chart: alt.TopLevelMixin) -> bytes:
    buffer = io.BytesIO()
    chart.save(buffer, format="png", scale_factor=2)
    return buffer.getvalue()


def chart_frame(chart: alt.TopLevelMixin) -> pd.DataFrame:
    """The data a chart draws: its largest data table (layers, facets and concatenated
    views searched)."""
    frames: list[pd.DataFrame] = []

    def walk(part: Any) -> None:
        if isinstance(getattr(part, "data", None), pd.DataFrame):
            frames.append(part.data)
        for name in ("layer", "hconcat", "vconcat", "concat"):
            for sub in getattr(part, name, None) or []:
                walk(sub)
        spec = getattr(part, "spec", None)
        if spec is not None and spec is not alt.Undefined:
            walk(spec)

    walk(chart)
    return max(frames, key=len) if frames else pd.DataFrame()


def chart(chart: alt.TopLevelMixin, name: str, data: pd.DataFrame | None = None,
          **kwargs: Any) -> Any:
    """`st.altair_chart` (widget key `name`) with "Download chart (PNG)" and "Download
    data (CSV)" buttons (`data`: the table behind it, default the chart's own data);
    returns its event."""
    kwargs.setdefault("width", "stretch")
    event = st.altair_chart(chart, key=name, **kwargs)
    left, right = st.columns(2)
    with left:
        st.download_button("Download chart (PNG)", data=lambda: chart_png(chart),
                           file_name=file_name(name, "png"), mime="image/png", key=f"png_{name}",
                           on_click="ignore", type="tertiary", icon=":material/download:")
    with right:
        csv(chart_frame(chart) if data is None else data, name, "Download data (CSV)")
    return event


def table(df: pd.DataFrame, name: str, number_format: str | None = None,
          **kwargs: Any) -> None:
    """`st.dataframe` plus a "Download CSV" button (the CSV keeps full precision)."""
    st.dataframe(df.style.format(number_format) if number_format else df, **kwargs)
    csv(df, name)


def csv(df: pd.DataFrame, name: str, label: str = "Download table (CSV)") -> None:
    """A button that downloads `df` as CSV at full precision (index kept when named)."""
    st.download_button(label, data=df.to_csv(index=df.index.name is not None).encode(),
                       file_name=file_name(name, "csv"), mime="text/csv", key=f"csv_{name}",
                       on_click="ignore", type="tertiary", icon=":material/download:")


def image_png(pixels: np.ndarray) -> bytes:
    """PNG of an H x W x C uint8 image (C = 1 or 3)."""
    buffer = io.BytesIO()
    Image.fromarray(pixels[..., 0] if pixels.shape[-1] == 1 else pixels).save(buffer, "PNG")
    return buffer.getvalue()


def safe_name(name: str) -> str:
    """`name` as a plain file name (letters, digits, - _ . only)."""
    return "".join(c if c.isascii() and (c.isalnum() or c in "-_.") else "_" for c in name)


def download_name(model: str, image: str, view: str, extension: str) -> str:
    """The file name of a download of `view` for `image` under `model` (the last part
    of its path or name), safe for any file system: ``demo_test-00003_strength.csv``."""
    model_name = model.rstrip("/").rsplit("/", 1)[-1]
    return f"{safe_name(f'{model_name}_{image}_{view}')}.{extension}"


def file_name(view: str, extension: str) -> str:
    """:func:`download_name` for the current selection."""
    sel = selection()
    return download_name(sel["model"], sel["image"], view, extension)


def image(pixels: np.ndarray, name: str, data: pd.DataFrame | None = None) -> None:
    """A "Download PNG" button for an H x W x C uint8 image, and one for the numbers it
    shows (`data`, e.g. a heat map's values per patch) as CSV."""
    safe = safe_name(name)
    st.download_button("Download image (PNG)", data=lambda: image_png(pixels),
                       file_name=file_name(name, "png"), mime="image/png", key=f"img_{safe}",
                       on_click="ignore", type="tertiary", icon=":material/download:")
    if data is not None:
        csv(data, safe, "Download values (CSV)")


def figure_png(fig: Figure) -> bytes:
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=110)
    return buffer.getvalue()


def figure(fig: Figure, name: str, data: pd.DataFrame) -> None:
    """`st.pyplot` plus "Download PNG" and "Download data (CSV)" buttons."""
    st.pyplot(fig)
    safe = safe_name(name)
    st.download_button("Download chart (PNG)", data=lambda: figure_png(fig),
                       file_name=file_name(name, "png"), mime="image/png", key=f"fig_{safe}",
                       on_click="ignore", type="tertiary", icon=":material/download:")
    csv(data, safe, "Download data (CSV)")
