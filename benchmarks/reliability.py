"""Does the app hold up against bad input and many visitors? Against a live server.

    python -m benchmarks.reliability [--json FILE] [--clients 50] [--seconds 180]

``python app.py`` runs in a process of its own, as on a Space. Two parts:

* **Bad input**: every kind of file in :func:`bad_inputs` (broken, disguised, huge,
  strange but valid) sent to every endpoint that takes a picture. Each answer is a
  drawing or photo, or a message naming the fault; a bare "error" with no message counts
  as a failure, and so does a server that stops answering. Each call's time and the
  server's memory are recorded.
* **Load**: ``--clients`` visitors at once for ``--seconds``, each sending mixed requests
  (drawings, heads, steps, sketches) back to back. Reported: answers, errors other than
  "busy", p50 / p95 latency, and the server's peak memory.

Memory is the server's peak resident size (``VmHWM`` in ``/proc``), so it is Linux only.
"""
from __future__ import annotations

import argparse
import io
import json
import random
import statistics
import struct
import threading
import time
import zlib
from pathlib import Path

import numpy as np
from PIL import Image

from benchmarks.run import served_app

ROOT = Path(__file__).resolve().parent.parent
#: The endpoints that take a picture, and how each is called with one.
ENDPOINTS = ("/photo_to_drawing", "/heads", "/steps", "/svg", "/sketch_to_photo",
             "/canvas_to_photo")
#: What an answer without a message looks like from gradio_client.
BARE_ERROR = "has not enabled verbose error reporting"


def _png_bytes(img: Image.Image) -> bytes:
    buf = io.BytesIO()
    img.save(buf, format="PNG")
    return buf.getvalue()


def _png_claiming(width: int, height: int) -> bytes:
    """A PNG whose header claims ``width``×``height`` pixels, with one tiny data chunk."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return (struct.pack(">I", len(data)) + kind + data
                + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF))
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr)
            + chunk(b"IDAT", zlib.compress(b"\x00" * 64)) + chunk(b"IEND", b""))


def _white_png(width: int, height: int) -> bytes:
    """A real, valid all-white PNG of that size, written row by row (a few hundred KB
    even at 13000² pixels: the classic decompression bomb)."""
    row = zlib.compressobj(9)
    raw = b"\x00" + b"\xff" * (width * 3)
    data = b"".join(row.compress(raw) for _ in range(height)) + row.flush()

    def chunk(kind: bytes, payload: bytes) -> bytes:
        return (struct.pack(">I", len(payload)) + kind + payload
                + struct.pack(">I", zlib.crc32(kind + payload) & 0xFFFFFFFF))
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 2,
                                                               0, 0, 0))
            + chunk(b"IDAT", data) + chunk(b"IEND", b""))


def bad_inputs(folder: Path) -> dict[str, Path]:
    """At least 30 kinds of file a visitor might send, written into ``folder``."""
    folder.mkdir(parents=True, exist_ok=True)
    photo = Image.open(ROOT / "examples" / "photo_1.png").convert("RGB")
    png = _png_bytes(photo)
    buf = io.BytesIO()
    photo.save(buf, format="JPEG", quality=85)
    jpeg = buf.getvalue()
    rng = random.Random(0)
    kinds: dict[str, bytes] = {
        "empty.png": b"",
        "truncated.png": png[: len(png) // 3],
        "truncated.jpg": jpeg[: len(jpeg) // 3],
        "only_signature.png": png[:8],
        "jpeg_start_only.jpg": b"\xff\xd8\xff",
        "bad_crc.png": png[:30] + bytes([png[30] ^ 0xFF]) + png[31:],
        "text.png": b"just some notes, not a picture\n" * 20,
        "page.html": b"<!doctype html><html><body><img src=x onerror=alert(1)></body></html>",
        "drawing.svg": b'<svg xmlns="http://www.w3.org/2000/svg" width="99999" height="99999">'
                       b'<circle r="50"/></svg>',
        "document.pdf": b"%PDF-1.4\n1 0 obj<<>>endobj\ntrailer<<>>\n%%EOF\n",
        "array.npy": b"\x93NUMPY\x01\x00v\x00{'descr': '<f8', 'fortran_order': False, "
                     b"'shape': (10,), }" + b" " * 60 + b"\n" + b"\x00" * 80,
        "archive.zip": b"PK\x03\x04" + b"\x00" * 60,
        "program.exe": b"MZ" + bytes(rng.getrandbits(8) for _ in range(500)),
        "video.mp4": b"\x00\x00\x00\x18ftypmp42" + b"\x00" * 200,
        "photo.heic": b"\x00\x00\x00\x18ftypheic" + b"\x00" * 200,
        "noise.png": bytes(rng.getrandbits(8) for _ in range(4096)),
        "data.json": json.dumps({"image": "photo.png"}).encode(),
        "claims_100000x100000.png": _png_claiming(100_000, 100_000),
        "claims_0x0.png": _png_claiming(0, 0),
        "white_13000x13000.png": _white_png(13_000, 13_000),
        "dot_1x1.png": _png_bytes(Image.new("RGB", (1, 1), "white")),
        "strip_20000x100.png": _png_bytes(Image.new("RGB", (20_000, 100), "white")),
        "strip_1x4000.png": _png_bytes(Image.new("RGB", (1, 4000), "white")),
        "blank_white.png": _png_bytes(Image.new("RGB", (512, 512), "white")),
        "sky_no_face.png": _png_bytes(Image.new("RGB", (400, 300), (90, 140, 200))),
        # strange but valid: each should be drawn
        "photo_as.jpg": png,                               # a PNG named .jpg
        "grey.png": _png_bytes(photo.convert("L")),
        "palette.png": _png_bytes(photo.convert("P")),
        "transparent.png": _png_bytes(photo.convert("RGBA")),
        "sixteen_bit.png": _png_bytes(Image.fromarray(
            np.asarray(photo.convert("L"), np.uint16) * 257)),
    }
    out = {}
    for name, data in kinds.items():
        (folder / name).write_bytes(data)
        out[name] = folder / name
    for name, fmt, img in (("cmyk.jpg", "JPEG", photo.convert("CMYK")),
                           ("photo.webp", "WEBP", photo), ("photo.bmp", "BMP", photo),
                           ("photo.tiff", "TIFF", photo)):
        img.save(folder / name, format=fmt)
        out[name] = folder / name
    frames = [photo, photo.transpose(Image.Transpose.FLIP_LEFT_RIGHT)]
    frames[0].save(folder / "animated.gif", save_all=True, append_images=frames[1:], loop=0)
    out["animated.gif"] = folder / "animated.gif"
    big = photo.resize((12_000, 9_000), Image.NEAREST)
    big.save(folder / "phone_12000x9000.jpg", quality=70)
    out["phone_12000x9000.jpg"] = folder / "phone_12000x9000.jpg"
    return out


def _memory(pid: int) -> tuple[float, float]:
    """The process's resident and peak resident memory, MB."""
    fields = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, value = line.partition(":")
        if key in ("VmRSS", "VmHWM"):
            fields[key] = int(value.split()[0]) / 1024
    return fields["VmRSS"], fields["VmHWM"]


