import numpy as np

from auscult.serving.smoke import open_inference_request, probabilities_from, tone


def test_open_inference_request_matches_the_exported_model():
    request = open_inference_request(tone())
    (tensor,) = request["inputs"]
    assert tensor["name"] == "waveform" and tensor["datatype"] == "FP32"
    assert tensor["shape"] == [1, 32000] and len(tensor["data"]) == 32000


def test_probabilities_are_read_from_both_protocols():
    seldon = {"data": {"names": ["negative", "positive"], "ndarray": [[0.25, 0.75]]}}
    v2 = {"outputs": [{"name": "probabilities", "shape": [1, 2], "datatype": "FP32", "data": [0.25, 0.75]}]}
    assert probabilities_from(seldon, "seldon") == probabilities_from(v2, "v2") == [0.25, 0.75]
    assert np.isclose(sum(probabilities_from(v2, "v2")), 1)
