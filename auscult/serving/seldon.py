"""The Seldon Core v1 model class (``seldon-core-microservice auscult.serving.seldon.AuscultModel``).

Configuration comes from the environment, as a SeldonDeployment sets it (names in
:mod:`auscult.serving.contract`): the object store holding the registry and receiving telemetry, and
optionally a model version (default: the production version).
"""

from __future__ import annotations

import atexit
import logging
import os

from google.protobuf import json_format
from seldon_core.flask_utils import SeldonMicroserviceException
from seldon_core.proto import prediction_pb2

from auscult.registry import Registry
from auscult.serving import contract
from auscult.serving.runtime import BadRequest, Predictor
from auscult.serving.telemetry import TelemetryUnavailable, TelemetryWriter
from auscult.store import open_store
from auscult.task import CLASSES

log = logging.getLogger(__name__)


class AuscultModel:
    def __init__(self, store_uri: str | None = None, model_version: str | None = None):
        self.store_uri = store_uri or os.environ[contract.ENV_STORE_URI]
        self.requested_version = model_version or os.environ.get(contract.ENV_MODEL_VERSION) or None
        self.predictor: Predictor | None = None

    def load(self) -> None:
        store = open_store(self.store_uri)
        registry = Registry(store)
        pointer = registry.production()
        version = self.requested_version or (pointer and pointer["version"])
        if not version:
            raise RuntimeError(f"no model to serve: {self.store_uri} has no production version")
        self.predictor = Predictor(registry.onnx(version), version)
        self.telemetry = TelemetryWriter(store)
        # A gunicorn worker stopped gracefully exits the interpreter: queued telemetry is written then.
        atexit.register(self.telemetry.close)
        log.info("serving %s from %s", version, self.store_uri)

    def predict_raw(self, request: object) -> dict:
        if self.predictor is None:
            self.load()
        try:
            answer = self.predictor.answer(request)
        except BadRequest as error:
            raise SeldonMicroserviceException(str(error), status_code=400, reason="BAD_REQUEST") from None
        try:
            self.telemetry.record(
                answer.request_id, self.predictor.version, answer.wave, answer.probabilities, answer.stats, answer.tags
            )
        except TelemetryUnavailable as error:
            raise SeldonMicroserviceException(str(error), status_code=503, reason="TELEMETRY_UNAVAILABLE") from None
        return self.predictor.response(answer)

    def send_feedback_raw(self, feedback: prediction_pb2.Feedback) -> prediction_pb2.SeldonMessage:
        """Feedback names the request (response.meta.tags.request_id) and its true class (truth)."""
        message = json_format.MessageToDict(feedback)
        request_id = message.get("response", {}).get("meta", {}).get("tags", {}).get("request_id")
        truth = message.get("truth", {}).get("data", {}).get("ndarray")
        while isinstance(truth, list) and truth:
            truth = truth[0]
        if not request_id or truth not in CLASSES:
            raise SeldonMicroserviceException(
                f"feedback needs response.meta.tags.request_id and truth.data.ndarray holding one of {list(CLASSES)}",
                status_code=400,
                reason="BAD_REQUEST",
            )
        self.telemetry.feedback(request_id, truth)
        return prediction_pb2.SeldonMessage(strData="recorded")
