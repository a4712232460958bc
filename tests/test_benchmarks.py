"""The speed benchmark runs end to end in its quick mode (no timing is asserted here)."""
import json
import subprocess
import sys
from pathlib import Path

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
    assert "| measurement |" in proc.stdout
