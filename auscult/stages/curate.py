"""curate: decode every recording, measure its quality, quarantine what fails, and profile the data.

Nothing is dropped: a recording that cannot be used stays in the table with ``status = "quarantined"``
and a reason that names the file, and a quarantine record is written to the object store. Bytes that are not
usable audio (undecodable, implausible or lying headers, NaN or infinite samples, longer than
``audio.MAX_DURATION_S``, more samples than ``audio.MAX_DECODED_SAMPLES``) are refused by ``audio.decode``, whose
message becomes the reason. Any other failure to measure a recording quarantines it too, naming the error: one
file never stops the stage.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass
from functools import partial

import numpy as np
import pandas as pd

from auscult import audio, layout, report, shards, table
from auscult.parallel import ordered_map
from auscult.progress import Note, Tracker, emit
from auscult.store import ObjectStore, read_uri


@dataclass(frozen=True)
class QualityRules:
    # No longest duration here: audio.decode refuses what is longer than audio.MAX_DURATION_S, for serving too.
    min_duration_s: float = 0.5
    silent_below_dbfs: float = -55.0
    min_active_s: float = 0.15
    max_clipped_fraction: float = 0.01
    min_snr_db: float = 3.0


def measure(data: bytes) -> dict[str, float | int | str]:
    """Quality measures of one encoded recording, and the format its bytes are; raises ``audio.DecodeError``."""
    decoded = audio.decode(data)
    mono = audio.to_mono(decoded.samples)
    levels = audio.to_db(audio.frame_rms(mono, decoded.sample_rate))
    active = audio.active_frames(mono, decoded.sample_rate)
    return {
        "format": decoded.format,
        "sample_rate": decoded.sample_rate,
        "channels": decoded.channels,
        "duration_s": decoded.duration_s,
        "rms_dbfs": float(audio.to_db(np.sqrt(np.mean(np.square(mono, dtype=np.float64))))),
        "peak": float(np.abs(decoded.samples).max()),
        "clipped_fraction": float(np.mean(np.abs(decoded.samples) >= 0.999)),
        "silence_fraction": float(1.0 - active.mean()),
        "snr_db": float(np.percentile(levels, 95) - np.percentile(levels, 10)),
        "active_s": float(active.sum() * audio.FRAME_S),
        "bandwidth_hz": audio.bandwidth(mono, decoded.sample_rate),
    }


def _measure_and_judge(uri: str, rules: QualityRules) -> tuple[dict, str | None]:
    data = read_uri(uri)  # outside the guard: a store that fails is no property of the recording
    try:
        measures = measure(data)
    except audio.DecodeError as error:  # how bad bytes fail: decode turns every decoder failure into it
        return {}, str(error)
    except Exception as error:  # a defect in a measure: one recording it trips on must not stop the stage
        return {}, f"cannot be measured ({type(error).__name__}: {error})"
    return measures, judge(measures, rules)


def judge(measures: dict[str, float | int | str], rules: QualityRules) -> str | None:
    """The first rule a recording breaks, in words, or None when it is usable."""
    if measures["duration_s"] < rules.min_duration_s:
        return f"too short ({measures['duration_s']:.2f} s < {rules.min_duration_s} s)"
    if measures["rms_dbfs"] < rules.silent_below_dbfs or measures["active_s"] < rules.min_active_s:
        return f"silent (level {measures['rms_dbfs']:.0f} dBFS, {measures['active_s']:.2f} s of activity)"
    if measures["clipped_fraction"] > rules.max_clipped_fraction:
        return f"clipped ({100 * measures['clipped_fraction']:.1f}% of samples at full scale)"
    if measures["snr_db"] < rules.min_snr_db:
        return f"too noisy (SNR {measures['snr_db']:.1f} dB < {rules.min_snr_db} dB)"
    return None


def expectation_suite(rules: QualityRules) -> list[tuple[str, dict]]:
    """The Great Expectations checks every curated table must pass (expectation class, arguments)."""
    usable = {"row_condition": 'status=="ok"', "condition_parser": "pandas"}
    return [
        ("ExpectColumnValuesToNotBeNull", {"column": "recording_id"}),
        ("ExpectColumnValuesToBeUnique", {"column": "recording_id"}),
        ("ExpectColumnValuesToBeInSet", {"column": "status", "value_set": [table.OK, table.QUARANTINED]}),
        (
            "ExpectColumnValuesToNotBeNull",
            {"column": "reason", "row_condition": 'status=="quarantined"', "condition_parser": "pandas"},
        ),
        (
            "ExpectColumnValuesToBeBetween",
            {"column": "sample_rate", "min_value": audio.MIN_SAMPLE_RATE, "max_value": audio.MAX_SAMPLE_RATE, **usable},
        ),
        (
            "ExpectColumnValuesToBeBetween",
            {"column": "channels", "min_value": 1, "max_value": audio.MAX_CHANNELS, **usable},
        ),
        (
            "ExpectColumnValuesToBeBetween",
            {"column": "duration_s", "min_value": rules.min_duration_s, "max_value": audio.MAX_DURATION_S, **usable},
        ),
        ("ExpectColumnValuesToNotBeNull", {"column": "participant_id"}),
    ]


def run_expectations(frame: pd.DataFrame, rules: QualityRules) -> list[dict]:
    """Validate ``frame`` with Great Expectations; one result per expectation with the failing rows."""
    import great_expectations as gx
    from great_expectations.data_context.types.base import ProgressBarsConfig

    context = gx.get_context(mode="ephemeral")
    context.variables.progress_bars = ProgressBarsConfig(globally=False)
    batch = (
        context.data_sources.add_pandas("recordings")
        .add_dataframe_asset("recording_table")
        .add_batch_definition_whole_dataframe("all")
        .get_batch(batch_parameters={"dataframe": _plain(frame)})
    )
    results = []
    for name, kwargs in expectation_suite(rules):
        expectation = getattr(gx.expectations, name)(**kwargs)
        outcome = batch.validate(expectation, result_format={"result_format": "COMPLETE"})
        failing = outcome.result.get("unexpected_index_list") or []
        results.append(
            {
                "expectation": name,
                "column": kwargs["column"],
                "success": bool(outcome.success),
                "failing_rows": [int(i) for i in failing],
            }
        )
    return results


def _plain(frame: pd.DataFrame) -> pd.DataFrame:
    """Great Expectations' pandas checks want numpy dtypes, not pandas' nullable ones."""
    return pd.DataFrame({c: frame[c].astype(object).where(frame[c].notna(), None) for c in frame.columns})


def measure_shard(
    frame: pd.DataFrame,
    shard: int = 0,
    count: int = 1,
    rules: QualityRules = QualityRules(),
    progress: Callable[[str], None] = emit,
    workers: int | None = None,
) -> pd.DataFrame:
    """Measure and judge every recording of ``shard`` (of ``count``) on ``workers`` threads (default one per
    core): its recording ids with the curate columns. Nothing is written anywhere: :func:`check` decides on the
    whole table."""
    frame = shards.select(table.validate(frame, "ingest"), shard, count)
    measured, misnamed = [], []
    results = ordered_map(
        partial(_measure_and_judge, rules=rules),
        list(frame["uri"]),
        workers,
        Tracker("curate", len(frame), "recordings", progress, label=f"shard {shard + 1}/{count}" if count > 1 else ""),
    )
    for row, (measures, reason) in zip(frame.itertuples(index=False), results, strict=True):
        sniffed = measures.pop("format", None)
        if sniffed is not None and sniffed != row.format:
            misnamed.append(f"{row.original_path} is {sniffed}")
        measured.append(
            {
                "recording_id": row.recording_id,
                **measures,
                "status": table.QUARANTINED if reason else table.OK,
                "reason": f"{row.original_path}: {reason}" if reason else None,
            }
        )
    if misnamed:
        # Not a defect: the bytes decide how a file is decoded. The table's format still comes from the name.
        listed = "; ".join(misnamed[:10]) + ("; ..." if len(misnamed) > 10 else "")
        progress(str(Note("curate", f"{len(misnamed)} file(s) are not the format their name says: {listed}")))
    return pd.DataFrame(measured, columns=["recording_id", *table.CURATE_COLUMNS])


def check(
    frame: pd.DataFrame, parts: list[pd.DataFrame], store: ObjectStore, rules: QualityRules = QualityRules()
) -> tuple[pd.DataFrame, list[dict]]:
    """The curated table from the measured shards (``parts``, in any order): the Great Expectations suite on the
    whole, quarantine records written for what fails; return the table in ``frame``'s order and the expectation
    results."""
    frame = table.validate(frame, "ingest")
    measured = shards.in_table_order(frame[["recording_id"]], parts).drop(columns="recording_id")
    curated = table.conform(pd.concat([frame, measured], axis=1), "curate")
    expectations = run_expectations(curated, rules)
    for result in expectations:
        for index in result["failing_rows"]:
            if curated.at[index, "status"] == table.OK:
                curated.at[index, "status"] = table.QUARANTINED
                curated.at[index, "reason"] = (
                    f"{curated.at[index, 'original_path']}: failed data check {result['expectation']}"
                    f"({result['column']})"
                )
    for row in curated[curated["status"] == table.QUARANTINED].itertuples(index=False):
        key = layout.quarantine(row.recording_id)
        if not store.exists(key):
            store.put_json(
                key, {"recording_id": row.recording_id, "uri": row.uri, "reason": row.reason, "rules": asdict(rules)}
            )
    return table.validate(curated, "curate"), expectations


def curate(
    frame: pd.DataFrame,
    store: ObjectStore,
    rules: QualityRules = QualityRules(),
    progress: Callable[[str], None] = emit,
    workers: int | None = None,
    count: int = 1,
) -> tuple[pd.DataFrame, list[dict]]:
    """Every shard (``count`` of them) measured one after the other, then checked as a whole: what the pipeline
    does across pods, in one process. The answer does not depend on ``count``."""
    parts = [measure_shard(frame, shard, count, rules, progress, workers) for shard in range(count)]
    return check(frame, parts, store, rules)


def quarantine_decisions(frame: pd.DataFrame) -> dict[str, str]:
    """Each quarantined recording's id and the reason: what the lineage record keeps of curate's decisions."""
    set_aside = frame[frame["status"] == table.QUARANTINED]
    return dict(zip(set_aside["recording_id"], set_aside["reason"].astype(str), strict=True))


def reason_counts(frame: pd.DataFrame) -> dict[str, int]:
    """Quarantine reasons without the file name, counted: what a person reads first."""
    reasons = frame.loc[frame["status"] == table.QUARANTINED, "reason"].dropna()
    kinds = reasons.str.split(": ", n=1).str[1].str.replace(r" \(.*", "", regex=True)
    return {str(k): int(v) for k, v in kinds.value_counts().items()}


def profile_html(frame: pd.DataFrame, expectations: list[dict]) -> str:
    """The data profile: distributions of the quality measures, what was quarantined and why."""
    import matplotlib.pyplot as plt

    ok = frame[frame["status"] == table.OK]
    fig, axes = plt.subplots(2, 2, figsize=(10, 6.5))
    for axis, column, unit in zip(
        axes.flat,
        ("duration_s", "rms_dbfs", "snr_db", "silence_fraction"),
        ("s", "dBFS", "dB", "fraction"),
        strict=True,
    ):
        values = frame[column].dropna().astype(float)
        axis.hist(values, bins=30, color="#4c72b0", alpha=0.8)
        axis.set_title(f"{column} ({unit})")
        axis.set_ylabel("recordings")
    plots = report.figure(fig)
    counts = reason_counts(frame)
    fig, axis = plt.subplots(figsize=(8, 0.5 + 0.4 * max(1, len(counts))))
    axis.barh(list(counts) or ["none"], list(counts.values()) or [0], color="#c44e52")
    axis.set_xlabel("recordings quarantined")
    reasons_plot = report.figure(fig)
    by_source = frame.groupby(["source", "status"]).size().unstack(fill_value=0)
    quarantined = frame[frame["status"] == table.QUARANTINED]
    return report.page(
        "auscult data profile",
        [
            (
                "Summary",
                report.table(["recordings", "usable", "quarantined"], [[len(frame), len(ok), len(quarantined)]]),
            ),
            ("By source", report.table(["source", *by_source.columns], [[s, *r] for s, r in by_source.iterrows()])),
            ("Quality measures", plots),
            ("Quarantine reasons", reasons_plot + report.table(["reason", "recordings"], counts.items())),
            (
                "Great Expectations suite",
                report.table(
                    ["expectation", "column", "passed", "failing rows"],
                    [[e["expectation"], e["column"], e["success"], len(e["failing_rows"])] for e in expectations],
                ),
            ),
            (
                "Quarantined files",
                report.table(
                    ["file", "reason"],
                    [[r.original_path, (r.reason or "").split(": ", 1)[-1]] for r in quarantined.itertuples()],
                ),
            ),
        ],
    )
