"""External evaluation: how a registered model does on recordings it has never seen.

What a clinic runs before trusting a model on its own recordings: any source the pipeline accepts is read,
checked and labelled by the pipeline's own stages (ingest, curate, label, into a scratch store that is
deleted afterwards), scored in process by the serving runtime exactly as a request would be, and reported
per participant at the operating point the model was registered with.
"""

from __future__ import annotations

import secrets
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial

import numpy as np
import pandas as pd

from auscult import assessment, audio, report, table
from auscult.errors import InputError
from auscult.parallel import ordered_map
from auscult.progress import Tracker, emit
from auscult.registry import Registry
from auscult.serving.runtime import Predictor
from auscult.stages.curate import curate
from auscult.stages.ingest import TELEMETRY, ingest
from auscult.stages.label import DEFAULT_CLASS_MAP, LABELLED, label
from auscult.store import FileStore, read_uri
from auscult.task import CLASSES, MIN_PARTICIPANTS_PER_CLASS


@dataclass
class Evaluation:
    version: str
    operating_point: dict  # threshold and target specificity from the model card
    assessment: assessment.Assessment
    recordings: int  # read from the sources
    quarantined: int
    unlabelled: int  # usable, but without a label the class map knows
    seen: int  # usable recordings the model was trained or tuned on: left out


def _score(uri: str, predictor: Predictor) -> float:
    decoded = audio.decode(read_uri(uri))
    return float(predictor.probabilities(audio.prepare(decoded.samples, decoded.sample_rate))[1])


def evaluate(
    registry: Registry,
    sources: list[str],
    version: str | None = None,
    class_map: dict[str, list[str]] = DEFAULT_CLASS_MAP,
    bootstrap: int = 1000,
    seed: int = 0,
    min_participants_per_class: int = MIN_PARTICIPANTS_PER_CLASS,
    progress: Callable[[str], None] = emit,
) -> Evaluation:
    """Score ``version`` (default: production) on every usable, labelled recording of ``sources``."""
    if version is None:
        pointer = registry.production()
        if pointer is None:
            raise InputError(f"{registry.store.root} has no production model: name one with a version")
        version = pointer["version"]
    if TELEMETRY in sources:
        raise InputError("evaluate reads dataset folders and manifests; production telemetry is `auscult monitor`'s")
    if version not in registry.versions():
        raise InputError(f"{registry.store.root} has no version {version!r} (it has: {registry.versions() or 'none'})")
    card = registry.card(version)
    point = card.get("operating_point") or card["metrics"]
    trained_on = set(registry.reference(version).get("recordings", []))
    with tempfile.TemporaryDirectory(prefix="auscult-evaluate-") as scratch:
        store = FileStore(scratch)
        # Pseudonyms only group a participant's recordings here; the key is thrown away with the scratch store.
        frame, _ = ingest(sources, store, secrets.token_bytes(32), progress)
        curated, _ = curate(frame, store, progress=progress)
        labelled = label(curated, class_map)
        usable = labelled[(labelled["status"] == table.OK) & (labelled["label_status"] == LABELLED)]
        # A recording the model learnt from would flatter it: identical bytes have the same id anywhere.
        seen = usable["recording_id"].isin(trained_on)
        usable = usable[~seen]
        per_class = usable.groupby("label")["participant_id"].nunique()
        if any(per_class.get(cls, 0) < min_participants_per_class for cls in CLASSES):
            found = ", ".join(f"{cls}: {int(per_class.get(cls, 0))} participants" for cls in CLASSES)
            raise InputError(
                f"{', '.join(sources)} has {found} with usable, labelled recordings: a figure drawn from fewer "
                f"than {min_participants_per_class} of each class is no evidence"
            )
        predictor = Predictor(registry.onnx(version), version)
        values = list(
            ordered_map(
                partial(_score, predictor=predictor),
                list(usable["uri"]),
                progress=Tracker("evaluate", len(usable), "recordings", progress),
            )
        )
    scores = pd.DataFrame(
        {
            "recording_id": usable["recording_id"].to_numpy(),
            "participant_id": usable["participant_id"].to_numpy(),
            "label": [CLASSES.index(c) for c in usable["label"]],
            "score": np.asarray(values, dtype=float),
        }
    )
    target = float(point["target_specificity"])
    result = assessment.assess(scores, labelled, {target: float(point["threshold"])}, target, bootstrap, seed)
    ok = labelled["status"] == table.OK
    return Evaluation(
        version=version,
        operating_point={"threshold": float(point["threshold"]), "target_specificity": target},
        assessment=result,
        recordings=len(labelled),
        quarantined=int((~ok).sum()),
        unlabelled=int((ok & (labelled["label_status"] != LABELLED)).sum()),
        seen=int(seen.sum()),
    )


def summary_lines(result: Evaluation) -> list[str]:
    f = result.assessment.figures
    point = result.operating_point
    return [
        f"{result.version} on {result.recordings} recordings: {assessment.describe_counts(f)} scored; "
        f"{result.quarantined} quarantined, {result.unlabelled} without a usable label, {result.seen} left out "
        "because the model was trained or tuned on them",
        f"AUROC {f['auroc']:.3f} (95% CI over participants {f['auroc_ci_low']:.3f}-{f['auroc_ci_high']:.3f})",
        f"at the model's operating point (threshold {point['threshold']:.3f}, chosen for specificity "
        f"{point['target_specificity']:.2f} on its validation participants): "
        f"sensitivity {f['sensitivity_at_target_specificity']:.3f} "
        f"({f['sensitivity_ci_low']:.3f}-{f['sensitivity_ci_high']:.3f}), "
        f"specificity {f['specificity_at_threshold']:.3f} "
        f"({f['specificity_ci_low']:.3f}-{f['specificity_ci_high']:.3f})",
        *result.assessment.notes,
    ]


def report_html(result: Evaluation) -> str:
    return report.page(
        f"auscult external evaluation of {result.version}",
        [
            ("Summary", report.bullets(summary_lines(result))),
            *assessment.sections(result.assessment, "these recordings"),
        ],
    )
