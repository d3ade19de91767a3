"""Finding each image's object mask in a folder's ``masks/`` (SPEC "Keypoints and
spurious correlations", "Object"): the masks found, and the missing or unreadable
ones listed with the reason."""
from __future__ import annotations

from pathlib import Path

from core.data.decode import ImageDecodeError, decode_image
from core.data.layout import MASKS_FOLDER
from core.data.paths import inside
from core.data.records import ImageRecord
from core.data.walk import display_name


def find_masks(root: Path, records: list[ImageRecord], roots: list[Path]
               ) -> tuple[dict[int, Path], list[tuple[str, str]]]:
    """Each image's mask in ``root/masks`` (same relative path, as given or with the
    suffix .png; regular files inside `roots` only), checked by decoding it; the
    missing and unreadable ones listed."""
    folder = root / MASKS_FOLDER
    if not folder.is_dir():
        return {}, []
    found: dict[int, Path] = {}
    problems: list[tuple[str, str]] = []
    for i, record in enumerate(records):
        relative = record.path.relative_to(root)
        candidates = [folder / relative, folder / relative.with_suffix(".png")]
        path = next((c for c in candidates if c.is_file() and inside(c, roots)), None)
        if path is None:
            problems.append((record.id, f"no mask {MASKS_FOLDER}/{relative.with_suffix('.png')}; "
                             "its keypoint patches stand in for the object"))
            continue
        try:
            decode_image(path.read_bytes(), "L")
            found[i] = path
        except (ImageDecodeError, OSError) as err:
            problems.append((record.id, f"mask {display_name(path, root)} could not be read "
                             f"({err}); its keypoint patches stand in for the object"))
    return found, problems
