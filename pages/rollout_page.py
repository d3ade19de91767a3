"""Rollout page: what the whole model attends to; see SPEC "Attention aggregation"."""
from ui.views import intro, selected_image

intro("Attention rollout",
      "This page will combine the attention of all layers into one map of what the whole "
      "model looks at, with scores for how faithful each map is.",
      "For now it shows the selected image, its top-5 predictions and the selected head's "
      "attention; brighter areas received more attention.")
selected_image()
