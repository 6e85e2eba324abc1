"""deploy: register a blessed model in the object store, move the production pointer (keeping the previous
version for rollback), and render the cluster serving resource.

On one machine the local Seldon server reads the production pointer when it starts (``auscult serve``).
On a cluster the serving resource (Seldon Core v1 SeldonDeployment running the serving image, or Seldon
Core v2 Model served by Triton) is applied, awaited, and rolled back if it does not become available.
"""

from __future__ import annotations

import copy
import dataclasses
import hashlib
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from auscult import layout, lineage, trace
from auscult.audio import SAMPLE_RATE
from auscult.change_control import ChangePlan, Decision, classify, default_plan
from auscult.cluster import Cluster, RolloutError, roll_out
from auscult.errors import InputError
from auscult.lineage import Lineage, RunRef, code_version
from auscult.pseudonym import PSEUDONYM_KEY_ENV, PSEUDONYM_SECRET
from auscult.registry import APPROVED, AWAITING_APPROVAL, REJECTED, Registry
from auscult.serving import contract
from auscult.store import secret_env
from auscult.task import CLASSES

if TYPE_CHECKING:
    from auscult.stages.validate import Verdict


@dataclass(frozen=True)
class ServingSpec:
    namespace: str = "auscult"
    image: str = field(default_factory=lambda: contract.image_ref("serving"))
    gpus: int = 1
    node_selector: dict[str, str] = field(default_factory=lambda: dict(contract.GPU_NODE_SELECTOR))
    tolerations: list[dict] = field(default_factory=lambda: [dict(t) for t in contract.GPU_TOLERATIONS])
    store_secret: str = contract.STORE_SECRET
    feedback_secret: str = contract.FEEDBACK_SECRET
    pseudonym_secret: str = PSEUDONYM_SECRET
    # The emptyDir holding the telemetry spool: above what the spool may hold (AUSCULT_TELEMETRY_SPOOL_MB), so
    # that a full spool answers 503 before the kubelet evicts the pod.
    spool_size_limit: str = "1Gi"
    service_account: str = contract.PREDICTOR_SERVICE_ACCOUNT
    replicas: int = 1


# The field of the feedback and pseudonym Secrets that holds the key.
KEY_FIELD = "key"


def _labels(version: str) -> dict[str, str]:
    return {"app.kubernetes.io/name": contract.APP_NAME, "auscult.io/model-version": version}


