"""Strength page: how far each head looks; see SPEC "Attention strength"."""
import numpy as np
import streamlit as st

from core.analyses import STRENGTH
from core.analyses.strength import evenly_spread
from core.display.strength_view import strength_over_set
from ui import downloads, resources
from ui.downloads import chart_png
from ui.report_html import Report, figure_row, section
from ui.state import select_clicked_head
from ui.strength_charts import entropy_density, heads_scatter, layer_trend_chart, strength_bars
from ui.views import intro, selected_image

HEADING = "Attention strength"


def render() -> None:
    """Draw the page."""
    intro(HEADING,
          "This page shows how far each attention head looks: how much attention a patch pays to "
          "itself (hop 0) and to the rings of patches one, two, three... steps away (hops).",
          "A low entropy means a head concentrates on one distance (often the patch itself or its "
          "neighbours); an entropy near 1 means it spreads attention evenly over near and far "
          "patches. Click a head in the first chart to select it on every page.")
    chosen = selected_image()
    lm, ds, layer, head = chosen.lm, chosen.ds, chosen.layer, chosen.head
    one = chosen.arrays(STRENGTH)

    even_entropy, even_distance = evenly_spread(lm.grid, lm.patch_size)

    def heads_view(values, title: str, even: float, name: str, fmt: str) -> None:
        """A chart of every head's value; a click selects the head."""
        select_clicked_head(name, downloads.chart(
            heads_scatter(values, layer, head, title, even, fmt), name, on_select="rerun"))

    left, right = st.columns([1.4, 1])
    with left:
        st.subheader("All heads of this image: how far each looks")
        heads_view(one["mean_distance"], "Mean distance (px)", even_distance,
                   "strength_distance", ".1f")
        heads_view(one["entropy"], "Strength entropy (0 to 1)", even_entropy, "strength_scatter",
                   ".3f")
        st.caption(f"Dashed lines: what a head spreading its attention evenly over all patches "
                   f"gives ({even_distance:.1f} px, entropy {even_entropy:.2f}); heads well "
                   "below them are local. Axes are zoomed to this model's heads.")
    with right:
        st.subheader(f"Layer {layer}, head {head}: strength by hop")
        downloads.chart(strength_bars(one["s"][layer, head]), "strength_by_hop")
        distance = float(one["mean_distance"][layer, head])
        st.caption(f"Entropy {one['entropy'][layer, head]:.3f}. Mean attention distance "
                   f"{distance:.1f} px ({distance / float(np.mean(lm.patch_size)):.2f} patches): "
                   "the attention-weighted distance from a patch to the patches it attends to, "
                   "averaged over patches. Attention to CLS is not counted.")

    st.subheader(f"Layer {layer}, head {head} over all images")
    everything = resources.whole_set(lm, ds, STRENGTH, "The strength over all images",
                                     "strength_compute")
    if everything is None or not everything.arrays:
        st.stop()
    over_set = strength_over_set(everything.arrays, layer, head)
    downloads.chart(entropy_density(over_set.entropy_x, over_set.entropy_density,
                                    float(one["entropy"][layer, head])), "entropy_density")
    st.caption(f"How this head's entropy varies between the {over_set.images} images; the red line "
               "is the selected image. One narrow peak means the head behaves the same way on "
               "every image.")

    st.subheader("Do later layers attend more globally?")
    trend_left, trend_right = st.columns(2)
    with trend_left:
        downloads.chart(layer_trend_chart(over_set.entropy_trend, "Strength entropy"),
                        "entropy_by_layer")
    with trend_right:
        downloads.chart(layer_trend_chart(over_set.distance_trend,
                                          "Mean attention distance (px)"), "distance_by_layer")
    st.caption(f"Per layer, over all heads and all {over_set.images} images: the black line is the "
               "median, the dark band holds the middle half of the heads, the light band 90%. "
               "Rising lines mean later layers spread their attention further.")


def report(r: Report) -> str:
    """Every head's mean attention distance and the selected head's strength by hop."""
    strength = r.arrays(STRENGTH)
    return section(
        "How far the heads look",
        "Left: every head's mean attention distance; the dashed line is what evenly spread "
        "attention gives, heads well below it are local. "
        f"Right: the share of attention head {r.head} of layer {r.layer} gives to patches 0, "
        f"1, 2... steps away (mean distance {strength['mean_distance'][r.layer, r.head]:.1f} "
        "px).",
        figure_row([(chart_png(heads_scatter(
            strength["mean_distance"], r.layer, r.head, "Mean attention distance (px)",
            evenly_spread(r.lm.grid, r.lm.patch_size)[1], ".1f")), "Distance of every head"),
                    (chart_png(strength_bars(strength["s"][r.layer, r.head])),
                     "Attention strength by hop")]))


if __name__ == "__main__":
    render()
