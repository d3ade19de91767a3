"""Patch maps as heat maps over the image (SPEC "Notation")."""
from __future__ import annotations

import numpy as np

from core.display.maps import heat_map


def test_heat_map_is_row_major_scaled_and_sized(demo):
    values = np.zeros(49)
    values[1 * 7 + 5] = 3.0  # patch row 1, column 5
    heat = heat_map(values, demo, (280, 280))
    assert heat.shape == (280, 280) and heat.min() == 0.0 and heat.max() == 1.0
    row, col = np.unravel_index(heat.argmax(), heat.shape)
    assert row // 40 == 1 and col // 40 == 5  # 40 px per patch at this size
