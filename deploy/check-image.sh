#!/usr/bin/env bash
# Build the Docker image and check it as deployed: it becomes healthy, serves the page
# on the chosen port, and stops cleanly (exit 0) on `stop`. Uses docker, or podman
# (built with --format docker, which keeps the HEALTHCHECK). Exits 2 without either.
#   IMAGE (vit-explorer:check), PORT (8599), TIMEOUT (300 s for the health check)
set -euo pipefail
cd "$(dirname "$0")/.."
IMAGE="${IMAGE:-vit-explorer:check}"
PORT="${PORT:-8599}"
TIMEOUT="${TIMEOUT:-300}"
NAME="vit-explorer-check-$$"

ENGINE=""
for candidate in docker podman; do
    if command -v "$candidate" >/dev/null && "$candidate" info >/dev/null 2>&1; then
        ENGINE="$candidate"
        break
    fi
done
if [ -z "$ENGINE" ]; then
    echo "check-image: no working docker or podman here (installed and able to reach" \
        "its engine); nothing checked" >&2
    exit 2
fi
BUILD=("$ENGINE" build)
[ "$ENGINE" = podman ] && BUILD+=(--format docker)

echo "check-image: building $IMAGE with $ENGINE"
"${BUILD[@]}" -t "$IMAGE" .
"$ENGINE" image inspect --format 'image size: {{.Size}} bytes' "$IMAGE"

cleanup() { "$ENGINE" rm -f "$NAME" >/dev/null 2>&1 || true; }
trap cleanup EXIT
# -e PORT: the server and the health check follow it (not the image's default 8501)
"$ENGINE" run -d --name "$NAME" -e PORT="$PORT" -p "127.0.0.1:$PORT:$PORT" "$IMAGE" >/dev/null

echo "check-image: waiting up to $TIMEOUT s for the health check"
start=$SECONDS
while :; do
    health="$("$ENGINE" inspect --format '{{.State.Health.Status}}' "$NAME" 2>/dev/null || true)"
    [ "$health" = healthy ] && break
    if [ "$("$ENGINE" inspect --format '{{.State.Running}}' "$NAME")" != true ]; then
        "$ENGINE" logs "$NAME" >&2 || true
        echo "check-image: the container stopped before it was healthy" >&2
        exit 1
    fi
    if [ $((SECONDS - start)) -ge "$TIMEOUT" ]; then
        "$ENGINE" logs "$NAME" >&2 || true
        echo "check-image: not healthy after $TIMEOUT s (status: ${health:-none})" >&2
        exit 1
    fi
    # podman runs health checks from a systemd timer, which rootless setups may lack
    [ "$ENGINE" = podman ] && "$ENGINE" healthcheck run "$NAME" >/dev/null 2>&1 || true
    sleep 5
done
echo "check-image: healthy after $((SECONDS - start)) s"

[ "$(curl --fail --silent --max-time 10 "http://127.0.0.1:$PORT/_stcore/health")" = ok ]
curl --fail --silent --max-time 10 "http://127.0.0.1:$PORT/" | grep -q "<title>"
echo "check-image: the page and /_stcore/health answer on port $PORT"

start=$SECONDS
"$ENGINE" stop --time 10 "$NAME" >/dev/null
status="$("$ENGINE" inspect --format '{{.State.ExitCode}}' "$NAME")"
echo "check-image: stopped in $((SECONDS - start)) s, exit status $status"
if [ "$status" != 0 ]; then
    "$ENGINE" logs "$NAME" >&2 || true
    echo "check-image: the server did not stop cleanly (137: killed after the timeout)" >&2
    exit 1
fi
echo "check-image: OK"
