"""Strength page: how far each head looks; see SPEC "Attention strength"."""
import numpy as np
import streamlit as st

from core.analyses import STRENGTH
from core.analyses.strength import evenly_spread
from core.dataset.statistics import density, layer_trend, stack
from ui import downloads, resources
from ui.state import new_chart_pick, select
from ui.strength_charts import entropy_density, heads_scatter, layer_trend_chart, strength_bars
from ui.views import intro, selected_image

intro("Attention strength",
      "This page shows how far each attention head looks: how much attention a patch pays to "
      "itself (hop 0) and to the rings of patches one, two, three... steps away (hops).",
      "A low entropy means a head concentrates on one distance (often the patch itself or its "
      "neighbours); an entropy near 1 means it spreads attention evenly over near and far "
      "patches. Click a head in the first chart to select it on every page.")
chosen = selected_image()
lm, ds, index, layer, head = chosen.lm, chosen.ds, chosen.index, chosen.layer, chosen.head
one = chosen.arrays(STRENGTH)

even_entropy, even_distance = evenly_spread(lm.grid, lm.patch_size)


def heads_view(values, title: str, even: float, name: str, fmt: str) -> None:
    """A chart of every head's value; a click selects the head."""
    event = downloads.chart(heads_scatter(values, layer, head, title, even, fmt), name,
                            on_select="rerun")
    pick = new_chart_pick(name, event)
    if pick and "layer" in pick and "head" in pick:
        select(layer=int(pick["layer"]), head=int(pick["head"]))
        st.rerun()


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
entropy = stack(everything.arrays, "entropy")  # image x layer x head
x, y = density(entropy[:, layer, head])
downloads.chart(entropy_density(x, y, float(one["entropy"][layer, head])), "entropy_density")
st.caption(f"How this head's entropy varies between the {len(entropy)} images; the red line "
           "is the selected image. One narrow peak means the head behaves the same way on "
           "every image.")

st.subheader("Do later layers attend more globally?")
trend_left, trend_right = st.columns(2)
with trend_left:
    downloads.chart(layer_trend_chart(layer_trend(entropy), "Strength entropy"),
                    "entropy_by_layer")
with trend_right:
    downloads.chart(layer_trend_chart(layer_trend(stack(everything.arrays, "mean_distance")),
                                      "Mean attention distance (px)"), "distance_by_layer")
st.caption(f"Per layer, over all heads and all {len(entropy)} images: the black line is the "
           "median, the dark band holds the middle half of the heads, the light band 90%. "
           "Rising lines mean later layers spread their attention further.")
