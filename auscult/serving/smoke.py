"""Smoke-test a running predictor: one 2-s request, which must come back as class probabilities.

    python -m auscult.serving.smoke http://host:8000                       # Seldon Core v1 (auscult model)
    python -m auscult.serving.smoke --protocol v2 --model auscult-screening http://seldon-mesh   # Triton (OIP)

Exit status 0 when the answer is right, 1 with a reason when it is not (what `helm test` reads).
"""

from __future__ import annotations

import argparse
import sys

import numpy as np

from auscult import audio
from auscult.serving import client, contract
from auscult.task import CLASSES


def tone(seconds: float = audio.WINDOW_S) -> np.ndarray:
    t = np.arange(int(seconds * audio.SAMPLE_RATE)) / audio.SAMPLE_RATE
    return (0.2 * np.sin(2 * np.pi * 440 * t)).astype(np.float32)


def open_inference_request(wave: np.ndarray) -> dict:
    """The Open Inference Protocol (v2) request Triton expects for the exported model."""
    return {"inputs": [{"name": "waveform", "shape": [1, len(wave)], "datatype": "FP32", "data": wave.tolist()}]}


def probabilities_from(response: dict, protocol: str) -> list[float]:
    if protocol == "seldon":
        return [float(p) for p in response["data"]["ndarray"][0]]
    (output,) = [o for o in response["outputs"] if o["name"] == "probabilities"]
    return [float(p) for p in output["data"]]


def check(url: str, protocol: str = "seldon", model: str = contract.MODEL_NAME) -> list[float]:
    wave = tone()
    if protocol == "seldon":
        response = client.predict_waveform(url.rstrip("/"), wave)
    else:
        response = client.post(f"{url.rstrip('/')}/v2/models/{model}/infer", open_inference_request(wave))
    probabilities = probabilities_from(response, protocol)
    if len(probabilities) != len(CLASSES) or abs(sum(probabilities) - 1) > 1e-3:
        raise ValueError(f"expected {len(CLASSES)} probabilities summing to 1, got {probabilities}")
    return probabilities


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m auscult.serving.smoke",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("url", help="the predictor's base URL")
    parser.add_argument("--protocol", choices=("seldon", "v2"), default="seldon", help="Seldon v1 or Open Inference")
    parser.add_argument("--model", default=contract.MODEL_NAME, help="model name (v2 only)")
    args = parser.parse_args(argv)
    try:
        probabilities = check(args.url, args.protocol, args.model)
    except (OSError, client.ServingError, ValueError, KeyError) as error:
        print(f"smoke test failed: {error}", file=sys.stderr)
        return 1
    print(f"smoke test passed: {dict(zip(CLASSES, probabilities, strict=True))}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
