# Serving: seldon-core 1.17.1's REST app (Apache-2.0) under auscult's launcher, with ONNX Runtime's GPU build.
FROM nvidia/cuda:12.8.1-cudnn-runtime-ubuntu22.04

ENV DEBIAN_FRONTEND=noninteractive PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 PROTOCOL_BUFFERS_PYTHON_IMPLEMENTATION=python XDG_CACHE_HOME=/tmp/cache
RUN apt-get update \
 && apt-get install -y --no-install-recommends software-properties-common \
 && add-apt-repository -y ppa:deadsnakes/ppa \
 && apt-get install -y --no-install-recommends python3.11 python3.11-venv \
 && rm -rf /var/lib/apt/lists/* \
 && python3.11 -m venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH
# The telemetry spool: an emptyDir is mounted here on a cluster; without one, it is the image's own folder.
RUN useradd --uid 10001 --create-home --shell /usr/sbin/nologin auscult \
 && install -d -o 10001 -g 10001 -m 0750 /var/spool/auscult
WORKDIR /opt/auscult

# The serving set, with onnxruntime swapped for its GPU build of the same version (CPU fallback built in).
COPY pyproject.toml ./
COPY scripts/ ./scripts/
RUN python scripts/requirements.py serving | sed 's/^onnxruntime==/onnxruntime-gpu==/' > /tmp/requirements.txt \
 && pip install -r /tmp/requirements.txt

COPY README.md ./
COPY auscult/ ./auscult/
RUN pip install --no-deps .

# In a pod: listen beyond the loopback; the ports are the Seldon operator's (PREDICTIVE_UNIT_HTTP_SERVICE_PORT,
# default 9000; PREDICTIVE_UNIT_METRICS_SERVICE_PORT, 6000 as the operator sets it). REST only: no gRPC.
ENV AUSCULT_SERVING_HOST=0.0.0.0 AUSCULT_TELEMETRY_SPOOL=/var/spool/auscult
# What the lineage record names as the code and image a task or server ran (`make images` passes both).
ARG AUSCULT_CODE_VERSION=""
ARG AUSCULT_IMAGE_REF=""
ENV AUSCULT_CODE_VERSION=${AUSCULT_CODE_VERSION} AUSCULT_IMAGE_REF=${AUSCULT_IMAGE_REF}
USER 10001
EXPOSE 9000 6000
CMD ["python", "-m", "auscult.serving.launcher"]
