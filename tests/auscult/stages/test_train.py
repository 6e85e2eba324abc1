import numpy as np
import pytest
import torch

from auscult import model as screening_model
from auscult.errors import InputError
from auscult.stages.train import TrainConfig, predict, train


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
    one_class = type(prepared)(prepared.table, prepared.windows, prepared.index.assign(label=0))
    with pytest.raises(InputError, match="both classes"):
        train(one_class, TrainConfig(epochs=1), progress=lambda _: None)


def test_checkpoint_round_trip(trained, tmp_path):
    screening_model.save(trained.model, tmp_path / "m.pt")
    loaded = screening_model.load(tmp_path / "m.pt")
    wave = torch.randn(2, 32000) * 0.1
    with torch.inference_mode():
        assert torch.allclose(loaded(wave), trained.model.eval()(wave))