def seldon_deployment(version: str, store_uri: str, spec: ServingSpec = ServingSpec()) -> dict:
    """A Seldon Core v1 SeldonDeployment running the serving image on ``version``."""
    resources = copy.deepcopy(contract.RESOURCES)
    if spec.gpus:
        resources["limits"][contract.GPU_RESOURCE] = str(spec.gpus)
        resources["requests"][contract.GPU_RESOURCE] = str(spec.gpus)
    container = {
        "name": contract.CONTAINER,
        "image": spec.image,
        "imagePullPolicy": contract.IMAGE_PULL_POLICY,
        "securityContext": copy.deepcopy(contract.CONTAINER_SECURITY_CONTEXT),
        "env": [
            {"name": contract.ENV_STORE_URI, "value": store_uri},
            # Credentials for the object store come from a Secret, never from the manifest (in the order Helm
            # renders them: by key).
            *secret_env(spec.store_secret),
            {"name": contract.ENV_MODEL_VERSION, "value": version},
            {
                "name": contract.ENV_ORT_THREADS,
                "valueFrom": {"resourceFieldRef": contract.ORT_THREADS_FROM_CPU_REQUEST},
            },
            # The launcher binds 127.0.0.1 unless told otherwise; in a pod, Seldon's orchestrator and the kubelet's
            # probes come from outside the container. The ports are the ones the operator sets.
            {"name": contract.ENV_HOST, "value": "0.0.0.0"},
            {"name": contract.ENV_TELEMETRY_SPOOL, "value": contract.SPOOL_PATH},
            {
                "name": contract.ENV_FEEDBACK_KEY,
                "valueFrom": {"secretKeyRef": {"name": spec.feedback_secret, "key": KEY_FIELD}},
            },
            {
                "name": PSEUDONYM_KEY_ENV,
                "valueFrom": {"secretKeyRef": {"name": spec.pseudonym_secret, "key": KEY_FIELD}},
            },
        ],
        "resources": resources,
        "volumeMounts": [
            {"name": contract.SPOOL_VOLUME, "mountPath": contract.SPOOL_PATH},
            {"name": contract.SCRATCH_VOLUME, "mountPath": contract.SCRATCH_PATH},
        ],
    }
    pod_spec: dict = {
        "serviceAccountName": spec.service_account,
        "automountServiceAccountToken": False,  # the server never calls the Kubernetes API
        "securityContext": copy.deepcopy(contract.POD_SECURITY_CONTEXT),
        "containers": [container],
        # Telemetry not yet in the store survives a container restart here (not the loss of the pod).
        "volumes": [
            {"name": contract.SPOOL_VOLUME, "emptyDir": {"sizeLimit": spec.spool_size_limit}},
            {"name": contract.SCRATCH_VOLUME, "emptyDir": {}},
        ],
    }
    if spec.gpus:
        pod_spec["nodeSelector"] = dict(spec.node_selector)
        pod_spec["tolerations"] = [dict(t) for t in spec.tolerations]
    return {
        "apiVersion": "machinelearning.seldon.io/v1",
        "kind": "SeldonDeployment",
        "metadata": {"name": contract.MODEL_NAME, "namespace": spec.namespace, "labels": _labels(version)},
        "spec": {
            "name": contract.MODEL_NAME,
            "predictors": [
                {
                    "name": contract.PREDICTOR,
                    "replicas": spec.replicas,
                    "componentSpecs": [{"spec": pod_spec}],
                    "graph": {"name": contract.CONTAINER, "type": "MODEL", "endpoint": {"type": "REST"}},
                    "labels": {"version": version},
                }
            ],
        },
    }


def model_card(verdict: Verdict, table_bytes: bytes, run: RunRef | None = None) -> dict:
    """What a registered version says about itself: its figures, its data, its code, its lineage, its interface."""
    from auscult.model import MODEL_FAMILY

    metrics = verdict.metrics
    return {
        "created_at": datetime.now(UTC).isoformat(),
        "code": code_version(),
        "model": {"family": MODEL_FAMILY},
        "data": {
            "table_sha256": hashlib.sha256(table_bytes).hexdigest(),
            "sources": dict(verdict.sources),
            "origins": dict(verdict.origins),
        },
        "metrics": metrics,
        # Where the model says "positive": chosen on validation participants for a target specificity.
        "operating_point": {
            name: metrics.get(name)
            for name in (
                "threshold",
                "target_specificity",
                "sensitivity_at_target_specificity",
                "specificity_at_threshold",
            )
        },
        "validation": verdict.reasons,
        "subgroups": list(verdict.subgroups),
        # What the model can hear: the log-mel front end's upper edge (inside the graph), and whether training
        # varied the recording channel because the channel predicted the label.
        "front_end": {
            "f_max_hz": metrics.get("front_end_f_max_hz", SAMPLE_RATE / 2),
            "channel_augmentation": bool(metrics.get("channel_augmentation", 0.0)),
        },
        "lineage": (
            {
                "pipeline": run.pipeline,
                "run": run.name,
                "run_id": run.run_id,
                "kfp_job_id": run.job_id,
                "splits": layout.lineage_run(run.run_id, "prep"),
                "quarantine": layout.lineage_run(run.run_id, "curate"),
            }
            if run
            else {}
        ),
        "input": {"name": "waveform", "sample_rate": SAMPLE_RATE, "channels": 1, "dtype": "float32"},
        "output": {"name": "probabilities", "classes": list(CLASSES)},
    }


