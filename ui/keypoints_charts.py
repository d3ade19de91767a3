"""Charts of the keypoints page (SPEC "Keypoints and spurious correlations"): the image
with its keypoints, patch grid and object, the lift heatmap, the lift per layer and
the interrelation table. They draw what ``core.analyses.keypoints`` and
``core.analyses.spurious`` computed; nothing here computes."""
from __future__ import annotations

import altair as alt
import numpy as np
import pandas as pd
from matplotlib.figure import Figure
from matplotlib.patches import Circle, Rectangle

from core.analyses.keypoints import BINS
from ui.charts import PAD, head_frame, lines

LIFT_PICK = "lift_pick"
LIFT_FORMAT, LIFT_FONT = ".2f", 11  # the numbers in the lift cells


def keypoints_figure(image: np.ndarray, keypoints: np.ndarray, grid: tuple[int, int],
                     patch_size: tuple[int, int], inside: np.ndarray | None) -> Figure:
    """The H x W x C image (input pixels, [0, 1]) with the patch grid, each keypoint
    (keypoint, field: x, y, response, size) as a circle of its size, and the patches
    outside the object (patch,) hatched."""
    (gh, gw), (ph, pw) = grid, patch_size
    fig = Figure(figsize=(4.2, 4.2 * gh * ph / (gw * pw)))
    ax = fig.add_axes((0, 0, 1, 1))
    ax.imshow(image[..., 0] if image.shape[-1] == 1 else image, cmap="gray", vmin=0, vmax=1,
              extent=(0, gw * pw, gh * ph, 0), interpolation="nearest")
    for r in range(1, gh):
        ax.axhline(r * ph, color="#4fc3f7", lw=0.6, alpha=0.8)
    for c in range(1, gw):
        ax.axvline(c * pw, color="#4fc3f7", lw=0.6, alpha=0.8)
    if inside is not None:
        for j in np.flatnonzero(~inside):
            r, c = divmod(int(j), gw)
            ax.add_patch(Rectangle((c * pw, r * ph), pw, ph, fill=False, hatch="///",
                                   edgecolor="#ffb74d", lw=0, alpha=0.7))
    for x, y, _, size in keypoints:
        ax.add_patch(Circle((x, y), max(size / 2, 0.3), fill=False, color="#e53935", lw=1.2))
        ax.plot([x], [y], "+", color="#e53935", ms=5)
    ax.set_xlim(0, gw * pw)
    ax.set_ylim(gh * ph, 0)
    ax.axis("off")
    return fig


