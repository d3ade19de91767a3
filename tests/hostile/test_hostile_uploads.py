"""Hostile uploads: many files at once go as one .zip; an archive is read within
bounds (entries, sizes, links, paths outside it), and each entry left out is listed
with its reason while the rest is kept (core.data.uploads)."""
from __future__ import annotations

import io
import stat
import zipfile

import numpy as np
import pytest
from PIL import Image

from core.data import uploads
from core.data.datasets import load_dataset
from ui import upload_memory


def png(value: int = 100) -> bytes:
    out = io.BytesIO()
    Image.fromarray(np.full((28, 28), value, dtype=np.uint8)).save(out, format="PNG")
    return out.getvalue()


def archive(entries: list[tuple[zipfile.ZipInfo | str, bytes]]) -> bytes:
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as zf:
        for info, data in entries:
            zf.writestr(info, data)
    return out.getvalue()


def link(name: str, target: str) -> tuple[zipfile.ZipInfo, bytes]:
    info = zipfile.ZipInfo(name)
    info.external_attr = (stat.S_IFLNK | 0o777) << 16
    return info, target.encode()


@pytest.fixture(autouse=True)
def uploads_root(tmp_path, monkeypatch):
    monkeypatch.setenv("VIT_EXPLORER_UPLOADS", str(tmp_path / "uploads"))
    return tmp_path / "uploads"


def reasons(upload: uploads.Upload) -> dict[str, str]:
    return dict(upload.refused)


def test_two_thousand_images_in_one_zip_all_arrive(demo):
    upload = uploads.save_uploads([("many.zip", archive(
        [(f"img{i:04d}.png", png(i % 256)) for i in range(2000)]))])
    assert upload.files == 2000 and not upload.refused
    assert len(load_dataset(upload.images, demo.class_names).records) == 2000


def test_links_paths_outside_and_hidden_entries_are_listed_and_never_written(uploads_root):
    upload = uploads.save_uploads([("evil.zip", archive([
        link("escape.png", "/etc/passwd"), ("../../outside.png", png()),
        ("__MACOSX/._a.png", b"resource fork"), (".hidden.png", png()),
        ("a/b/deep.png", png()), ("good.png", png())]))])
    why = reasons(upload)
    assert "not a regular file" in why["evil.zip: escape.png"]
    assert "outside the archive" in why["evil.zip: ../../outside.png"]
    assert "hidden or system" in why["evil.zip: __MACOSX/._a.png"]
    assert "hidden or system" in why["evil.zip: .hidden.png"]
    assert "more than one folder deep" in why["a/b/deep.png"]
    assert upload.files == 1
    stored = [p for p in uploads_root.rglob("*") if p.is_file()]
    assert [p.name for p in stored] == ["good.png"]
    assert not (uploads_root.parent / "outside.png").exists()


def test_a_zip_bomb_is_refused_by_its_sizes_before_it_is_unpacked(monkeypatch):
    monkeypatch.setattr(uploads, "MAX_FILE_BYTES", 2**20)
    monkeypatch.setattr(uploads, "MAX_UNPACKED_BYTES", 3 * 2**20)
    zeros = bytes(2 * 2**20)  # deflates to about 2 kB
    upload = uploads.save_uploads([("bomb.zip", archive(
        [("big.png", zeros)] + [(f"p{i}.png", bytes(900_000)) for i in range(5)]))])
    why = reasons(upload)
    assert "larger than 1 MB unpacked" in why["bomb.zip: big.png"]
    assert sum("past the 3 MB" in r for r in why.values()) == 2  # 3 of 900 kB fit
    assert upload.files == 3


def test_an_entry_that_unpacks_to_more_than_it_states_is_refused():
    data = bytearray(archive([("liar.png", bytes(10_000)), ("good.png", png())]))
    header = data.index(b"PK\x01\x02")  # central directory entry of liar.png
    data[header + 24:header + 28] = (100).to_bytes(4, "little")  # stated size: 100 bytes
    upload = uploads.save_uploads([("liar.zip", bytes(data))])
    assert "liar.zip: liar.png" in reasons(upload) and upload.files == 1


def test_more_files_than_an_upload_may_hold_are_counted_and_listed(monkeypatch):
    monkeypatch.setattr(uploads, "MAX_FILES", 3)
    upload = uploads.save_uploads([("a.zip", archive(
        [(f"{i}.png", png(i)) for i in range(5)]))])
    assert upload.files == 3
    assert list(reasons(upload)) == ["3.png", "4.png"]
    assert all("past the 3 files" in r for r in reasons(upload).values())


