"""Patterns page: what patterns heads learn; see SPEC "Attention patterns"."""
from ui.views import intro, selected_image

intro("Attention patterns",
      "This page will group heads by the shape of their attention over all images "
      "(diagonal, vertical, horizontal, block).",
      "For now it shows the selected image, its top-5 predictions and the selected head's "
      "attention; brighter areas received more attention.")
selected_image()
