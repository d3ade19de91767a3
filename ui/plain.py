"""User-controlled text (file names, labels, paths, messages that quote them) for the
Streamlit elements that render markdown: the characters that make links, images,
HTML, emphasis, code, tables, math and Streamlit's colour directives are escaped, so
the text shows as typed and never becomes a link, an image or formatting."""
from __future__ import annotations

import re

_PUNCTUATION = re.compile(r"([\\`*_{}\[\]()<>#!|~$])")


def plain(text: object) -> str:
    """`text` as markdown that displays exactly `text`."""
    return _PUNCTUATION.sub(r"\\\1", str(text))
