"""The real server for tests: ``deploy/serve.sh`` (the command ``make serve`` and the
Docker image run) on a free port of 127.0.0.1, and a session opened on it without a
browser (Streamlit's own websocket messages), which runs a page as a browser's visit
would."""
from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SERVE = ROOT / "deploy" / "serve.sh"
VENV = Path(sys.prefix)  # the environment running the tests serves the app too


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_server(log: Path, env: dict[str, str | None], *args: str,
                 timeout: float = 120) -> tuple[subprocess.Popen, str]:
    """Start the server with `env` over this process's environment (None removes a
    variable) and `args` for ``streamlit run``; return it and its URL once
    ``/_stcore/health`` answers (the server's own ready signal)."""
    port = free_port()
    full = dict(os.environ, PORT=str(port), HOST="127.0.0.1", VENV=str(VENV))
    for name, value in env.items():
        full.pop(name, None) if value is None else full.__setitem__(name, value)
    out = open(log, "w")
    proc = subprocess.Popen([str(SERVE), *args], cwd=ROOT, env=full, stdout=out,
                            stderr=subprocess.STDOUT)
    out.close()  # the child holds its own copy
    url = f"http://127.0.0.1:{port}"
    deadline = time.time() + timeout
    while True:
        try:
            if urllib.request.urlopen(f"{url}/_stcore/health", timeout=2).read() == b"ok":
                return proc, url
        except OSError:
            pass
        if proc.poll() is not None or time.time() > deadline:
            proc.kill()
            raise RuntimeError(f"streamlit did not start; see {log}")
        time.sleep(0.5)


class Session:
    """One session of the app, as a browser tab holds it (``with Session(url) as s``):
    ``start`` asks for a page (its URL path and query string), ``finish`` waits for the
    end of the run."""

    def __init__(self, url: str) -> None:
        from websockets.sync.client import connect
        self._connection = connect(url.replace("http://", "ws://", 1) + "/_stcore/stream",
                                   subprotocols=["streamlit"], max_size=None)

    def __enter__(self) -> Session:
        self.ws = self._connection.__enter__()
        return self

    def __exit__(self, *exc) -> None:
        self._connection.__exit__(*exc)

    def start(self, path: str = "", query: str = "") -> None:
        from streamlit.proto.BackMsg_pb2 import BackMsg
        msg = BackMsg()
        msg.rerun_script.query_string = query
        msg.rerun_script.page_name = path
        msg.rerun_script.page_script_hash = ""
        self.ws.send(msg.SerializeToString())

    def finish(self, timeout: float = 120) -> int:
        """The status of the next run that ends, not counting runs cut short by a rerun
        (0: it ran to its end)."""
        from streamlit.proto.ForwardMsg_pb2 import ForwardMsg
        deadline = time.time() + timeout
        while True:
            msg = ForwardMsg()
            msg.ParseFromString(self.ws.recv(timeout=max(deadline - time.time(), 0.1)))
            if (msg.WhichOneof("type") == "script_finished"
                    and msg.script_finished != ForwardMsg.FINISHED_EARLY_FOR_RERUN):
                return msg.script_finished


def fake_venv(folder: Path) -> Path:
    """A VENV for deploy/serve.sh whose python prints its arguments (the last line of
    the output) instead of starting the server: what the script would run."""
    python = folder / "bin" / "python"
    python.parent.mkdir(parents=True, exist_ok=True)
    python.write_text('#!/bin/sh\necho "MALLOC_MMAP_THRESHOLD_=$MALLOC_MMAP_THRESHOLD_ $*"\n')
    python.chmod(0o755)
    return folder
