"""Numbers shaped for display (heat maps over the image, top-k predictions, a head's
detail view, a layout's density), computed here so that pages and chart helpers only
draw."""