def call(client, endpoint: str, path: Path | None):
    """One request of ``endpoint`` with the file at ``path`` (None: no picture)."""
    from gradio_client import handle_file

    f = handle_file(str(path)) if path is not None else None
    if endpoint == "/canvas_to_photo":    # the drawing canvas: the picture as its background
        value = {"background": f, "layers": [], "composite": f, "id": None}
        return client.predict(value, "pix2pix", api_name=endpoint)
    return client.predict(f, api_name=endpoint)


def bad_input_matrix(client, server, files: dict[str, Path]) -> dict:
    """Every file to every endpoint: the outcome, message and time of each."""
    from gradio_client.exceptions import AppError

    rows, baseline = [], _memory(server.pid)[0]
    for name, path in files.items():
        for endpoint in ENDPOINTS:
            t = time.monotonic()
            try:
                call(client, endpoint, path)
                outcome, message = "answered", ""
            except AppError as exc:
                message = str(exc)
                outcome = "bare error" if BARE_ERROR in message else "message"
            except Exception as exc:             # the client itself gave up
                outcome, message = "client error", f"{type(exc).__name__}: {exc}"
            alive = server.poll() is None
            rows.append({"input": name, "endpoint": endpoint, "outcome": outcome,
                         "message": message[:300], "seconds": round(time.monotonic() - t, 3),
                         "server_alive": alive, "peak_mb": round(_memory(server.pid)[1], 1)
                         if alive else None})
            if not alive:
                return {"rows": rows, "baseline_mb": baseline, "server_died": True}
    return {"rows": rows, "baseline_mb": round(baseline, 1), "server_died": False}


