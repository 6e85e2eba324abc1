# Serving: the seldon-core 1.17.1 microservice (Apache-2.0) with ONNX Runtime's GPU build.
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
RUN useradd --uid 10001 --create-home --shell /usr/sbin/nologin auscult
WORKDIR /opt/auscult

# The serving set, with onnxruntime swapped for its GPU build of the same version (CPU fallback built in).
COPY pyproject.toml ./
COPY scripts/ ./scripts/
RUN python scripts/requirements.py serving | sed 's/^onnxruntime==/onnxruntime-gpu==/' > /tmp/requirements.txt \
 && pip install -r /tmp/requirements.txt

COPY README.md ./
COPY auscult/ ./auscult/
RUN pip install --no-deps .

USER 10001
EXPOSE 9000 5001 6000
CMD ["seldon-core-microservice", "auscult.serving.seldon.AuscultModel", "--service-type", "MODEL", \
     "--http-port", "9000", "--grpc-port", "5001", "--metrics-port", "6000"]
