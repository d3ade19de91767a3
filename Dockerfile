# ViT Attention Explorer: the app on the built-in demo, on port 8501.
# The image is built by the Makefile's own steps (`make setup`, `make serve`).
FROM python:3.11-slim
RUN apt-get update && apt-get install -y --no-install-recommends make curl \
    && rm -rf /var/lib/apt/lists/*
RUN useradd --create-home --uid 1000 explorer
WORKDIR /app
COPY --chown=explorer:explorer . .
USER explorer
RUN make setup PYTHON=python3
ENV VIT_EXPLORER_CACHE=/app/cache
EXPOSE 8501
HEALTHCHECK --interval=30s --timeout=5s --start-period=60s \
    CMD curl --fail http://localhost:8501/_stcore/health || exit 1
CMD ["make", "serve"]