def load_run(client_url: str, server, clients: int, seconds: float) -> dict:
    """``clients`` visitors at once, each sending mixed requests for ``seconds``."""
    from gradio_client import Client

    examples = ROOT / "examples"
    work = [("/photo_to_drawing", examples / "photo_1.png"),
            ("/heads", examples / "photo_2.png"), ("/steps", examples / "photo_3.png"),
            ("/sketch_to_photo", examples / "sketch_1.png"),
            ("/canvas_to_photo", examples / "sketch_2.png")]
    latencies, errors, busy, lock = [], [], [0], threading.Lock()
    begin = time.monotonic()
    stop = begin + seconds
    peak = [0.0]

    def visitor(k: int) -> None:
        client = Client(client_url, verbose=False)
        i = k
        while time.monotonic() < stop:
            endpoint, path = work[i % len(work)]
            i += 1
            t = time.monotonic()
            try:
                call(client, endpoint, path)
                with lock:
                    latencies.append(time.monotonic() - t)
            except Exception as exc:        # AppError (a message) or a failed transfer
                with lock:
                    text = str(exc).lower()
                    if "queue is full" in text or "busy" in text:
                        busy[0] += 1
                    else:
                        errors.append(f"{time.monotonic() - begin:.0f} s, {endpoint}: "
                                      f"{type(exc).__name__}: {exc}"[:200])

    def watch() -> None:
        while time.monotonic() < stop + 5 and server.poll() is None:
            peak[0] = max(peak[0], _memory(server.pid)[1])
            time.sleep(0.2)

    threads = [threading.Thread(target=visitor, args=(k,)) for k in range(clients)]
    watcher = threading.Thread(target=watch)
    watcher.start()
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    watcher.join()
    lat = sorted(latencies)
    q = (lambda f: round(lat[min(len(lat) - 1, int(f * len(lat)))], 2)) if lat else (lambda f: None)
    return {"clients": clients, "seconds": seconds, "answers": len(lat), "errors": len(errors),
            "error_samples": errors[:5], "busy": busy[0], "p50_s": q(0.5), "p95_s": q(0.95),
            "mean_s": round(statistics.mean(lat), 2) if lat else None,
            "peak_mb": round(peak[0], 1), "server_alive": server.poll() is None}


def summary(result: dict) -> str:
    rows = result["bad_input"]["rows"]
    kinds = sorted({r["input"] for r in rows})
    by = {o: sum(r["outcome"] == o for r in rows) for o in ("answered", "message", "bare error",
                                                            "client error")}
    slowest = max(rows, key=lambda r: r["seconds"])
    lines = [f"bad input: {len(kinds)} kinds × {len(ENDPOINTS)} endpoints = {len(rows)} calls; "
             + ", ".join(f"{k} {v}" for k, v in by.items())
             + f"; server alive: {not result['bad_input']['server_died']}; slowest "
             f"{slowest['seconds']} s ({slowest['input']} → {slowest['endpoint']}); peak "
             f"{max(r['peak_mb'] or 0 for r in rows)} MB from {result['bad_input']['baseline_mb']} MB"]
    for r in rows:
        if r["outcome"] in ("bare error", "client error"):
            lines.append(f"  FAIL {r['input']} → {r['endpoint']}: {r['message'][:120]}")
    if "load" in result:
        ld = result["load"]
        lines.append(f"load: {ld['clients']} clients × {ld['seconds']} s: {ld['answers']} answers, "
                     f"{ld['errors']} errors, {ld['busy']} busy; p50 {ld['p50_s']} s, p95 "
                     f"{ld['p95_s']} s; peak {ld['peak_mb']} MB")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--json", type=Path, help="write the results here")
    ap.add_argument("--clients", type=int, default=50)
    ap.add_argument("--seconds", type=float, default=180.0)
    ap.add_argument("--kinds", type=int, default=0, help="only the first N kinds (0: all)")
    ap.add_argument("--work", type=Path, default=Path("/tmp/loomis-reliability"))
    ap.add_argument("--log", type=Path, help="keep what the server prints here")
    args = ap.parse_args(argv)
    files = bad_inputs(args.work)
    if args.kinds:
        files = dict(list(files.items())[: args.kinds])
    result: dict = {}
    with served_app(log=args.log) as (client, _, server):
        result["bad_input"] = bad_input_matrix(client, server, files)
        if args.clients and not result["bad_input"]["server_died"]:
            result["load"] = load_run(client.src, server, args.clients, args.seconds)
    print(summary(result))
    if args.json:
        args.json.write_text(json.dumps(result, indent=1) + "\n")
    return result


if __name__ == "__main__":
    main()