def what_it_is(card: dict) -> list[str]:
    """What a registered version was trained on and how it did in validation: what a person should hear before
    serving it. A version trained on synthetic recordings says so, loudly."""
    data, metrics, point = card.get("data", {}), card.get("metrics", {}), card.get("operating_point", {})
    sources = data.get("sources", {})
    total = sum(sources.values())
    lines = [
        f"{card['version']}: trained on {total} recordings from "
        + (", ".join(f"{name} ({count})" for name, count in sources.items()) or "sources its card does not name")
    ]
    if "auroc" in metrics:
        lines.append(
            f"  validated: test AUROC {metrics['auroc']:.3f} (95% CI over participants "
            f"{metrics.get('auroc_ci_low', float('nan')):.3f}-{metrics.get('auroc_ci_high', float('nan')):.3f})"
        )
    if point.get("threshold") is not None:
        lines.append(
            f"  operating point: positive above {point['threshold']:.3f}, chosen on validation participants for "
            f"specificity >= {point['target_specificity']:.2f}; on test participants sensitivity "
            f"{point['sensitivity_at_target_specificity']:.2f}, specificity {point['specificity_at_threshold']:.2f}"
        )
    if synthetic := data.get("origins", {}).get("synthetic"):
        lines.append(
            f"  WARNING: {synthetic} of its {total} training recordings are synthetic (written by auscult generate): "
            "its scores say nothing about real coughs; train on real recordings before anyone relies on it"
        )
    return lines


def seldon_model(version: str, store_uri: str, spec: ServingSpec = ServingSpec()) -> dict:
    """A Seldon Core v2 Model: Triton serves the registered ONNX (Open Inference Protocol)."""
    return {
        "apiVersion": "mlops.seldon.io/v1alpha1",
        "kind": "Model",
        "metadata": {"name": contract.MODEL_NAME, "namespace": spec.namespace, "labels": _labels(version)},
        "spec": {
            "storageUri": f"{store_uri.rstrip('/')}/{layout.triton_model(contract.MODEL_NAME, version)}",
            "requirements": ["onnx"],
            "server": contract.TRITON_SERVER,
            "replicas": spec.replicas,
        },
    }


RENDERERS = {"seldon-v1": seldon_deployment, "seldon-v2": seldon_model}
TRITON_CONFIG = f"""name: "{contract.MODEL_NAME}"
platform: "onnxruntime_onnx"
max_batch_size: 0
input [{{ name: "waveform", data_type: TYPE_FP32, dims: [ -1, -1 ] }}]
output [{{ name: "probabilities", data_type: TYPE_FP32, dims: [ -1, 2 ] }}]
instance_group [{{ kind: KIND_AUTO }}]
"""


def publish_for_triton(registry: Registry, version: str) -> str:
    """Triton's model-repository layout (config.pbtxt, 1/model.onnx) beside the registry entry."""
    base = layout.triton_model(contract.MODEL_NAME, version)
    registry.store.put_if_absent(f"{base}/{layout.TRITON_CONFIG_FILE}", TRITON_CONFIG.encode())
    registry.store.put_if_absent(f"{base}/1/{layout.ONNX_FILE}", registry.onnx(version))
    return registry.store.uri(base)


def evidence(card: dict) -> dict:
    """What a person approving a version is shown: the validation verdict and its headline figures."""
    figures = card.get("metrics", {})
    return {
        "validation": card.get("validation", []),
        **{
            k: figures[k]
            for k in ("auroc", "auroc_ci_low", "auroc_ci_high", "sensitivity_at_target_specificity")
            if k in figures
        },
        "trained_on": card.get("data", {}).get("sources", {}),
        "run": card.get("lineage", {}).get("run"),
    }


def _model(registry: Registry, version: str) -> dict:
    return lineage.stored(registry.store, layout.model_version(registry.name, version, layout.ONNX_FILE))


def promote(
    registry: Registry,
    version: str,
    action: str,
    acting: dict,
    reason: str,
    run: RunRef | None = None,
) -> dict:
    """Move the production pointer to ``version`` and record the act (``promote``, ``approve``, ``rollback``)."""
    pointer = registry.promote(version, f"{action} by {lineage.who(acting)}: {reason}")
    Lineage(registry.store).audit(
        action,
        acting,
        reason,
        subject={"model": registry.name, "version": version, "previous": pointer["previous"]},
        evidence=evidence(registry.card(version)),
        run=run,
        inputs=[_model(registry, version)],
        outputs=[lineage.stored(registry.store, layout.production_pointers(registry.name))],
    )
    return pointer


