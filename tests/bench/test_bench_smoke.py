"""Each benchmark once at tiny size, so that they keep running. Figures are checked for presence and
sanity, never for speed: speed is the benchmarks' business, not the tests'."""

import json

import pytest

from bench import run as bench_run


@pytest.mark.slow
def test_quick_benchmarks_write_every_figure(tmp_path):
    assert bench_run.main(["--quick", "--out", str(tmp_path)]) == 0
    results = json.loads((tmp_path / "results.json").read_text())
    assert results["machine"]["cores"] >= 1
    for ratio in (
        results["frontend"]["ratio_ours_over_librosa"],
        results["frontend"]["prep_ratio_ours_over_librosa"],
        results["inference"]["ratio_onnx_over_torch_b1"],
        results["inference"]["ratio_onnx_over_torch_b32"],
        results["serving"]["ratio_served_c8_over_in_process"],
    ):
        assert ratio > 0
    assert 0 < results["frontend"]["logmel_percent_of_peak"] <= 100
    assert all(results["serving"][f"c{c}"]["failures"] == 0 for c in (1, 8, 32))
    assert results["growth"]["stages"]["train"]["peak_rss_mib"][0] > 0
    sharded = results["growth"]["sharded"]["stages"]
    assert len(sharded["prep"]["shard_wall_s"][0]) == 2 and sharded["curate"]["total_wall_s"][0] > 0
    (small, large) = results["growth"]["cost_model"]["runs"]
    assert small["recordings"] == 1_000_000 and large["core_hours"]["train"] > small["core_hours"]["train"] > 0
    assert results["gpu"]["train_windows_per_s"] > 0 and results["gpu"]["front_end_clips_per_s"] > 0
    assert (tmp_path / "serving.png").read_bytes().startswith(b"\x89PNG")
    table = (tmp_path / "results.md").read_text()
    assert "librosa" in table and "ONNX Runtime" in table and "| train |" in table
    assert "With 2 shards" in table and "Cost model of one run" in table


def test_gpu_benchmark_says_why_it_is_skipped_without_cuda(monkeypatch):
    from bench import gpu

    monkeypatch.setattr(gpu.torch.cuda, "is_available", lambda: False)
    assert "no CUDA device" in gpu.run(quick=False)["skipped"]
    assert "skipped" in bench_run.markdown(
        {"machine": {"cores": 2, "cpu": "x", "gpu": None}, "started_at": "now", "gpu": gpu.run(quick=False)}
    )


def test_growth_figure_is_drawn_from_several_sizes(tmp_path):
    from bench import plots

    stages = {
        "prep": {"wall_s": [0.4, 1.5, 6.0], "peak_rss_mib": [150, 150, 160]},
        "deploy": {"wall_s": [0.01, 0.01, 0.01], "peak_rss_mib": [50, 50, 50]},
    }
    written = plots.write({"growth": {"sizes": [200, 800, 3200], "epochs": [5, 5, 2], "stages": stages}}, tmp_path)
    assert written == [tmp_path / "growth.png"]
    assert written[0].read_bytes().startswith(b"\x89PNG")
