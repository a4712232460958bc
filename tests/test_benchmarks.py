"""The benchmarks run end to end in their quick modes (no timing is asserted here), and every
script starts the way the README runs it."""
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

pytestmark = pytest.mark.slow      # python -m pytest -m slow (.ci/run runs both)

ROOT = Path(__file__).resolve().parents[1]


def test_quick_benchmark_runs_every_section(tmp_path):
    out = tmp_path / "bench.json"
    proc = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "run.py"), "--quick",
                           "--json", str(out)], cwd=ROOT, capture_output=True, text=True,
                          timeout=600)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    report = json.loads(out.read_text())
    assert report["failed"] == []
    sections = {row["section"] for row in report["rows"]}
    assert sections == {"matmul", "generators", "training", "engine", "render", "app"}
    by_what = {row["what"]: row for row in report["rows"]}
    assert any("onnxruntime" in w for w in by_what), "the fast runtime was not measured"
    assert any("fused Adam" in w for w in by_what)
    assert all(row["ms"] > 0 for row in report["rows"] if "ms" in row)
    assert any(row.get("gbps", 0) > 0 for row in report["rows"]), "no memory bandwidth"
    # the limit is the fastest matmul among the libraries the project computes with
    matmuls = {row["what"]: row["gflops"] for row in report["rows"]
               if row["section"] == "matmul" and "gflops" in row}
    assert {w.rsplit("(", 1)[1] for w in matmuls} == {"numpy)", "torch)", "onnxruntime)"}
    assert report["matmul_limit_gflops"] == pytest.approx(max(matmuls.values()))
    generators = [row for row in report["rows"] if row["section"] == "generators"]
    one_pass = [row for row in generators if not row["what"].endswith("mirror pass")]
    assert one_pass and all(row["roofline_ms"] > 0 and row["of_roofline"] > 0
                            for row in one_pass)
    # the app's photo → drawing path (image + mirror) is timed for each shipped drawing maker
    assert sum(row["what"].endswith("+ mirror pass") for row in generators) == 2
    training = [row for row in report["rows"] if row["section"] == "training"]
    assert training and all(row["gflops"] > 0 and row["of_limit"] > 0 for row in training)
    # pix2pix: plain, fast without and with the memory setting, each in its own process
    steps = [row for row in training if row["what"].startswith("pix2pix step")]
    assert len(steps) == 3 and all(row["page_faults"] >= 0 for row in steps)
    assert "| measurement |" in proc.stdout


@pytest.fixture
def bench(monkeypatch):
    """benchmarks/run.py as a module."""
    from benchmarks import run

    return run


def test_several_runs_report_medians_and_the_range_of_each_speed_up(bench):
    runs = [[{"section": "generators", "what": "net eager", "ms": ms},
             {"section": "generators", "what": "net fast", "ms": fast, "speedup": ms / fast}]
            for ms, fast in ((100.0, 50.0), (90.0, 60.0), (120.0, 40.0))]
    rows = {r["what"]: r for r in bench.median_rows(runs)}
    assert rows["net eager"]["ms"] == 100.0 and rows["net eager"]["runs"] == 3
    assert rows["net fast"]["speedup"] == 2.0                      # median of 2.0, 1.5, 3.0
    assert rows["net fast"]["speedup_range"] == (1.5, 3.0)
    assert rows["net fast"]["speedup_runs"] == [2.0, 1.5, 3.0]                 # in run order
    table = bench.markdown(list(rows.values()))
    assert "2.00× (1.50–3.00)" in table


def test_roofline_counts_each_layer_at_its_slower_limit(bench):
    # 2 GFLOP at 100 GFLOP/s is 20 ms; 100 MB at 10 GB/s is 10 ms: each layer takes its slower
    layers = [(2_000_000_000, 1_000_000), (1_000_000, 100_000_000)]
    assert bench.roofline_seconds(layers, gflops=100, gbps=10) == pytest.approx(0.020 + 0.010)
    # a 3×3 convolution 8 → 16 channels on 10×10 (unpadded, so 8×8 out)
    conv = torch.nn.Conv2d(8, 16, 3)
    [(flops, nbytes)] = bench.conv_layers(torch.nn.Sequential(conv), torch.zeros(1, 8, 10, 10))
    assert flops == 2 * 16 * 8 * 8 * 8 * 9
    assert nbytes == 4 * (8 * 10 * 10 + 16 * 8 * 8 + 16 * 8 * 9 + 16)


