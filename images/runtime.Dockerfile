# The pipeline's image: every task runs in it on a cluster. Built twice by `make images`: the runtime image
# (CPU: this base, the CPU build of torch) and the training image (the train task; CUDA: BASE_IMAGE
# nvidia/cuda and the CUDA build of torch, or a CPU variant where no CUDA base can be fetched).
ARG BASE_IMAGE=python:3.11.7-slim-bookworm
FROM ${BASE_IMAGE}

ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1 \
    XDG_CACHE_HOME=/tmp/cache MPLCONFIGDIR=/tmp/matplotlib
COPY images/python.sh /tmp/python.sh
RUN sh /tmp/python.sh && rm /tmp/python.sh
ENV PATH=/opt/venv/bin:$PATH
WORKDIR /opt/auscult

# Dependencies first, from the wheel folder `make images` prepares from pyproject.toml's pins: the build needs
# no network. Its listing is copied so that this layer is rebuilt when, and only when, the pins change.
ARG WHEELS=build/wheels/pipeline-cpu
COPY ${WHEELS}/requirements.txt ./requirements.txt
COPY scripts/strip_torchaudio_extension.py ./scripts/
RUN --mount=type=bind,source=${WHEELS},target=/wheels \
    pip install --no-index --find-links /wheels -r requirements.txt \
 && python scripts/strip_torchaudio_extension.py

COPY pyproject.toml README.md ./
COPY auscult/ ./auscult/
COPY components/ ./components/
COPY pipelines/ ./pipelines/
RUN --mount=type=bind,source=${WHEELS},target=/wheels \
    pip install --no-index --find-links /wheels --no-deps .

# What the lineage record names as the code and image a task or server ran (`make images` passes them).
ARG AUSCULT_CODE_VERSION=""
ARG AUSCULT_IMAGE_REF=""
ARG AUSCULT_IMAGE_BUILD=""
LABEL io.auscult.build=${AUSCULT_IMAGE_BUILD}
ENV AUSCULT_CODE_VERSION=${AUSCULT_CODE_VERSION} AUSCULT_IMAGE_REF=${AUSCULT_IMAGE_REF} \
    AUSCULT_IMAGE_BUILD=${AUSCULT_IMAGE_BUILD}
USER 10001
