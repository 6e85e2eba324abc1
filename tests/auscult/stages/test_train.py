import numpy as np
import pandas as pd
import pytest
import torch

from auscult import model as screening_model
from auscult.errors import InputError
from auscult.model import ModelConfig, ScreeningNet, export_onnx
from auscult.serving.runtime import Predictor
from auscult.stages.train import MIN_BAND_HZ, ChannelAugment, TrainConfig, channel_guard, predict, train


def test_training_learns_the_synthetic_difference(trained, prepared):
    assert len(trained.history) == 4
    assert trained.history[-1]["loss"] < trained.history[0]["loss"]
    windows, _ = prepared.split("test")
    scores = predict(trained.model, windows)
    assert scores.shape == (len(windows),) and np.all((scores >= 0) & (scores <= 1))


def test_training_is_seeded(prepared):
    first = train(prepared, TrainConfig(epochs=1, seed=5), progress=lambda _: None)
    second = train(prepared, TrainConfig(epochs=1, seed=5), progress=lambda _: None)
    for a, b in zip(first.model.state_dict().values(), second.model.state_dict().values(), strict=True):
        assert torch.equal(a, b)


def test_one_class_is_refused(prepared):
    one_class = type(prepared)(prepared.table, prepared.windows, prepared.index.assign(label=0), prepared.audit)
    with pytest.raises(InputError, match="both classes"):
        train(one_class, TrainConfig(epochs=1), progress=lambda _: None)


def test_checkpoint_round_trip(trained, tmp_path):
    screening_model.save(trained.model, tmp_path / "m.pt")
    loaded = screening_model.load(tmp_path / "m.pt")
    wave = torch.randn(2, 32000) * 0.1
    with torch.inference_mode():
        assert torch.allclose(loaded(wave), trained.model.eval()(wave))


def audit_flagging(*properties: str) -> pd.DataFrame:
    names = ["source", "device", "sample_rate", "bandwidth_hz", "duration_s"]
    return pd.DataFrame({"property": names, "auroc": 0.5, "flagged": [n in properties for n in names]})


def test_the_channel_guard_caps_at_the_narrowest_band_in_training():
    training = pd.DataFrame(
        {"sample_rate": [8_000, 48_000, 48_000] * 10, "bandwidth_hz": [3_400.0, 15_000.0, 9_000.0] * 10}
    )
    guard = channel_guard(audit_flagging("sample_rate", "device"), training)
    assert guard.properties == ("device", "sample_rate") and 3_400 <= guard.f_max_hz < 4_000
    assert channel_guard(audit_flagging("duration_s", "source"), training) is None
    muffled = training.assign(bandwidth_hz=500.0)
    assert channel_guard(audit_flagging("bandwidth_hz"), muffled).f_max_hz == MIN_BAND_HZ


def test_a_capped_front_end_is_deaf_above_its_edge_in_the_exported_graph(tmp_path):
    model = ScreeningNet(ModelConfig(f_max=3_000.0)).eval()
    export_onnx(model, tmp_path / "capped.onnx")
    predictor = Predictor((tmp_path / "capped.onnx").read_bytes(), "capped")
    t = np.arange(32_000) / 16_000
    cough = (np.random.default_rng(0).standard_normal(32_000) * np.exp(-t * 3) * 0.1).astype(np.float32)
    hiss = (0.05 * np.sin(2 * np.pi * 6_000 * t)).astype(np.float32)  # a channel's mark, far above the edge
    plain, marked = predictor.windows_scores(cough[None]), predictor.windows_scores((cough + hiss)[None])
    assert np.abs(plain - marked).max() < 1e-3
    full = ScreeningNet(ModelConfig()).eval()
    with torch.inference_mode():
        heard = full(torch.from_numpy((cough + hiss)[None])) - full(torch.from_numpy(cough[None]))
    assert heard.abs().max() > 1e-3  # the uncapped front end does hear it


def test_channel_augmentation_is_seeded_and_changes_the_channel():
    batch = torch.randn(8, 16_000) * 0.1
    augment = ChannelAugment(4_000.0, p=1.0)
    first = augment(batch, torch.Generator().manual_seed(1))
    again = augment(batch, torch.Generator().manual_seed(1))
    assert torch.equal(first, again) and not torch.allclose(first, batch)
    spectrum = torch.fft.rfft(first).abs()
    above = spectrum[:, int(4_500 / 8_000 * spectrum.shape[1]) :].mean()
    assert above < 0.5 * torch.fft.rfft(batch).abs().mean()  # band-limited below 4 kHz (noise and coding aside)


