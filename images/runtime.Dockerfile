# The component runtime (CPU): every pipeline task runs in this image on a cluster.
FROM python:3.11.7-slim-bookworm

ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1 \
    XDG_CACHE_HOME=/tmp/cache
RUN useradd --uid 10001 --create-home --shell /usr/sbin/nologin auscult
WORKDIR /opt/auscult

# Dependencies first, pinned by pyproject.toml: this layer changes only when the pins do.
COPY pyproject.toml ./
COPY scripts/ ./scripts/
RUN pip install torch==2.13.0 --index-url https://download.pytorch.org/whl/cpu \
 && python scripts/requirements.py pipeline > /tmp/requirements.txt \
 && pip install -r /tmp/requirements.txt \
 && python scripts/strip_torchaudio_extension.py

COPY README.md ./
COPY auscult/ ./auscult/
COPY components/ ./components/
COPY pipelines/ ./pipelines/
RUN pip install --no-deps .

# What the lineage record names as the code and image a task or server ran (`make images` passes both).
ARG AUSCULT_CODE_VERSION=""
ARG AUSCULT_IMAGE_REF=""
ENV AUSCULT_CODE_VERSION=${AUSCULT_CODE_VERSION} AUSCULT_IMAGE_REF=${AUSCULT_IMAGE_REF}
USER 10001
