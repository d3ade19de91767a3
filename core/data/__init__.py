"""Image sets: a spec to a set (``datasets``), the set in memory (``records``), the
built-in sets (``builtin``), folders (``folders``, walked by ``walk``, labelled by
``labels_csv`` and ``classes``, masked by ``masks``), content hashes (``hashing``),
model inputs (``inputs``), safe decoding (``decode``), stored uploads (``uploads``)
and the folders a server may read (``paths``)."""
