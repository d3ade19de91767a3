"""Charts and tables with download buttons: every chart as PNG (rendered on
click with vl-convert), every table as CSV."""
from __future__ import annotations

import io
from typing import Any

import altair as alt
import numpy as np
import pandas as pd
import streamlit as st
from matplotlib.figure import Figure
from PIL import Image


def chart_png(chart: alt.TopLevelMixin) -> bytes:
    buffer = io.BytesIO()
    chart.save(buffer, format="png", scale_factor=2)
    return buffer.getvalue()


def chart(chart: alt.TopLevelMixin, name: str, **kwargs: Any) -> Any:
    """`st.altair_chart` (widget key `name`) plus a "Download PNG" button; returns its event."""
    kwargs.setdefault("width", "stretch")
    event = st.altair_chart(chart, key=name, **kwargs)
    st.download_button("Download chart (PNG)", data=lambda: chart_png(chart),
                       file_name=f"{name}.png", mime="image/png", key=f"png_{name}",
                       on_click="ignore", type="tertiary", icon=":material/download:")
    return event


def table(df: pd.DataFrame, name: str, number_format: str | None = None,
          **kwargs: Any) -> None:
    """`st.dataframe` plus a "Download CSV" button (the CSV keeps full precision)."""
    st.dataframe(df.style.format(number_format) if number_format else df, **kwargs)
    csv(df, name)


def csv(df: pd.DataFrame, name: str, label: str = "Download table (CSV)") -> None:
    """A button that downloads `df` as CSV at full precision (index kept when named)."""
    st.download_button(label, data=df.to_csv(index=df.index.name is not None).encode(),
                       file_name=f"{name}.csv", mime="text/csv", key=f"csv_{name}",
                       on_click="ignore", type="tertiary", icon=":material/download:")


def image_png(pixels: np.ndarray) -> bytes:
    """PNG of an H x W x C uint8 image (C = 1 or 3)."""
    buffer = io.BytesIO()
    Image.fromarray(pixels[..., 0] if pixels.shape[-1] == 1 else pixels).save(buffer, "PNG")
    return buffer.getvalue()


def safe_name(name: str) -> str:
    """`name` as a plain file name (letters, digits, - _ . only)."""
    return "".join(c if c.isascii() and (c.isalnum() or c in "-_.") else "_" for c in name)


def image(pixels: np.ndarray, name: str) -> None:
    """A "Download PNG" button for an H x W x C uint8 image."""
    safe = safe_name(name)
    st.download_button("Download image (PNG)", data=lambda: image_png(pixels),
                       file_name=f"{safe}.png", mime="image/png", key=f"img_{safe}",
                       on_click="ignore", type="tertiary", icon=":material/download:")


def figure_png(fig: Figure) -> bytes:
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=110)
    return buffer.getvalue()


def figure(fig: Figure, name: str) -> None:
    """`st.pyplot` plus a "Download PNG" button."""
    st.pyplot(fig)
    st.download_button("Download chart (PNG)", data=lambda: figure_png(fig),
                       file_name=f"{safe_name(name)}.png", mime="image/png",
                       key=f"fig_{safe_name(name)}", on_click="ignore", type="tertiary",
                       icon=":material/download:")
