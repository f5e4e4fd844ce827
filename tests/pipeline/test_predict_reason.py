"""`graft predict` names why each unreadable file was refused (TensorFlow's first line, "Graph execution error:",
said nothing)."""

from __future__ import annotations

from data_helpers import image_bytes, truncated_jpeg

from graft.pipeline.predict import unreadable_reason

TF_MESSAGE = (
    "Graph execution error:\n\nDetected at node DecodeImage defined at (most recent call last):\n"
    '  File "x.py", line 1\n\nUnknown image file format. One of JPEG, PNG, GIF, BMP required.\n'
    "\t [[{{node DecodeImage}}]] [Op:__inference_signature_wrapper_123]"
)


def test_the_reason_is_the_one_a_run_would_record():
    assert unreadable_reason(b"just some text\n", TF_MESSAGE) == "not an image (unrecognised file content)"
    assert unreadable_reason(b"", TF_MESSAGE) == "empty file (0 bytes)"
    assert "JPEG" in unreadable_reason(truncated_jpeg(), TF_MESSAGE)


def test_otherwise_the_decoders_own_words_without_the_framing():
    readable = image_bytes()  # passes every check: the reason can only come from the decoder
    assert (
        unreadable_reason(readable, TF_MESSAGE)
        == "Unknown image file format. One of JPEG, PNG, GIF, BMP required."
    )
    assert unreadable_reason(readable, "Graph execution error:") == "Graph execution error:"