def lift_heatmap(lift: np.ndarray, layer: int, head: int, title: str) -> alt.LayerChart:
    """Layer x head lift (share over chance): 1 = chance (white), above it orange, below
    blue; the selected head outlined. Clicking a cell selects the head (selection
    ``lift_pick``, fields layer, head)."""
    layers = lift.shape[0]
    df = head_frame({"lift": lift})
    pick = alt.selection_point(name=LIFT_PICK, fields=["layer", "head"], on="click",
                               nearest=True)  # a click on a cell's number counts too
    top = max(2.0, float(np.nanmax(lift)) if lift.size else 2.0)
    digits = max((len(f"{v:{LIFT_FORMAT}}") for v in lift[np.isfinite(lift)]), default=4)
    base = alt.Chart(df).encode(
        x=alt.X("head:O", title="Head"),
        y=alt.Y("layer:O", title=lines("Layer (0 = first block)")))
    cells = base.mark_rect().encode(
        color=alt.Color("lift:Q", title=title, scale=alt.Scale(
            scheme="blueorange", domain=[0, 1, top], domainMid=1)),
        tooltip=["layer", "head", alt.Tooltip("lift:Q", format=".2f", title=title)],
    ).add_params(pick)
    text = base.mark_text(fontSize=LIFT_FONT).encode(text=alt.Text("lift:Q", format=LIFT_FORMAT))
    chosen = base.transform_filter(
        (alt.datum.layer == layer) & (alt.datum.head == head)
    ).mark_rect(fill=None, stroke="black", strokeWidth=2.5)
    return (cells + text + chosen).properties(  # a cell holds its number (7 px a digit)
        width=alt.Step(7 * digits + 8), height=alt.Step(max(22, 160 // max(layers, 1))),
        autosize=PAD)


def layer_lift_chart(mean: np.ndarray, std: np.ndarray) -> alt.LayerChart:
    """Mean lift per layer (line) with a band of +-1 standard deviation over the images;
    the dashed line is chance (lift 1)."""
    df = pd.DataFrame({"layer": np.arange(len(mean)), "mean": mean, "low": mean - std,
                       "high": mean + std})
    x = alt.X("layer:Q", title="Layer (0 = first block)", axis=alt.Axis(tickMinStep=1,
                                                                         format="d"))
    band = alt.Chart(df).mark_area(opacity=0.25, color="#ef6c00").encode(
        x=x, y=alt.Y("low:Q", title="Lift over chance (1 = chance)"), y2="high")
    line = alt.Chart(df).mark_line(point=True, color="#ef6c00").encode(
        x=x, y="mean:Q", tooltip=["layer", alt.Tooltip("mean:Q", format=".2f", title="mean lift"),
                                  alt.Tooltip("high:Q", format=".2f", title="mean + 1 SD"),
                                  alt.Tooltip("low:Q", format=".2f", title="mean - 1 SD")])
    chance = alt.Chart(pd.DataFrame({"y": [1.0]})).mark_rule(strokeDash=[4, 4],
                                                            color="#555").encode(y="y:Q")
    return (band + line + chance).properties(height=260)


def interrelation_frame(table: np.ndarray, bin_share: np.ndarray) -> pd.DataFrame:
    """The 3 x 3 table in percent (rows: source bin, columns: target bin) with the bins'
    shares of the patches as the last row; empty source bins have no row values."""
    names = [f"to {b}" for b in BINS]
    df = pd.DataFrame(100 * table, columns=names, index=[f"from {b}" for b in BINS])
    df.loc[bin_share == 0] = np.nan  # no source patch in that bin
    df.loc["share of the patches (chance)"] = 100 * bin_share
    return df.rename_axis("attention (%)")


# the ranking as the page shows it (its CSV keeps every column of the page's rows)
FILLED_TOP, FILL_CHANGES = "top-1, outside filled", "fill changes top-1"
PROBABILITY, SCORE = "P(predicted) %: as is → filled", "score s: as is → filled"


def shown_ranking(full: pd.DataFrame, has_classes: bool) -> pd.DataFrame:
    """The ranking's rows (the page's columns: image, predicted, outside object (%),
    probability before (%), ...) as shown: whether filling the outside of the object
    changes the prediction first, the probability before and after as "a → b"."""
    if not has_classes:
        return pd.DataFrame({
            "image": full["image"], "class in the set": full["class in the set"],
            SCORE: [f"{a:.3f} → {b:.3f}" for a, b in zip(full["score before"],
                                                          full["score without outside"])],
            "outside object (%)": full["outside object (%)"],
            "object from": full["object from"]})
    return pd.DataFrame({
        "image": full["image"], "predicted": full["predicted"],
        FILLED_TOP: full["prediction without outside"], FILL_CHANGES: full["changes"],
        PROBABILITY: [f"{a:.1f} → {b:.1f}" for a, b in zip(
            full["probability before (%)"], full["probability without outside (%)"])],
        "outside object (%)": full["outside object (%)"], "true class": full["true class"],
        "object from": full["object from"]})


def prompt_rates_chart(alphas: np.ndarray, fix: np.ndarray, keep: np.ndarray,
                       objects: tuple[str, ...]) -> alt.Chart:
    """Fix and keep rates (object x alpha, 0-1) of the attention prompt, in %, a line per
    rate and object."""
    frame = pd.DataFrame([{"outside weight": float(a), "rate": rate, "inside": name,
                           "percent": 100 * float(values[o, k])}
                          for rate, values in (("corrected (relied on the marker)", fix),
                                               ("unchanged (the others)", keep))
                          for o, name in enumerate(objects) for k, a in enumerate(alphas)])
    return alt.Chart(frame).mark_line(point=True).encode(
        x=alt.X("outside weight:Q", title=lines("Weight of the patches outside (0 = ignored, "
                                                "1 = as is)")),
        y=alt.Y("percent:Q", title="Images (%)", scale=alt.Scale(domain=[0, 100])),
        color=alt.Color("rate:N", title="Rate", legend=alt.Legend(orient="bottom",
                                                                  labelLimit=0, columns=1)),
        strokeDash=alt.StrokeDash("inside:N", title="Inside is",
                                  legend=alt.Legend(orient="bottom", columns=1)),
        tooltip=["rate", "inside", alt.Tooltip("outside weight:Q", format="g"),
                 alt.Tooltip("percent:Q", format=".1f")],
    ).properties(width=360, height=240)
