"""Image sets (``datasets``: the demo, folders, uploads), safe decoding (``decode``),
stored uploads (``uploads``) and the folders a server may read (``paths``)."""
