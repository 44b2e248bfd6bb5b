# The service's image. Two targets:
#   docker build -t mlops-platform:0.1.0 .               the API, migrations, mock/Ollama workers
#   docker build --target ml -t mlops-platform:0.1.0-ml .  adds torch (CPU build) + transformers
# Every version comes from constraints.txt, the lock that CI tests (see the README).

# The CPU build of torch the ml target installs: the version CI tests (Makefile, constraints.txt).
ARG TORCH_VERSION=2.13.0

FROM python:3.12-slim AS builder
ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PATH=/opt/venv/bin:$PATH
RUN python -m venv /opt/venv
WORKDIR /app
COPY pyproject.toml README.md constraints.txt ./
COPY app ./app
COPY alembic ./alembic
COPY alembic.ini ./
# Installed in place (editable): the migrations are found beside the package, in /app/alembic,
# and the runtime stages copy /app to the same path.
RUN pip install --constraint constraints.txt --editable . \
    && python -m compileall -q app

FROM builder AS builder-ml
ARG TORCH_VERSION
# The CPU build of torch first, from PyTorch's own index: PyPI's build for Linux brings CUDA (GBs).
RUN pip install --index-url https://download.pytorch.org/whl/cpu "torch==${TORCH_VERSION}" \
    && pip install --constraint constraints.txt --editable ".[ml]"

FROM python:3.12-slim AS base
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1
RUN groupadd --system --gid 10001 mlops \
    && useradd --system --uid 10001 --gid mlops --home-dir /app --no-create-home mlops \
    && mkdir -p /app/data \
    && chown mlops:mlops /app/data
WORKDIR /app
EXPOSE 8000
HEALTHCHECK --interval=10s --timeout=3s --start-period=20s --retries=3 \
    CMD ["python", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8000/health', timeout=2)"]
CMD ["mlops", "serve", "--host", "0.0.0.0", "--port", "8000"]

FROM base AS ml
# Hugging Face downloads (DistilBERT weights) land here; mount a volume to keep them.
ENV HF_HOME=/app/.cache/huggingface
RUN mkdir -p /app/.cache/huggingface && chown -R mlops:mlops /app/.cache
COPY --from=builder-ml /opt/venv /opt/venv
COPY --from=builder-ml /app/app /app/app
COPY --from=builder-ml /app/alembic /app/alembic
COPY --from=builder-ml /app/alembic.ini /app/alembic.ini
USER 10001:10001

# The default target (last): no torch.
FROM base AS runtime
COPY --from=builder /opt/venv /opt/venv
COPY --from=builder /app/app /app/app
COPY --from=builder /app/alembic /app/alembic
COPY --from=builder /app/alembic.ini /app/alembic.ini
USER 10001:10001
