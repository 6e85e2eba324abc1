# Training on NVIDIA GPUs: the CUDA runtime base and the CUDA build of torch. The train task uses it.
FROM nvidia/cuda:12.8.1-cudnn-runtime-ubuntu22.04

ARG TORCH_INDEX=https://download.pytorch.org/whl/cu128
ENV DEBIAN_FRONTEND=noninteractive PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 XDG_CACHE_HOME=/tmp/cache
# Ubuntu 22.04 ships Python 3.10; auscult pins 3.11.
RUN apt-get update \
 && apt-get install -y --no-install-recommends software-properties-common \
 && add-apt-repository -y ppa:deadsnakes/ppa \
 && apt-get install -y --no-install-recommends python3.11 python3.11-venv \
 && rm -rf /var/lib/apt/lists/* \
 && python3.11 -m venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH
RUN useradd --uid 10001 --create-home --shell /usr/sbin/nologin auscult
WORKDIR /opt/auscult

COPY pyproject.toml ./
COPY scripts/ ./scripts/
RUN pip install torch==2.13.0 --index-url ${TORCH_INDEX} \
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
