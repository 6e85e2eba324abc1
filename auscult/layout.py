"""Where long-lived state lives in the object store: every key prefix, and every key built from them.

```
lake/<id[:2]>/<id>.<format>                         recordings, content-addressed (ingest)
quarantine/<id>.json                                why a recording is not used (curate)
quarantine/uploads/<sha of key>.json                why an app upload is not read (ingest)
models/<name>/versions/<version>/model.onnx         a registered model, its card and training reference
models/<name>/versions/<version>/serving.json       how deploy would roll it out (approve replays it)
models/<name>/versions/<version>/status/<seq>.json  awaiting approval, approved, rejected (append-only)
models/<name>/versions/<version>/erased/<id>.json   it was trained on data since erased (erasure)
models/<name>/production/<seq>.json                 the append-only production pointer
models/<name>/triton/<version>/1/model.onnx         Triton's repository layout (Seldon Core v2)
telemetry/records/<yyyy/mm/dd>/<request id>.json    one record per answered request (serving)
telemetry/audio/<sha[:2]>/<sha>.wav                 the prepared audio a request carried
telemetry/feedback/<yyyy/mm/dd>/<request id>-<time>.json  a request's true class, by the day it arrived
monitor/decisions/<time>.json                       each monitoring decision
monitor/reports/<time>.html                         each monitoring report of `auscult monitor`
lineage/events/<yyyy/mm/dd>/<time>-<uuid>.json      OpenLineage run events: every task, every governance act
lineage/runs/<run>/<stage>.json                     the recording ids a run's stage split or set aside
lineage/recordings/<id[:2]>/<id>.json               where a recording came from: source, original path, participant
governance/plans/<name>/<seq>.yaml                  change-control plans, each change a new version
governance/tombstones/<keyed hash>.json             erased recordings and participants, naming no one
uploads/<any path>/<name>.<format> + <name>.json    the landing prefix: an app's recording and its sidecar
ingest/index/<keyed hash of source>.parquet         what ingest learnt from a source's files (keyed names)
reports/runs/<run>/<stage>-figures.json            a run's plots, by stage (aggregates: they name no one)
reports/runs/<run>/report.html                      a run's report, whatever its end (the pipeline's last task)
work/<run>/started.json                             a run's working data: when it began (auscult.working)
work/<run>/windows/<shard>-of-<count>.npy           a prep shard's model windows, read by train and validate
work/<run>/train/input/ , work/<run>/train/output/  what a training job's workers read and write
```

Lineage events hold only content hashes, counts and pseudonyms by reference: the ids of a run's recordings are
in ``lineage/runs/`` and where they came from in ``lineage/recordings/``, the two prefixes erasure edits.

Nothing else in the project spells a key. A folder artifact of the validate stage has the layout of a
registry version (:data:`ONNX_FILE`, :data:`REFERENCE_FILE`), so that deploy copies it as it is.
"""

from __future__ import annotations

import hashlib
from datetime import date, datetime

LAKE = "lake/"
QUARANTINE = "quarantine/"
MODELS = "models/"
TELEMETRY_RECORDS = "telemetry/records/"
TELEMETRY_AUDIO = "telemetry/audio/"
TELEMETRY_FEEDBACK = "telemetry/feedback/"
MONITOR_DECISIONS = "monitor/decisions/"
MONITOR_REPORTS = "monitor/reports/"
LINEAGE_EVENTS = "lineage/events/"
LINEAGE_RUNS = "lineage/runs/"
LINEAGE_RECORDINGS = "lineage/recordings/"
PLANS = "governance/plans/"
TOMBSTONES = "governance/tombstones/"
UPLOADS = "uploads/"
INGEST_INDEX = "ingest/index/"
RUN_REPORTS = "reports/runs/"
WORK = "work/"

ONNX_FILE = "model.onnx"
MODEL_CARD_FILE = "model_card.json"
REFERENCE_FILE = "reference.json"
TRITON_CONFIG_FILE = "config.pbtxt"
SERVING_SPEC_FILE = "serving.json"


def lake(recording_id: str, extension: str) -> str:
    return f"{LAKE}{recording_id[:2]}/{recording_id}.{extension}"


def quarantine(recording_id: str) -> str:
    return f"{QUARANTINE}{recording_id}.json"


def upload_quarantine(upload_key: str) -> str:
    return f"{QUARANTINE}uploads/{hashlib.sha256(upload_key.encode()).hexdigest()}.json"


def run_figures(run_id: str, stage: str) -> str:
    return f"{RUN_REPORTS}{run_id}/{stage}-figures.json"


