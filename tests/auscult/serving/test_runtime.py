"""The request contract, in process: what is accepted and what is refused, with which message."""

import base64

import numpy as np
import pytest

from auscult import audio
from auscult.serving.runtime import MAX_FILE_CHARS, BadRequest, parse

WAVE = (0.2 * np.sin(np.arange(16000) / 3.0)).astype(np.float32)


def test_waveform_and_file_requests_parse_to_the_same_audio():
    from_array, _ = parse({"data": {"ndarray": WAVE.tolist()}})
    from_file, tags = parse(
        {"binData": base64.b64encode(audio.encode_wav(WAVE)).decode(), "meta": {"tags": {"device": "x"}}}
    )
    assert from_array.shape == from_file.shape
    assert np.abs(from_array - from_file).max() < 1e-3
    assert tags == {"device": "x"}


@pytest.mark.parametrize(
    "message, words",
    [
        ([1, 2, 3], "JSON object"),
        ({}, "no audio"),
        ({"data": {"ndarray": []}}, "non-empty"),
        ({"data": {"ndarray": ["a", "b"]}}, "numbers only"),
        ({"data": {"ndarray": [[0.1, 0.2], [0.3, 0.4]]}}, "one waveform"),
        ({"data": {"ndarray": [float("nan")] * 4000}}, "NaN"),
        ({"data": {"ndarray": [0.1] * 100}}, "shorter than 0.1 s"),
        ({"data": {"ndarray": [0.0] * 4000}}, "silent"),
        ({"binData": 5}, "base64 string"),
        ({"binData": "%%%"}, "not valid base64"),
        ({"binData": base64.b64encode(b"not audio at all").decode()}, "not an audio file"),
        ({"binData": ""}, "empty file"),
    ],
)
def test_malformed_requests_are_refused_with_a_reason(message, words):
    with pytest.raises(BadRequest, match=words):
        parse(message)


@pytest.mark.parametrize(
    "tags, words",
    [
        ("participant=1", "must be an object"),
        ({"x": 1}, "unknown tag 'x'"),
        ({"device": {"nested": 1}}, "meta.tags.device"),
        ({"request_id": "x;rm -rf"}, "client_request_id"),
        ({"request_id": "a" * 129}, "client_request_id"),
        ({"participant": "p" * 129}, "meta.tags.participant"),
        ({"participant": '=HYPERLINK("http://x")'}, "meta.tags.participant"),
        ({"sex": "f\nm"}, "meta.tags.sex"),
        ({"device": ""}, "meta.tags.device"),
        ({"age": "inf"}, "age"),
        ({"age": float("nan")}, "age"),
        ({"age": 1e400}, "age"),
        ({"age": -1}, "age"),
        ({"age": True}, "age"),
        ({"age": "1" * 400}, "age"),
    ],
)
def test_tags_are_checked_one_by_one(tags, words):
    with pytest.raises(BadRequest, match=words):
        parse({"data": {"ndarray": WAVE.tolist()}, "meta": {"tags": tags}})


def test_valid_tags_are_kept_and_a_client_request_id_is_renamed():
    _, tags = parse(
        {
            "data": {"ndarray": WAVE.tolist()},
            "meta": {"tags": {"participant": "P-07", "age": "34", "sex": "female", "request_id": "app.42"}},
        }
    )
    assert tags == {"participant": "P-07", "age": 34.0, "sex": "female", "client_request_id": "app.42"}


def test_the_server_names_requests_and_signs_their_ids():
    from auscult.serving.runtime import Forbidden, new_request_id, request_signature, verify_request

    key = b"k"
    request_id = new_request_id()
    assert request_id != new_request_id()
    assert verify_request(key, request_id, request_signature(key, request_id)) == request_id
    with pytest.raises(Forbidden, match="does not match"):
        verify_request(key, request_id, request_signature(b"other", request_id))
    with pytest.raises(Forbidden):
        verify_request(key, request_id, None)
    with pytest.raises(BadRequest, match="request_id"):
        verify_request(key, "../../models/auscult-screening/production/999999", "x")


def test_overlong_audio_is_refused():
    with pytest.raises(BadRequest, match="longer than 60 s"):
        parse({"data": {"ndarray": [0.1] * (61 * 16000)}})


def _tone_file(seconds: float, rate: int = 8000) -> str:
    t = np.arange(int(seconds * rate)) / rate
    wave = (0.3 * np.sin(2 * np.pi * 300 * t) * (1 + np.sin(2 * np.pi * 0.5 * t))).astype(np.float32) / 2
    return base64.b64encode(audio.encode_wav(wave, rate)).decode()


def test_one_duration_limit_for_training_and_serving():
    """A recording curate would keep is served; one it would quarantine as too long is refused."""
    from auscult.stages.curate import QualityRules, judge, measure

    just_under = _tone_file(audio.MAX_DURATION_S - 0.5)
    too_long = _tone_file(audio.MAX_DURATION_S + 0.5)
    wave, _ = parse({"binData": just_under})
    assert len(wave) > 50 * audio.SAMPLE_RATE
    assert judge(measure(base64.b64decode(just_under)), QualityRules()) is None
    with pytest.raises(audio.DecodeError, match="too long"):
        measure(base64.b64decode(too_long))
    with pytest.raises(BadRequest, match=f"longer than {audio.MAX_DURATION_S:.0f} s"):
        parse({"binData": too_long})


def test_a_body_larger_than_the_longest_recording_is_refused_before_decoding():
    with pytest.raises(BadRequest, match="characters this server accepts"):
        parse({"binData": "A" * (MAX_FILE_CHARS + 4)})