def test_step_flops_count_forward_and_both_gradients(bench):
    conv = torch.nn.Conv2d(8, 16, 3)
    x = torch.zeros(1, 8, 10, 10, requires_grad=True)
    forward = 2 * 16 * 8 * 8 * 8 * 9
    # backward computes the input's and the weight's gradients, each as much as the forward
    assert bench.step_flops(lambda: conv(x).sum().backward()) == 3 * forward
    x.requires_grad_(False)
    assert bench.step_flops(lambda: conv(x).sum().backward()) == 2 * forward


def test_layer_benchmark_runs_and_its_fast_layers_equal_the_plain_ones(tmp_path, monkeypatch):
    pytest.importorskip("onnxruntime")
    from benchmarks import layer_speed

    out = tmp_path / "layers.json"
    assert layer_speed.main(["--repeats", "1", "--threads", "1", "--json", str(out)]) == 0
    report = json.loads(out.read_text())
    assert len(report["winograd"]) == len(layer_speed.WINOGRAD_CASES)
    assert len(report["upsampling"]) == len(layer_speed.UPSAMPLING_CASES)
    assert all(r["max_diff"] < 2e-4 for r in report["winograd"])      # outputs of order 1
    assert all(r["max_diff"] < 1e-4 for r in report["upsampling"])
    assert len(report["phase"]) == len(layer_speed.UPSAMPLING_CASES)
    assert all(r["max_diff"] < 1e-4 for r in report["phase"])
    assert len(report["taps"]) == len(layer_speed.TAP_CASES)
    assert all(r["max_diff"] < 1e-4 for r in report["taps"])


@pytest.mark.parametrize("command", [["-m", f"benchmarks.{p.stem}"]
                                     for p in sorted((ROOT / "benchmarks").glob("[!_]*.py"))]
                         + [[f"train/{p.name}"] for p in sorted((ROOT / "train").glob("[!_]*.py"))],
                         ids=lambda command: command[-1])
