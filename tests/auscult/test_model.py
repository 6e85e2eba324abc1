import numpy as np
import onnxruntime as ort
import pytest
import torch
import torchaudio

from auscult.model import LogMel, ModelConfig, ScreeningNet, export_onnx, load, save


def torchaudio_log_mel(config: ModelConfig, waveform: torch.Tensor) -> torch.Tensor:
    mel = torchaudio.transforms.MelSpectrogram(
        sample_rate=16_000,
        n_fft=config.n_fft,
        win_length=config.win_length,
        hop_length=config.hop_length,
        f_min=50.0,
        f_max=8_000.0,
        n_mels=config.n_mels,
        power=2.0,
    )
    return torchaudio.transforms.AmplitudeToDB(stype="power", top_db=None)(mel(waveform) + 1e-5).unsqueeze(1)


# Lengths on both sides of a hop boundary, where a framing mistake would add or drop a frame.
@pytest.mark.parametrize("length", [2048, 2100, 32_000, 32_199, 32_200, 80_000])
def test_log_mel_equals_torchaudio(length):
    config = ModelConfig()
    waveform = 0.1 * torch.randn(3, length, generator=torch.Generator().manual_seed(length))
    ours = LogMel(config)(waveform)
    theirs = torchaudio_log_mel(config, waveform)
    assert ours.shape == theirs.shape
    assert torch.max(torch.abs(ours - theirs)).item() < 1e-3  # decibels


def test_front_end_constants_stay_out_of_checkpoints_and_old_ones_still_load(tmp_path):
    model = ScreeningNet().eval()
    assert not any(key.startswith("front_end.") for key in model.state_dict())
    save(model, tmp_path / "new.pt")
    saved = torch.load(tmp_path / "new.pt", weights_only=True)
    saved["state"]["front_end.mel.spectrogram.window"] = torch.hann_window(400)  # as torchaudio's layer saved it
    torch.save(saved, tmp_path / "old.pt")
    waveform = 0.1 * torch.randn(2, 16_000)
    with torch.inference_mode():
        assert torch.equal(load(tmp_path / "old.pt")(waveform), model(waveform))


def test_onnx_export_matches_torch_for_any_batch_and_length(tmp_path):
    torch.manual_seed(0)
    model = ScreeningNet().eval()
    export_onnx(model, tmp_path / "model.onnx")
    session = ort.InferenceSession(str(tmp_path / "model.onnx"), providers=["CPUExecutionProvider"])
    for batch, length in [(1, 2048), (3, 32_000), (2, 47_123)]:
        waveform = 0.1 * torch.randn(batch, length)
        with torch.inference_mode():
            expected = model(waveform).numpy()
        (got,) = session.run(["probabilities"], {"waveform": waveform.numpy()})
        assert got.shape == (batch, 2)
        np.testing.assert_allclose(got, expected, atol=1e-5)
