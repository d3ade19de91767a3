"""The real server, as `make serve` and the Docker image start it (deploy/serve.sh):
SIGTERM (what `docker stop` sends) ends it within 2 s with exit status 0, in the
middle of a page's run too, and every entry in its cache is whole afterwards."""
from __future__ import annotations

import signal
import time

import diskcache
import pytest

from core.storage.cache import ArrayCache, decode
from testing.server import Session, start_server

pytestmark = pytest.mark.slow  # left out of `make check` (the inner loop)


def entries(folder) -> dict[str, bytes]:
    with diskcache.Cache(str(folder)) as store:
        return {key: store.get(key) for key in store.iterkeys()}


def test_sigterm_stops_the_server_at_once_and_leaves_the_cache_whole(tmp_path):
    cache = tmp_path / "cache"
    proc, url = start_server(tmp_path / "streamlit.log", {
        "VIT_EXPLORER_CACHE": str(cache), "VIT_EXPLORER_UPLOADS": str(tmp_path / "uploads"),
        "VIT_EXPLORER_DEVICE": "cpu", "VIT_EXPLORER_DATA_ROOTS": None})
    try:
        with Session(url) as session:
            session.start()  # the Overview of a demo image: computes and caches its views
            assert session.finish() == 0
            first = entries(cache)
            assert first, "the page wrote nothing to the cache"
            session.start("importance")  # stopped while this page computes
            time.sleep(0.5)
            start = time.monotonic()
            proc.send_signal(signal.SIGTERM)
            status = proc.wait(timeout=30)
            took = time.monotonic() - start
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert status == 0, (tmp_path / "streamlit.log").read_text()[-2000:]
    assert took < 2, f"stopped {took:.2f} s after SIGTERM"
    after = entries(cache)
    assert set(first) <= set(after)
    reader = ArrayCache(cache)
    for key, blob in after.items():
        assert decode(blob), key  # every entry a whole npz
        assert reader.get(key) is not None, key  # and the app reads it as valid
