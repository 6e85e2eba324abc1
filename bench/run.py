"""Run every benchmark and write ``results.json`` and ``results.md`` (``make bench``).

python -m bench.run               # the full set (about 4 minutes on 2 cores)
python -m bench.run --quick       # each benchmark once at tiny size, to keep them from rotting
python -m bench.run --only gpu    # on a GPU machine: training, front end and ONNX Runtime's CUDA provider
"""

from __future__ import annotations

import argparse
import json
import time
from datetime import UTC, datetime
from pathlib import Path

from bench import common, frontend, gpu, growth, inference, plots, serving

SHARED_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "covid19-cough" / "raw"


def prep_files(quick: bool) -> list[Path]:
    """Real mp3 coughs when ../shared is there; otherwise synthetic wav/flac/ogg/mp3 files."""
    count = 8 if quick else 200
    if SHARED_DATA.is_dir():
        return sorted(SHARED_DATA.glob("*.mp3"))[:count]
    import tempfile

    from auscult import synth

    folder = Path(tempfile.mkdtemp(prefix="auscult-bench-files-"))
    synth.generate(folder, synth.CohortSpec(participants=max(2, count // 4), defect_rate=0.0))
    return sorted(p for p in folder.glob("*/*/*") if p.is_file())[:count]


BENCHMARKS = ("frontend", "inference", "serving", "growth", "gpu")


def run(quick: bool, only: tuple[str, ...] = BENCHMARKS, log=print) -> dict:
    results: dict = {"machine": common.machine(), "started_at": datetime.now(UTC).isoformat(), "quick": quick}
    plan = {
        "frontend": lambda: frontend.run(count=4 if quick else 64, files=prep_files(quick)),
        "inference": lambda: inference.run(iterations=5 if quick else 300),
        "serving": lambda: (
            serving.run(requests=8, limit_s=10, rounds=1) if quick else serving.run(requests=400, limit_s=30, rounds=2)
        ),
        "growth": lambda: (
            growth.run(sizes=(80,), epochs=1, largest_epochs=1, shards=2, sharded_sizes=(80,), one_shard=False)
            if quick
            else growth.run()
        ),
        "gpu": lambda: gpu.run(quick),
    }
    for name in only:
        started = time.perf_counter()
        log(f"bench: {name} ...")
        results[name] = plan[name]()
        if name == "growth":
            results[name]["cost_model"] = growth.cost_model(results[name])
        results[name]["bench_seconds"] = time.perf_counter() - started
        log(f"bench: {name} done in {results[name]['bench_seconds']:.0f} s")
    return results


def _verdict(value: float, target: float) -> str:
    return f"{'met' if value >= target else 'not met'} (target {target:g}x)"


def markdown(results: dict) -> str:
    m = results["machine"]
    lines = [
        f"Measured {results['started_at'][:16]} UTC on {m['cores']} cores ({m['cpu']}), GPU: {m['gpu'] or 'none'}.",
        "",
        "| figure | auscult | alternative | ratio | target |",
        "|---|---|---|---|---|",
    ]
    if "frontend" in results:
        f = results["frontend"]
        lines += [
            f"| front end: resample 44.1k->16k + log-mel, 5-s clips/s | {f['ours_clips_per_s']:.0f} "
            f"(resample {f['ours_resample_clips_per_s']:.0f}, log-mel {f['ours_logmel_clips_per_s']:.0f}) | "
            f"librosa {f['librosa_clips_per_s']:.0f} (resample {f['librosa_resample_clips_per_s']:.0f}, "
            f"log-mel {f['librosa_logmel_clips_per_s']:.0f}) | {f['ratio_ours_over_librosa']:.2f}x | "
            f"{_verdict(f['ratio_ours_over_librosa'], 10)}; resampling alone caps it at "
            f"{f['ratio_bound_by_resampling']:.1f}x |",
            f"| prep path from encoded files ({f.get('prep_formats', '-')}), files/s | "
            f"{f.get('prep_ours_files_per_s', 0):.0f} | "
            f"librosa.load + melspectrogram {f.get('prep_librosa_files_per_s', 0):.0f} | "
            f"{f.get('prep_ratio_ours_over_librosa', 0):.2f}x | - |",
            f"| log-mel FLOP rate, FFT-equivalent (executed by our DFT GEMM), vs the best 2048^3 matmul | "
            f"{f['logmel_gflops']:.1f} ({f['logmel_executed_gflops']:.0f}) GFLOP/s | matmul "
            f"{f['peak_matmul_gflops']:.0f} GFLOP/s | {f['logmel_percent_of_peak']:.1f}% "
            f"({f['logmel_executed_percent_of_peak']:.0f}%) | - |",
        ]
    if "inference" in results:
        i = results["inference"]
        lines += [
            f"| inference batch 1, 2-s windows/s (p50 / p99 latency) | ONNX Runtime {i['onnx_b1_clips_per_s']:.0f} "
            f"({i['onnx_b1']['p50_ms']:.2f} / {i['onnx_b1']['p99_ms']:.2f} ms) | torch eager "
            f"{i['torch_b1_clips_per_s']:.0f} ({i['torch_b1']['p50_ms']:.2f} / {i['torch_b1']['p99_ms']:.2f} ms) | "
            f"{i['ratio_onnx_over_torch_b1']:.2f}x | "
            f"{_verdict(i['ratio_onnx_over_torch_b1'], 3)} |",
            f"| inference batch 32, windows/s (p50 / p99 batch latency) | ONNX Runtime {i['onnx_b32_clips_per_s']:.0f} "
            f"({i['onnx_b32']['p50_ms']:.1f} / {i['onnx_b32']['p99_ms']:.1f} ms) | torch eager "
            f"{i['torch_b32_clips_per_s']:.0f} ({i['torch_b32']['p50_ms']:.1f} / {i['torch_b32']['p99_ms']:.1f} ms) | "
            f"{i['ratio_onnx_over_torch_b32']:.2f}x | - |",
        ]
    if "serving" in results:
        s = results["serving"]
        for key in ("c1", "c8", "c32"):
            if key not in s:
                continue
            c = s[key]
            ratio = c["requests_per_s"] / s["in_process_requests_per_s"]
            target = {
                "c1": f"p99 {'met' if c['p99_ms'] <= 10 else 'not met'} (target <= 10 ms)",
                "c8": _verdict(ratio, 0.8),
            }.get(key, "-")
            lines.append(
                f"| served over HTTP, concurrency {key[1:]}: p50/p95/p99 ms, req/s | {c['p50_ms']:.1f} / "
                f"{c['p95_ms']:.1f} / {c['p99_ms']:.1f}, {c['requests_per_s']:.0f} req/s | in-process ONNX Runtime "
                f"{s['in_process_requests_per_s']:.0f} req/s | {ratio:.2f}x | {target} |"
            )
        if "c1_with_idle_clients" in s:
            c, base = s["c1_with_idle_clients"], s["c1"]
            lines.append(
                f"| served, concurrency 1, while {c['idle_clients']} clients hold unfinished requests: p50/p99 ms | "
                f"{c['p50_ms']:.1f} / {c['p99_ms']:.1f}, {c['failures']} failed | the same without them "
                f"{base['p50_ms']:.1f} / {base['p99_ms']:.1f} | {c['p99_ms'] / base['p99_ms']:.2f}x | - |"
            )
    if "gpu" in results:
        lines += _gpu_lines(results["gpu"])
    if "growth" in results:
        lines += _growth_lines(results["growth"])
    return "\n".join(lines) + "\n"


def _gpu_lines(g: dict) -> list[str]:
    if "skipped" in g:
        return [f"| GPU | skipped: {g['skipped']} | | | |"]
    lines = [
        f"| training on {g['device']}, 2-s windows/s (batch {g['batch']}) | {g['train_windows_per_s']:.0f} | "
        f"CPU {g['train_cpu_windows_per_s']:.0f} | {g['ratio_train_over_cpu']:.1f}x | - |",
        f"| front end on {g['device']} (torchaudio resample + log-mel), 5-s clips/s | "
        f"{g['front_end_clips_per_s']:.0f} | | | - |",
    ]
    cuda = g["onnx_cuda"]
    if "skipped" in cuda:
        lines.append(f"| ONNX Runtime CUDA provider | skipped: {cuda['skipped']} | | | |")
    else:
        lines.append(
            f"| ONNX Runtime CUDA provider, batch {g['batch']} windows/s (b1 p50) | {cuda['batch_clips_per_s']:.0f} "
            f"({cuda['b1']['p50_ms']:.2f} ms) | CPU provider {g['onnx_cpu']['batch_clips_per_s']:.0f} "
            f"({g['onnx_cpu']['b1']['p50_ms']:.2f} ms) | {g['ratio_onnx_cuda_over_cpu_batch']:.1f}x | - |"
        )
    return lines


def _growth_lines(g: dict) -> list[str]:
    epochs = ", ".join(f"{e} at {n}" for e, n in zip(g["epochs"], g["sizes"], strict=True))
    lines = [
        "",
        f"Cost growth (training pipeline, one shard; epochs: {epochs}): wall seconds / peak MiB per stage "
        "(train: per epoch in the exponent)",
        "",
        "| stage | "
        + " | ".join(f"{n} recordings" for n in g["sizes"])
        + " | growth exponent: all sizes / two largest |",
        "|---|" + "---|" * (len(g["sizes"]) + 1),
    ]
    for stage, entry in g["stages"].items():
        cells = [
            f"{t if t is not None else '-'} s / {p if p is not None else '-'} MiB"
            for t, p in zip(entry["wall_s"], entry["peak_rss_mib"], strict=True)
        ]
        exponents = (entry.get("growth_exponent"), entry.get("growth_exponent_largest"))
        growth_cell = " / ".join(f"{e:.2f}" for e in exponents) if None not in exponents else "-"
        lines.append(f"| {stage} | " + " | ".join(cells) + f" | {growth_cell} |")
    if g.get("fastest_growing_stage"):
        lines += ["", f"Fastest-growing stage: **{g['fastest_growing_stage']}** (exponent 1 = linear)."]
    sharded = g.get("sharded", {})
    if sharded.get("stages"):
        lines += [
            "",
            f"With {sharded['shards']} shards (each a task; locally one after another): each shard's wall seconds, "
            "the merge's, and the total, against one shard above",
            "",
            "| stage | recordings | shards (s) | merge (s) | total (s) | one shard (s) | shard peak MiB |",
            "|---|---|---|---|---|---|---|",
        ]
        for stage, entry in sharded["stages"].items():
            for i, size in enumerate(sharded["sizes"]):
                one = g["stages"][stage]["wall_s"][g["sizes"].index(size)]
                parts = " + ".join(f"{t:.1f}" for t in entry["shard_wall_s"][i])
                lines.append(
                    f"| {stage} | {size} | {parts} | {entry['merge_wall_s'][i]:.2f} | {entry['total_wall_s'][i]:.1f} "
                    f"| {one if one is not None else '-'} | {entry['shard_peak_rss_mib'][i]:.0f} |"
                )
    if g.get("cost_model"):
        lines += _cost_lines(g["cost_model"])
    return lines


def _cost_lines(model: dict) -> list[str]:
    a = model["assumptions"]
    lines = [
        "",
        f"Cost model of one run (linear from the figures above; {a['parallelism']} shard tasks of {a['task_cores']} "
        f"cores at once, shards of {a['shard_size']} recordings, {a['epochs']} epochs on {a['training_workers']} "
        f"data-parallel {a['task_cores']}-core CPU workers): core-hours / wall hours",
        "",
        "| recordings | pods | ingest | curate | label | prep | train | validate | bound by |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for run in model["runs"]:
        cells = [
            f"{run['core_hours'][s]:.1f} / {run['wall_hours'][s]:.2f}"
            for s in ("ingest", "curate", "label", "prep", "train", "validate")
        ]
        lines.append(f"| {run['recordings']:,} | {run['pods']:,} | " + " | ".join(cells) + f" | {run['bound_by']} |")
    return lines


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m bench.run", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--quick", action="store_true", help="each benchmark once at tiny size")
    parser.add_argument(
        "--out",
        type=Path,
        help="where results.json/.md and the plots go (default: bench/results, or bench/results/partial with --only,"
        " so that a partial run never replaces the published full one)",
    )
    parser.add_argument(
        "--only",
        nargs="+",
        choices=BENCHMARKS,
        default=BENCHMARKS,
        metavar="NAME",
        help=f"run only these benchmarks ({', '.join(BENCHMARKS)}); e.g. --only gpu on a GPU machine",
    )
    args = parser.parse_args(argv)
    args.out = args.out or Path("bench/results" if set(args.only) == set(BENCHMARKS) else "bench/results/partial")
    results = run(args.quick, tuple(args.only), log=lambda line: print(line, flush=True))
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "results.json").write_text(json.dumps(results, indent=1))
    (args.out / "results.md").write_text(markdown(results))
    figures = plots.write(results, args.out)
    print(markdown(results))
    written = [args.out / "results.json", args.out / "results.md", *figures]
    print("wrote " + ", ".join(str(path) for path in written))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
