"""Importance page: which heads matter (pruning each head); see SPEC "Head pruning"."""
from ui.views import intro, selected_image

intro("Head importance",
      "This page will show how much each attention head matters, by switching the head off "
      "and measuring how the prediction changes.",
      "For now it shows the selected image, its top-5 predictions and the selected head's "
      "attention; brighter areas received more attention.")
selected_image()