@dataclass
class Deployment:
    version: str
    previous: str | None  # production before this deploy
    manifest: dict
    decision: Decision | None  # None when the version was in production already, or is held
    promoted: bool
    held: str | None = None  # why a registered version may not be promoted at all (rejected, trained on erased data)

    @property
    def awaits_approval(self) -> bool:
        return not self.promoted and self.decision is not None

    def notes(self) -> list[str]:
        """What the deploy task says: the plan's decision, and where production stands."""
        notes = [self.decision.summary()] if self.decision else []
        if self.held:
            notes.append(f"not promoted: {self.held}; production stays {self.previous}")
        elif self.awaits_approval:
            notes.append(
                f"{self.version} AWAITS APPROVAL; production stays {self.previous}: "
                f"`auscult approve {self.version} --reason ...` promotes it, `auscult reject` closes it"
            )
        else:
            notes.append(f"production is now {self.version} (previous: {self.previous})")
        return notes

    def summary_markdown(self, registry: Registry) -> str:
        """The deploy task's Markdown artifact: the decision and the version's lineage."""
        decision = "".join(f"**{note}**\n\n" for note in self.notes())
        return f"# {self.version}\n\n{decision}{trace.markdown(trace.model_trace(registry, self.version))}"


def deploy(
    registry: Registry,
    onnx: bytes,
    card: dict,
    reference: dict,
    spec: ServingSpec = ServingSpec(),
    target: str = "seldon-v1",
    cluster: Cluster | None = None,
    timeout_s: float = 600.0,
    poll_s: float = 5.0,
    plan: ChangePlan | None = None,
    run: RunRef | None = None,
) -> Deployment:
    """Register and render for ``target``; promote when ``plan`` (default: the shipped one) lets every change ship
    on its own, and with a ``cluster``, roll out and roll back on failure. Otherwise the version awaits approval."""
    plan = plan or default_plan()
    render = RENDERERS[target]
    record = Lineage(registry.store)
    acting = lineage.actor()
    is_new = registry.find(onnx) is None
    version = registry.register(onnx, card, reference)
    if target == "seldon-v2":
        publish_for_triton(registry, version)
    registry.record_serving(
        version,
        {"target": target, "rollout": cluster is not None, "timeout_s": timeout_s, "spec": dataclasses.asdict(spec)},
    )
    if is_new:
        record.audit(
            "register",
            acting,
            "blessed by validation",
            subject={"model": registry.name, "version": version},
            evidence=evidence(registry.card(version)),
            run=run,
            outputs=[_model(registry, version)],
        )
    manifest = render(version, registry.store.root, spec)
    current = registry.production()
    if current and current["version"] == version:
        return Deployment(version, version, manifest, None, False, f"{version} is in production already")
    if held := _held(registry, version):
        return Deployment(version, current and current["version"], manifest, None, False, held)
    if not is_new and version in registry.served():
        # A rerun on unchanged inputs trains the same weights again: it must not undo what happened since.
        held = (
            f"an earlier run registered these weights as {version}, and production has moved on from it; a run does "
            "not bring it back (`auscult rollback` or `auscult approve` does)"
        )
        return Deployment(version, current and current["version"], manifest, None, False, held)
    decision = classify(registry.card(version), registry.card(current["version"]) if current else None, plan)
    if not decision.automatic:
        if registry.status(version)["status"] != AWAITING_APPROVAL:
            registry.set_status(version, AWAITING_APPROVAL, {"decision": decision.as_dict()})
            record.audit(
                "await-approval",
                acting,
                decision.summary(),
                subject={"model": registry.name, "version": version, "production": current and current["version"]},
                evidence={**evidence(registry.card(version)), "decision": decision.as_dict()},
                run=run,
            )
        return Deployment(version, current and current["version"], manifest, decision, False)
    pointer = promote(registry, version, "promote", acting, decision.summary(), run)
    if cluster is not None:
        roll_out_or_back(registry, cluster, version, pointer["previous"], spec, target, timeout_s, poll_s, run)
    return Deployment(version, pointer["previous"], manifest, decision, True)