def run_report(run_id: str) -> str:
    return f"{RUN_REPORTS}{run_id}/report.html"


def run_work(run_id: str) -> str:
    """A run's working data: deleted when the run ends, or by the retention rule (:mod:`auscult.working`)."""
    return f"{WORK}{run_id}/"


def run_work_started(run_id: str) -> str:
    return f"{run_work(run_id)}started.json"


def run_windows(run_id: str, shard: int, count: int) -> str:
    return f"{run_work(run_id)}windows/{shard:05d}-of-{count:05d}.npy"


def training_input(run_id: str) -> str:
    return f"{run_work(run_id)}train/input/"


def training_output(run_id: str) -> str:
    return f"{run_work(run_id)}train/output/"


def model_versions(model: str) -> str:
    return f"{MODELS}{model}/versions/"


def model_version(model: str, version: str, file: str) -> str:
    return f"{model_versions(model)}{version}/{file}"


def version_status(model: str, version: str, sequence: int | None = None) -> str:
    folder = model_version(model, version, "status/")
    return folder if sequence is None else f"{folder}{sequence:06d}.json"


def version_erasure(model: str, version: str, erasure_id: str | None = None) -> str:
    folder = model_version(model, version, "erased/")
    return folder if erasure_id is None else f"{folder}{erasure_id}.json"


def production_pointers(model: str) -> str:
    return f"{MODELS}{model}/production/"


def production_pointer(model: str, sequence: int) -> str:
    return f"{production_pointers(model)}{sequence:06d}.json"


def triton_model(model: str, version: str) -> str:
    """The folder Triton loads one version from (``config.pbtxt`` and ``1/model.onnx`` inside)."""
    return f"{MODELS}{model}/triton/{version}"


def telemetry_record(request_id: str, received_at: datetime) -> str:
    return f"{TELEMETRY_RECORDS}{received_at:%Y/%m/%d}/{request_id}.json"


def telemetry_audio(sha256: str) -> str:
    return f"{TELEMETRY_AUDIO}{sha256[:2]}/{sha256}.wav"


def telemetry_feedback(request_id: str, received_at: datetime) -> str:
    """By the day it arrived, not the day of its request: a reader from a watermark sees a late label. Each label
    has a key of its own (nothing is overwritten); a request's newest label sorts last."""
    return f"{TELEMETRY_FEEDBACK}{received_at:%Y/%m/%d}/{request_id}-{received_at:%H%M%S%f}.json"


def telemetry_from(prefix: str, day: date) -> str:
    """What to list ``prefix`` (records or feedback) after to find the keys of ``day`` and later: keys are
    date-partitioned, so their order is the order of days."""
    return f"{prefix}{day:%Y/%m/%d}"


def telemetry_day(key: str) -> date | None:
    """The day a telemetry record or label key is filed under; None for a key of another shape."""
    for prefix in (TELEMETRY_RECORDS, TELEMETRY_FEEDBACK):
        if key.startswith(prefix):
            try:
                return datetime.strptime(key[len(prefix) : len(prefix) + 10], "%Y/%m/%d").date()
            except ValueError:
                return None
    return None


def ingest_index(source_hash: str) -> str:
    """One source's ingest index (:mod:`auscult.stages.ingest`), named by a keyed hash of the source."""
    return f"{INGEST_INDEX}{source_hash}.parquet"


def monitor_decision(decided_at: datetime) -> str:
    return f"{MONITOR_DECISIONS}{decided_at:%Y%m%dT%H%M%S%fZ}.json"


def monitor_report(decided_at: datetime) -> str:
    return f"{MONITOR_REPORTS}{decided_at:%Y%m%dT%H%M%S%fZ}.html"


def lineage_event(event_time: datetime, event_id: str) -> str:
    return f"{LINEAGE_EVENTS}{event_time:%Y/%m/%d}/{event_time:%Y%m%dT%H%M%S%fZ}-{event_id}.json"


def lineage_run(run_id: str, stage: str | None = None) -> str:
    folder = f"{LINEAGE_RUNS}{run_id}/"
    return folder if stage is None else f"{folder}{stage}.json"


def lineage_recording(recording_id: str) -> str:
    return f"{LINEAGE_RECORDINGS}{recording_id[:2]}/{recording_id}.json"


def plan(name: str, sequence: int | None = None) -> str:
    folder = f"{PLANS}{name}/"
    return folder if sequence is None else f"{folder}{sequence:06d}.yaml"


def tombstone(keyed_hash: str) -> str:
    return f"{TOMBSTONES}{keyed_hash}.json"
