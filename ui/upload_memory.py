"""What one session may hold of uploads in the server's memory. Streamlit keeps every
file a browser sends (``MemoryUploadedFileManager``) until the session ends, whatever
the app does with it: here one session holds at most ``$VIT_EXPLORER_SESSION_UPLOAD_BYTES``
(a file past it is refused with the reason), and the files of an upload are released
as soon as they are stored on disk (``core.data.uploads``)."""
from __future__ import annotations

import os
import threading
from typing import Any, Iterable

from streamlit.runtime import Runtime
from streamlit.runtime.scriptrunner import get_script_run_ctx

DEFAULT_SESSION_BYTES = 256 * 2**20  # $VIT_EXPLORER_SESSION_UPLOAD_BYTES


class UploadRefused(ValueError):
    """A file that would take a session past what it may hold in memory."""


def session_bound() -> int:
    return int(os.environ.get("VIT_EXPLORER_SESSION_UPLOAD_BYTES") or DEFAULT_SESSION_BYTES)


def bound_sessions(manager: Any) -> None:
    """Make `manager` (a ``MemoryUploadedFileManager``) refuse a file that would take
    its session past ``session_bound()`` bytes; idempotent."""
    if getattr(manager, "_bounded_per_session", False) or not hasattr(manager, "file_storage"):
        return
    add_file, lock = manager.add_file, threading.Lock()

    def bounded_add_file(session_id: str, file: Any) -> None:
        with lock:
            held = sum(len(f.data) for f in manager.file_storage.get(session_id, {}).values()
                       if f.file_id != file.file_id)
            if held + len(file.data) > session_bound():
                raise UploadRefused(
                    f"{file.name}: this session already holds {held / 2**20:.0f} MB of "
                    f"uploads and may hold {session_bound() / 2**20:.0f} MB; upload the "
                    "images as one .zip, or in several parts")
            add_file(session_id, file)

    manager.add_file = bounded_add_file
    manager._bounded_per_session = True


def bound_this_server() -> None:
    """Bound the running server's upload memory per session (no server: nothing)."""
    if Runtime.exists():
        bound_sessions(Runtime.instance().uploaded_file_mgr)


def release(files: Iterable[Any]) -> None:
    """Drop this session's uploaded `files` from the server's memory (once stored)."""
    ctx = get_script_run_ctx()
    if Runtime.exists() and ctx is not None:
        manager = Runtime.instance().uploaded_file_mgr
        for file in files:
            manager.remove_file(ctx.session_id, file.file_id)