def roll_out_or_back(
    registry: Registry,
    cluster: Cluster,
    version: str,
    previous: str | None,
    spec: ServingSpec,
    target: str,
    timeout_s: float,
    poll_s: float = 5.0,
    run: RunRef | None = None,
) -> None:
    """Apply ``version``'s serving resource; when it does not become available, production goes back to
    ``previous`` (recorded as a rollback) and RolloutError is raised."""
    render = RENDERERS[target]
    manifest = render(version, registry.store.root, spec)
    before = render(previous, registry.store.root, spec) if previous else None
    try:
        roll_out(cluster, manifest, before, timeout_s, poll_s)
    except RolloutError:
        if previous is not None:
            promote(registry, previous, "rollback", lineage.actor(), f"{version} did not become available", run)
        raise


def _held(registry: Registry, version: str) -> str | None:
    """Why ``version`` may never be promoted, if it may not."""
    if registry.status(version)["status"] == REJECTED:
        return f"{version} was rejected"
    if erasures := registry.erasures(version):
        return f"{version} was trained on data erased at {erasures[0]['at']}: retrain without it"
    return None


def serving_record(registry: Registry, version: str) -> dict:
    """How ``version`` is rolled out: as recorded at its registration, or for a version registered before that was
    kept, as production's was; render only when neither says."""
    current = registry.production()
    return (
        registry.serving(version)
        or (current and registry.serving(current["version"]))
        or {"target": "seldon-v1", "rollout": False, "timeout_s": 600.0, "spec": {}}
    )


def _serving_of(registry: Registry, version: str) -> tuple[ServingSpec, str, dict]:
    recorded = serving_record(registry, version)
    fields = dict(recorded["spec"])
    fields["tolerations"] = list(fields.get("tolerations", ServingSpec().tolerations))
    return ServingSpec(**fields), recorded["target"], recorded


def approve(
    registry: Registry, version: str, acting: dict, reason: str, cluster: Cluster | None = None, poll_s: float = 5.0
) -> dict:
    """A person lets ``version`` into production; with a ``cluster``, it is rolled out as deploy would have, from
    the serving specification recorded at registration."""
    if version not in registry.versions():
        raise InputError(f"there is no registered version {version!r} (registered: {registry.versions() or 'none'})")
    if held := _held(registry, version):
        raise InputError(f"{held}: it cannot be approved; register a new model")
    current = registry.production()
    if current and current["version"] == version:
        raise InputError(f"{version} is already in production")
    registry.set_status(version, APPROVED, {"by": dict(acting), "reason": reason})
    pointer = promote(registry, version, "approve", acting, reason)
    if cluster is not None:
        spec, target, recorded = _serving_of(registry, version)
        roll_out_or_back(registry, cluster, version, pointer["previous"], spec, target, recorded["timeout_s"], poll_s)
    return pointer


def reject(registry: Registry, version: str, acting: dict, reason: str) -> dict:
    """A person closes a version: it will not be promoted."""
    if version not in registry.versions():
        raise InputError(f"there is no registered version {version!r} (registered: {registry.versions() or 'none'})")
    current = registry.production()
    if current and current["version"] == version:
        raise InputError(f"{version} is in production: roll back first (auscult rollback), then reject it")
    entry = registry.set_status(version, REJECTED, {"by": dict(acting), "reason": reason})
    Lineage(registry.store).audit(
        "reject",
        acting,
        reason,
        subject={"model": registry.name, "version": version},
        evidence=evidence(registry.card(version)),
        inputs=[_model(registry, version)],
    )
    return entry


def rollback(
    registry: Registry, acting: dict, reason: str, cluster: Cluster | None = None, poll_s: float = 5.0
) -> dict:
    """Production goes back to the version before the one in force."""
    current = registry.production()
    if not current or not current["previous"]:
        raise InputError("there is no previous production version to roll back to")
    if held := _held(registry, current["previous"]):
        raise InputError(f"cannot roll back: {held}; approve another version instead (auscult approve)")
    pointer = promote(registry, current["previous"], "rollback", acting, reason)
    if cluster is not None:
        spec, target, recorded = _serving_of(registry, pointer["version"])
        roll_out(
            cluster,
            RENDERERS[target](pointer["version"], registry.store.root, spec),
            None,
            recorded["timeout_s"],
            poll_s,
        )
    return pointer