def test_every_script_starts_from_a_clone_as_the_docs_run_it(command):
    # from the repository root without PYTHONPATH: benchmarks as `python -m benchmarks.NAME`,
    # the training commands as `python train/NAME.py`
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    proc = subprocess.run([sys.executable, *command, "--help"], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "usage:" in proc.stdout


def test_a_share_of_the_limit_uses_the_limit_timed_among_its_contenders(bench, monkeypatch):
    # the matmul section ran at 200 GFLOP/s; the row's own contenders saw the matmul at 100
    monkeypatch.setattr(bench, "SECTIONS", {
        "matmul": lambda quick: [{"what": "matmul", "gflops": 200.0}],
        "generators": lambda quick: [{"what": "net", "ms": 10.0, "gflops": 50.0,
                                      "limit_gflops": 100.0},
                                     {"what": "net, no own limit", "ms": 10.0, "gflops": 50.0}]})
    rows, failed, limit = bench.run_sections(["matmul", "generators"], quick=True)
    by_what = {r["what"]: r for r in rows}
    assert failed == [] and limit == 200.0
    assert by_what["net"]["of_limit"] == 50.0
    assert by_what["net, no own limit"]["of_limit"] == 25.0


def test_quality_benchmark_judges_a_folder_of_real_photos(tmp_path):
    """benchmarks/quality.py's real-photo section end to end on a tiny folder: three faces
    (the portraits the installed packages ship, one mirrored) and a photo without one, every
    photo judged (--real-all), a new generator of each direction given by --generator."""
    from PIL import Image, ImageOps
    from loomis.sample_data import grace_hopper

    skimage_data = pytest.importorskip("skimage.data")
    hopper = grace_hopper()
    drawer = ROOT / "checkpoints" / "cyclegan-photo2drawing"
    maker = ROOT / "checkpoints" / "cyclegan-drawing2photo"
    if hopper is None or not drawer.is_dir() or not maker.is_dir():
        pytest.skip("needs matplotlib's sample portrait and the shipped CycleGAN folders")
    photos = tmp_path / "photos"
    photos.mkdir()
    grace = Image.open(hopper).convert("RGB")
    grace.save(photos / "grace.jpg")
    ImageOps.mirror(grace).resize((256, 300)).save(photos / "grace_mirrored.png")
    Image.fromarray(skimage_data.astronaut()).save(photos / "astronaut.png")
    Image.fromarray(skimage_data.coffee()).save(photos / "coffee.png")       # no face
    out, figure = tmp_path / "real.json", tmp_path / "real.png"
    proc = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / "quality.py"), "--no-synthetic",
         "--real", str(photos), "--real-all", "--checkpoints", str(tmp_path / "none"),
         "--generator", f"new-drawer={drawer}", "--generator", f"new-maker={maker}",
         "--json", str(out), "--real-figure", str(figure), "--markdown", str(tmp_path / "q.md")],
        cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    report = json.loads(out.read_text())
    assert set(report) == {"real"}                            # no synthetic section asked
    real = report["real"]
    assert real["settings"]["photos"] == "all" and real["settings"]["of"] == 4
    assert real["settings"]["n"] == 3
    assert real["skipped"] == [{"photo": "coffee.png", "reason": "no face",
                                "detail": real["skipped"][0]["detail"]}]
    p2d = real["photo_to_drawing"]
    assert set(p2d) == {"Canny 25/75 (baseline)", "new-drawer, fit", "new-drawer, raw"}
    for name, r in p2d.items():
        assert r["n"] == 3 and len(r["per_photo"]) == 3
        for k in ("precision", "recall", "f1"):
            assert 0 <= r[k]["median"] <= 1 and 0 <= r[k]["mean"] <= 1, (name, k)
        assert r["ink_size"]["n"] == 3 and r["ink_size"]["median"] > 0
    fit = p2d["new-drawer, fit"]
    assert fit["group"] == "compared" and fit["heads_as_engine"] == 1.0
    assert fit["size"]["n"] == 3 and 0.3 < fit["size"]["median"] < 3
    assert 0 <= fit["offset"]["median"] < 1
    assert p2d["new-drawer, raw"]["offset"]["n"] == 0        # no construction of its own
    assert p2d["Canny 25/75 (baseline)"]["heads_as_engine"] is None
    d2p = real["drawing_to_photo"]
    assert set(d2p) == {"construction", "construction + features"}
    for kind, rows in d2p.items():
        assert set(rows) == {"new-maker", "mean training photo (baseline)",
                             "the photo itself (reference)"}
        for name, r in rows.items():
            assert r["n"] == 3
            for k in ("face_found", "yaw_read", "yaw_within"):
                assert 0 <= r[k] <= 1, (kind, name, k)
            assert r["yaw_within"] <= r["yaw_read"]
            assert 0 <= r["l1"]["mean"] <= 1 and -1 <= r["ssim"]["mean"] <= 1
        itself = rows["the photo itself (reference)"]
        assert itself["l1"]["mean"] == 0 and itself["ssim"]["mean"] == 1
        assert itself["yaw_within"] == 1.0                   # the engine read the same photo
    assert "head crops" in real["settings"]["mean_photo"]
    assert Image.open(figure).size[0] > 0
    assert proc.stdout.index("## Real photos") < proc.stdout.index("### Drawing → photo")
    page = (tmp_path / "q.md").read_text()
    assert page.startswith("# Quality, measured") and "--real-all" in page
    assert page.index("## Real photos") < page.index("### Drawing → photo")
    # a model card made from this report shows its real-photo rows, beside the baselines
    from loomis.train.model_card import render_model_card

    card = render_model_card(maker, {"real": {**real, "drawing_to_photo": {
        kind: {("cyclegan-drawing2photo" if k == "new-maker" else k): v for k, v in rows.items()}
        for kind, rows in d2p.items()}}})
    evaluation = card[card.index("## Evaluation"):card.index("## Limitations")]
    assert "**Real photos**" in evaluation and "Rendered heads" not in evaluation
    assert "| **cyclegan-drawing2photo** |" in evaluation and "mean training photo" in evaluation