def test_the_guard_travels_with_the_checkpoint(trained, tmp_path):
    from auscult.stages.train import ChannelGuard, TrainResult

    guarded = TrainResult(trained.model, trained.history, trained.best_epoch, ChannelGuard(("device",), 3_400.0))
    guarded.save(tmp_path)
    assert TrainResult.load(tmp_path).guard == guarded.guard


def _held_out_auroc(result, prepared, splits=("validation", "test")) -> float:
    """Recording-level AUROC on the participants training never saw."""
    from auscult import metrics
    from auscult.stages.train import per_recording

    scores = []
    for name in splits:
        windows, index = prepared.split(name)
        scores.append(per_recording(index, predict(result.model, windows)))
    joined = pd.concat(scores)
    return metrics.roc_auc(joined["label"].to_numpy(), joined["score"].to_numpy())


# How far a data-parallel run's held-out AUROC may fall below one worker's under the same seed. The workers draw the
# same batches and augmentation and split each batch, so batch normalisation (each worker normalises its share, and
# the running statistics are the first worker's) and float order are what differ. On the ~70 held-out recordings of
# this cohort two workers scored 0.769 against 0.805 (seed 0, this test) and 0.814 against 0.911 (seed 1).
DATA_PARALLEL_TOLERANCE = 0.15


@pytest.fixture(scope="module")
def larger(tmp_path_factory):
    """A cohort whose held-out AUROC means something: the session's is two dozen recordings."""
    from auscult import synth
    from auscult.stages.curate import curate
    from auscult.stages.ingest import ingest
    from auscult.stages.label import label
    from auscult.stages.prep import prep
    from auscult.stages.split import split
    from auscult.store import FileStore
    from tests.conftest import KEY

    folder = tmp_path_factory.mktemp("larger")
    spec = synth.CohortSpec(participants=60, seed=5, effect=1.0, defect_rate=0.0, unusable_label_rate=0.0)
    synth.generate(folder / "cohort", spec)
    store = FileStore(folder / "store")
    quiet = lambda _: None  # noqa: E731
    frame, _ = ingest([str(folder / "cohort")], store, KEY, progress=quiet)
    return prep(split(label(curate(frame, store, progress=quiet)[0])), folder / "prep", progress=quiet)


@pytest.mark.slow
def test_two_data_parallel_workers_reach_one_workers_auroc(larger):
    config = TrainConfig(epochs=4)
    one = train(larger, config, progress=lambda _: None)
    two = train(larger, config, progress=lambda _: None, workers=2)
    assert len(two.history) == 4 and two.history[-1]["loss"] < two.history[0]["loss"]
    one_auroc, two_auroc = _held_out_auroc(one, larger), _held_out_auroc(two, larger)
    assert one_auroc > 0.75, "the reference must have learnt something for the comparison to mean anything"
    assert two_auroc >= one_auroc - DATA_PARALLEL_TOLERANCE, (one_auroc, two_auroc)


def test_a_model_does_not_depend_on_how_prep_was_sharded(labelled, prepared, tmp_path):
    """Same seed, prep in 1 or 3 shards: the same windows in the same order, so the very same weights (and so the
    same test AUROC, the acceptance's tolerance being zero here)."""
    from auscult.stages.prep import prep
    from auscult.stages.split import split

    sharded = prep(split(labelled), tmp_path, count=3, progress=lambda _: None)
    first = train(prepared, TrainConfig(epochs=1, seed=3), progress=lambda _: None)
    second = train(sharded, TrainConfig(epochs=1, seed=3), progress=lambda _: None)
    for a, b in zip(first.model.state_dict().values(), second.model.state_dict().values(), strict=True):
        assert torch.equal(a, b)
    assert _held_out_auroc(first, prepared, ("test",)) == _held_out_auroc(second, sharded, ("test",))


@pytest.mark.parametrize("workers", [0, 33])
def test_workers_must_each_get_rows_of_every_batch(prepared, workers):
    with pytest.raises(InputError, match="workers must be from 1 to the batch size, 32"):
        train(prepared, TrainConfig(epochs=1), progress=lambda _: None, workers=workers)