def test_a_damaged_or_fake_zip_is_listed_and_the_other_files_kept():
    good = archive([("a.png", png(1))])
    upload = uploads.save_uploads([("fake.zip", b"not a zip"),
                                   ("cut.zip", good[:len(good) // 2]), ("b.png", png(2))])
    why = reasons(upload)
    assert "not a readable .zip" in why["fake.zip"] and "not a readable .zip" in why["cut.zip"]
    assert upload.files == 1


def test_an_image_beside_class_folders_is_listed_not_dropped(demo):
    upload = uploads.save_uploads([("set.zip", archive(
        [("Bag/a.png", png(1)), ("stray.png", png(2))]))])
    assert "belongs to no class" in reasons(upload)["stray.png"]
    assert [r.id for r in load_dataset(upload.images, demo.class_names).records] == ["Bag/a.png"]


def bomb_pair(entry_bytes: int) -> list[tuple[str, bytes]]:
    """Two zips of 16 entries of `entry_bytes` zeros each (the probe's case, scaled)."""
    zeros = bytes(entry_bytes)
    return [(f"z{k}.zip", archive([(f"p{i}.png", zeros) for i in range(16)]))
            for k in range(2)]


def stored_mb(root) -> float:
    return sum(p.stat().st_size for p in root.rglob("*") if p.is_file()) / 2**20


def test_the_unpacked_bound_counts_every_archive_of_an_upload(monkeypatch, uploads_root):
    # the probe: 2 x 16 x 64 MiB against 1 GiB stored 2 GiB; here 1/64 of each figure
    monkeypatch.setattr(uploads, "MAX_FILE_BYTES", 2**20)
    monkeypatch.setattr(uploads, "MAX_UNPACKED_BYTES", 16 * 2**20)
    upload = uploads.save_uploads(bomb_pair(2**20))
    assert upload.files == 16
    assert sum("past the 16 MB" in r for r in reasons(upload).values()) == 16
    assert stored_mb(uploads_root) <= 16


def test_uploads_past_the_server_bound_are_refused_with_a_message(monkeypatch, uploads_root):
    monkeypatch.setenv("VIT_EXPLORER_UPLOADS_MAX_BYTES", str(5 * 2**20))
    files = [(f"{k}.png", bytes([k]) * 2**20) for k in range(3)]  # 3 MB, not images
    assert uploads.save_uploads(files).files == 3
    second = uploads.save_uploads([(f"b{k}.png", bytes([k + 9]) * 2**20) for k in range(3)])
    assert second.files == 2
    assert "upload storage is full" in reasons(second)["b2.png"]
    assert stored_mb(uploads_root) <= 5


class Sized:
    """The bytes of an uploaded file, by their length only (49 MB held for nothing)."""

    def __init__(self, size: int) -> None:
        self.size = size

    def __len__(self) -> int:
        return self.size


def test_one_session_holds_at_most_its_bound_of_uploads_in_memory():
    # the probe: PUTs of 49 MB, as many as a session sends, raised the server's RSS
    # 1,351 -> 2,063 MB; now the sixth is refused (5 x 49 MB of the 256 MB held)
    from streamlit.runtime.memory_uploaded_file_manager import MemoryUploadedFileManager
    from streamlit.runtime.uploaded_file_manager import UploadedFileRec
    manager = MemoryUploadedFileManager("/_stcore/upload_file")
    upload_memory.bound_sessions(manager)
    upload_memory.bound_sessions(manager)  # idempotent: one bound, not two

    def put(session: str, file_id: str) -> None:
        manager.add_file(session, UploadedFileRec(file_id, f"{file_id}.png", "image/png",
                                                  Sized(49 * 2**20)))

    for n in range(5):
        put("visitor", f"f{n}")
    with pytest.raises(upload_memory.UploadRefused, match=r"f5.png: this session already "
                       r"holds 245 MB of uploads and may hold 256 MB"):
        put("visitor", "f5")
    put("visitor", "f4")  # the same file sent again replaces itself
    put("other", "g0")  # another session has its own bound
    assert len(manager.file_storage["visitor"]) == 5
    manager.remove_file("visitor", "f0")  # released once stored: room again
    put("visitor", "f5")


def test_a_stored_upload_is_released_from_the_servers_memory(monkeypatch):
    removed: list[tuple[str, str]] = []

    class Manager:
        def remove_file(self, session_id: str, file_id: str) -> None:
            removed.append((session_id, file_id))

    class File:
        def __init__(self, file_id: str) -> None:
            self.file_id = file_id

    runtime = type("Runtime", (), {"uploaded_file_mgr": Manager()})()
    monkeypatch.setattr(upload_memory.Runtime, "exists", staticmethod(lambda: True))
    monkeypatch.setattr(upload_memory.Runtime, "instance", staticmethod(lambda: runtime))
    monkeypatch.setattr(upload_memory, "get_script_run_ctx",
                        lambda: type("Ctx", (), {"session_id": "s1"})())
    upload_memory.release([File("a"), File("b")])
    assert removed == [("s1", "a"), ("s1", "b")]
