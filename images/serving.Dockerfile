# Serving: seldon-core 1.17.1's REST app (Apache-2.0) under auscult's launcher. `make images` builds it on the
# CUDA base with onnxruntime-gpu (CPU fallback built in), or as a CPU variant (a Debian base, onnxruntime).
ARG BASE_IMAGE=nvidia/cuda:12.8.1-cudnn-runtime-ubuntu22.04
FROM ${BASE_IMAGE}

ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PROTOCOL_BUFFERS_PYTHON_IMPLEMENTATION=python XDG_CACHE_HOME=/tmp/cache
COPY images/python.sh /tmp/python.sh
RUN sh /tmp/python.sh && rm /tmp/python.sh
ENV PATH=/opt/venv/bin:$PATH
# The telemetry spool: an emptyDir is mounted here on a cluster; without one, it is the image's own folder.
RUN install -d -o 10001 -g 10001 -m 0750 /var/spool/auscult
WORKDIR /opt/auscult

# The serving set, from the wheel folder `make images` prepares (onnxruntime-gpu in the GPU set); its listing
# is copied so that this layer is rebuilt when, and only when, the pins change.
ARG WHEELS=build/wheels/serving-gpu
COPY ${WHEELS}/requirements.txt ./requirements.txt
RUN --mount=type=bind,source=${WHEELS},target=/wheels \
    pip install --no-index --find-links /wheels -r requirements.txt

COPY pyproject.toml README.md ./
COPY auscult/ ./auscult/
RUN --mount=type=bind,source=${WHEELS},target=/wheels \
    pip install --no-index --find-links /wheels --no-deps .

# In a pod: listen beyond the loopback; the ports are the Seldon operator's (PREDICTIVE_UNIT_HTTP_SERVICE_PORT,
# default 9000; PREDICTIVE_UNIT_METRICS_SERVICE_PORT, 6000 as the operator sets it). REST only: no gRPC.
ENV AUSCULT_SERVING_HOST=0.0.0.0 AUSCULT_TELEMETRY_SPOOL=/var/spool/auscult
# What the lineage record names as the code and image a task or server ran (`make images` passes them).
ARG AUSCULT_CODE_VERSION=""
ARG AUSCULT_IMAGE_REF=""
ARG AUSCULT_IMAGE_BUILD=""
LABEL io.auscult.build=${AUSCULT_IMAGE_BUILD}
ENV AUSCULT_CODE_VERSION=${AUSCULT_CODE_VERSION} AUSCULT_IMAGE_REF=${AUSCULT_IMAGE_REF} \
    AUSCULT_IMAGE_BUILD=${AUSCULT_IMAGE_BUILD}
USER 10001
EXPOSE 9000 6000
CMD ["python", "-m", "auscult.serving.launcher"]
