# ViT Attention Explorer: the app on the built-in demo, on 0.0.0.0:8501 (HOST below).
# Built by the Makefile's own steps (`make setup`, then `make serve`), so what CI
# tests with `make test` is what this image runs.
FROM python:3.11-slim
RUN apt-get update && apt-get install -y --no-install-recommends make curl \
    && rm -rf /var/lib/apt/lists/*
RUN useradd --create-home --uid 1000 explorer && mkdir -p /data && chown explorer /data
WORKDIR /app
COPY --chown=explorer:explorer . .
USER explorer
RUN make setup PYTHON=python3
# Mount images and checkpoints under /data; the app reads nothing outside it and the demo.
# Listen on every interface of the container; accept models up to ViT-B size (86 M
# parameters; a larger budget needs more memory per model loaded).
ENV VIT_EXPLORER_CACHE=/app/cache VIT_EXPLORER_DATA_ROOTS=/data HOST=0.0.0.0
ENV VIT_EXPLORER_MAX_PARAMS=100000000
EXPOSE 8501
HEALTHCHECK --interval=30s --timeout=5s --start-period=90s --retries=3 \
    CMD curl --fail --silent http://localhost:8501/_stcore/health || exit 1
CMD ["make", "serve"]
