"""The Seldon Core v1 model class, served by :mod:`auscult.serving.launcher` through seldon-core's REST app.

Configuration comes from the environment, as the deploy stage and the chart set it (names in
:mod:`auscult.serving.contract`): the object store holding the registry and receiving telemetry, optionally a
model version (default: the production version), the key that signs request ids for feedback, the key that
pseudonymises participant tags (the ingest stage's), and the telemetry spool.
"""

from __future__ import annotations

import logging
import os
import tempfile
from pathlib import Path

from google.protobuf import json_format
from seldon_core.flask_utils import SeldonMicroserviceException
from seldon_core.proto import prediction_pb2

from auscult import pseudonym
from auscult.registry import Registry
from auscult.serving import contract, telemetry
from auscult.serving.runtime import BadRequest, Forbidden, Predictor, request_signature, verify_request
from auscult.serving.telemetry import TelemetryUnavailable, TelemetryWriter
from auscult.store import open_store
from auscult.task import CLASSES

log = logging.getLogger(__name__)


def _required_key(name: str, secret: str) -> bytes:
    value = os.environ.get(name, "")
    if not value:
        raise RuntimeError(f"{name} is not set: on a cluster it comes from the Secret {secret!r} (key 'key')")
    return value.encode()


class AuscultModel:
    def __init__(self, store_uri: str | None = None, model_version: str | None = None):
        self.store_uri = store_uri or os.environ[contract.ENV_STORE_URI]
        self.requested_version = model_version or os.environ.get(contract.ENV_MODEL_VERSION) or None
        self.predictor: Predictor | None = None

    def load(self) -> None:
        self.feedback_key = _required_key(contract.ENV_FEEDBACK_KEY, contract.FEEDBACK_SECRET)
        self.pseudonym_key = _required_key(pseudonym.PSEUDONYM_KEY_ENV, pseudonym.PSEUDONYM_SECRET)
        store = open_store(self.store_uri)
        registry = Registry(store)
        pointer = registry.production()
        version = self.requested_version or (pointer and pointer["version"])
        if not version:
            raise RuntimeError(f"no model to serve: {self.store_uri} has no production version")
        self.predictor = Predictor(registry.onnx(version), version)
        self.model_run = registry.card(version).get("lineage", {}).get("run_id")
        spool = os.environ.get(contract.ENV_TELEMETRY_SPOOL) or Path(tempfile.gettempdir()) / "auscult-spool"
        self.telemetry = TelemetryWriter(
            open_store(self.store_uri, attempts=1),  # the uploader retries on its own, and reports the outage
            spool,
            max_spool_bytes=int(float(os.environ.get(contract.ENV_TELEMETRY_SPOOL_MB, telemetry.DEFAULT_SPOOL_MB)))
            * 2**20,
            max_outage_s=float(os.environ.get(contract.ENV_TELEMETRY_MAX_OUTAGE_S, telemetry.DEFAULT_MAX_OUTAGE_S)),
        )
        log.info("serving %s from %s (telemetry spool %s)", version, self.store_uri, spool)

    def close(self) -> None:
        """Upload what the spool holds while the store answers; the rest waits there for the next process."""
        if self.predictor is not None:
            self.telemetry.close()

    def predict_raw(self, request: object) -> dict:
        if self.predictor is None:
            self.load()
        try:
            answer = self.predictor.answer(request)
        except BadRequest as error:
            raise SeldonMicroserviceException(str(error), status_code=400, reason="BAD_REQUEST") from None
        tags = dict(answer.tags)
        if "participant" in tags:  # stored only as the pseudonym ingest would give it
            tags["participant"] = pseudonym.telemetry_participant(str(tags["participant"]), self.pseudonym_key)
        try:
            self.telemetry.record(
                answer.request_id,
                self.predictor.version,
                answer.wave,
                answer.probabilities,
                answer.stats,
                tags,
                model_run=self.model_run,
            )
        except TelemetryUnavailable as error:
            raise SeldonMicroserviceException(str(error), status_code=503, reason="TELEMETRY_UNAVAILABLE") from None
        response = self.predictor.response(answer)
        response["meta"]["tags"]["request_signature"] = request_signature(self.feedback_key, answer.request_id)
        return response

    def send_feedback_raw(self, feedback: prediction_pb2.Feedback) -> prediction_pb2.SeldonMessage:
        """Feedback presents the tags of the server's answer (request_id and its signature) and the true class."""
        message = json_format.MessageToDict(feedback)
        tags = message.get("response", {}).get("meta", {}).get("tags", {})
        truth = message.get("truth", {}).get("data", {}).get("ndarray")
        while isinstance(truth, list) and len(truth) == 1:
            truth = truth[0]
        try:
            request_id = verify_request(self.feedback_key, tags.get("request_id"), tags.get("request_signature"))
        except Forbidden as error:
            raise SeldonMicroserviceException(str(error), status_code=403, reason="FORBIDDEN") from None
        except BadRequest as error:
            raise SeldonMicroserviceException(str(error), status_code=400, reason="BAD_REQUEST") from None
        if not isinstance(truth, str) or truth not in CLASSES:
            raise SeldonMicroserviceException(
                f"feedback needs truth.data.ndarray holding one of {list(CLASSES)}",
                status_code=400,
                reason="BAD_REQUEST",
            )
        try:
            self.telemetry.feedback(request_id, truth)
        except TelemetryUnavailable as error:
            raise SeldonMicroserviceException(str(error), status_code=503, reason="TELEMETRY_UNAVAILABLE") from None
        return prediction_pb2.SeldonMessage(strData="recorded")

    def health_status_raw(self) -> dict:
        """Healthy while requests can be recorded; the telemetry backlog and the store's error either way."""
        if self.predictor is None:
            self.load()
        state = {"model_version": self.predictor.version, "telemetry": self.telemetry.health()}
        refusing = self.telemetry.refusing()
        if refusing:
            raise SeldonMicroserviceException(
                f"requests are refused: {refusing}; telemetry: {state['telemetry']}",
                status_code=503,
                reason="TELEMETRY_UNAVAILABLE",
            )
        return state
