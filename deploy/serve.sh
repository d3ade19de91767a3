#!/bin/sh
# The server, as `make serve` and the Docker image's CMD both run it. `exec` makes
# streamlit this process, so a stop signal (SIGTERM from `docker stop`) reaches it
# directly; streamlit stops on SIGTERM and exits 0.
#   PORT (8501), HOST (127.0.0.1), VENV (.venv: the streamlit of $VENV/bin);
#   further arguments go to `streamlit run`.
set -eu
cd "$(dirname "$0")/.."
PORT="${PORT:-8501}"
HOST="${HOST:-127.0.0.1}"
VENV="${VENV:-.venv}"
echo "ViT Attention Explorer on http://$HOST:$PORT"
case "$HOST" in
    127.0.0.1|localhost) ;;
    *) [ -n "${VIT_EXPLORER_DATA_ROOTS:-}" ] || echo "warning: open to the network without" \
        "VIT_EXPLORER_DATA_ROOTS: visitors can read any folder this user can" ;;
esac
# glibc returns every freed block of 1 MB or more to the system at once (by default it
# keeps many, and a server's peak memory creeps up with each large model's view: with a
# DINOv2-S at 518 px, 3.7 GB instead of 5.2 GB over the pages; bench.real_size)
export MALLOC_MMAP_THRESHOLD_="${MALLOC_MMAP_THRESHOLD_:-1048576}"
exec "$VENV/bin/python" deploy/streamlit_run.py run app.py --server.port "$PORT" --server.address "$HOST" "$@"
