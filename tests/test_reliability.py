"""The app against bad input and many visitors at once, as a live server on localhost
(benchmarks/reliability.py, shortened): every bad file to every endpoint gets a drawing or
a message naming the fault, the server lives through all of it, and a crowd gets answers."""
from __future__ import annotations

import json

import pytest

pytestmark = pytest.mark.slow


def test_bad_input_to_every_endpoint_and_a_crowd(tmp_path):
    from benchmarks import reliability
    result = reliability.main(["--clients", "12", "--seconds", "20", "--work", str(tmp_path / "in"),
                               "--json", str(tmp_path / "result.json")])
    assert json.loads((tmp_path / "result.json").read_text()) == json.loads(json.dumps(result))
    bad = result["bad_input"]
    rows = bad["rows"]
    assert not bad["server_died"] and all(r["server_alive"] for r in rows)
    assert len({r["input"] for r in rows}) >= 30
    assert {r["endpoint"] for r in rows} == set(reliability.ENDPOINTS)
    failures = [r for r in rows if r["outcome"] in ("bare error", "client error")]
    assert not failures, failures[:3]
    # the same fault gets the same words on every endpoint that takes a photo
    for name in ("empty.png", "page.html", "white_13000x13000.png"):
        messages = {r["message"].split(": ", 1)[1] for r in rows
                    if r["input"] == name and r["endpoint"] in ("/photo_to_drawing", "/heads")}
        assert len(messages) == 1, messages
    # the decompression bomb is answered quickly everywhere, without decoding it
    bomb = [r for r in rows if r["input"] == "white_13000x13000.png"]
    assert all(r["seconds"] < 3 for r in bomb) and all("too large" in r["message"] for r in bomb)
    # strange but valid pictures are drawn
    for name in ("cmyk.jpg", "sixteen_bit.png", "animated.gif", "transparent.png", "photo.webp"):
        assert all(r["outcome"] == "answered" for r in rows
                   if r["input"] == name and r["endpoint"] == "/photo_to_drawing"), name
    load = result["load"]
    assert load["server_alive"] and load["errors"] == 0, load["error_samples"]
    assert load["answers"] > 0 and load["peak_mb"] < 8000
