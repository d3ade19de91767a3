"""Overview page: the selected image, its predictions and one head's attention."""
from ui.views import intro, selected_image

intro("Overview",
      "This page shows one image, what the model predicts for it, and where one attention "
      "head of one layer looks when it builds the image's summary (the CLS token).",
      "Pick the image, layer and head in the sidebar; brighter areas of the overlay received "
      "more attention, and the bars give the model's five most likely classes in percent.")
selected_image()
