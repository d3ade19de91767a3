# ViT Attention Explorer: the app on the built-in demo, on 0.0.0.0:$PORT (8501).
# Built by the Makefile's own steps (`make setup`, which installs requirements.txt
# only: no test tools) and started by `make serve`'s own script (deploy/serve.sh), so
# what CI tests with `make test` is what this image runs.
# podman: `podman build --format docker` (the OCI format drops the HEALTHCHECK).
FROM python:3.11-slim
# tini as PID 1 passes `docker stop`'s SIGTERM to streamlit, which exits 0 at once.
RUN apt-get update && apt-get install -y --no-install-recommends make curl tini \
    && rm -rf /var/lib/apt/lists/*
# The cache and uploads folders exist in the image, owned by the app's user, so that
# a named volume mounted there starts with that owner (Docker and podman copy it).
RUN useradd --create-home --uid 1000 explorer \
    && mkdir -p /data /app/cache /app/uploads \
    && chown explorer:explorer /data /app /app/cache /app/uploads
WORKDIR /app
COPY --chown=explorer:explorer . .
USER explorer
RUN make setup PYTHON=python3
# Mount images and checkpoints under /data; the app reads nothing outside it and the demo.
# Listen on every interface of the container; accept models up to ViT-B size (86 M
# parameters; a larger budget needs more memory per model loaded).
ENV VIT_EXPLORER_DATA_ROOTS=/data HOST=0.0.0.0
ENV VIT_EXPLORER_CACHE=/app/cache VIT_EXPLORER_UPLOADS=/app/uploads
ENV VIT_EXPLORER_MAX_PARAMS=100000000
# `--build-arg PORT=...` sets the default port; `-e PORT=...` at run time moves the
# server and the health check with it (EXPOSE only documents the build's port).
ARG PORT=8501
ENV PORT=${PORT}
EXPOSE ${PORT}
HEALTHCHECK --interval=30s --timeout=5s --start-period=90s --retries=3 \
    CMD curl --fail --silent "http://localhost:${PORT:-8501}/_stcore/health" || exit 1
ENTRYPOINT ["/usr/bin/tini", "--"]
CMD ["deploy/serve.sh"]
