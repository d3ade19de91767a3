"""Strength page: how far each head looks; see SPEC "Attention strength"."""
from ui.views import intro, selected_image

intro("Attention strength",
      "This page will show how far each head looks: how much attention goes to neighbouring "
      "patches one, two, three... steps away.",
      "For now it shows the selected image, its top-5 predictions and the selected head's "
      "attention; brighter areas received more attention.")
selected_image()
