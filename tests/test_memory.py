"""loomis.train.memory: keeping freed memory removes a training step's page faults, nothing else."""
from __future__ import annotations

import json
import platform
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

pytestmark = pytest.mark.skipif(platform.libc_ver()[0] != "glibc",
                                reason="the setting exists only in glibc's malloc")

# One process per setting (it is process-wide): page faults of re-allocating a 40 MB buffer
# (above glibc's largest mmap threshold, so by default every allocation is fresh pages),
# then three pix2pix steps' losses.
PROBE = """
import json, sys, torch
from loomis.train.memory import page_faults, retain_freed_memory
from loomis.train.models import Pix2Pix, Pix2PixConfig
took = retain_freed_memory() if sys.argv[1] == "retain" else None
for _ in range(25):  # the heap settles within about ten rounds
    torch.empty(10 << 20).fill_(1.0)
rounds = []
for _ in range(9):
    before = page_faults()
    torch.empty(10 << 20).fill_(1.0)
    rounds.append(page_faults() - before)
faults = sorted(rounds)[4]  # the median round
torch.manual_seed(0)
model = Pix2Pix(Pix2PixConfig(arch="unet_64", image_size=64, ngf=8, ndf=8), device="cpu")
gen = torch.Generator().manual_seed(1)
a, b = (torch.rand(1, 3, 64, 64, generator=gen) * 2 - 1 for _ in range(2))
losses = [model.step(a, b) for _ in range(3)]
print(json.dumps({"took": took, "faults": faults, "losses": losses}))
"""


def _probe(mode: str) -> dict:
    res = subprocess.run([sys.executable, "-c", PROBE, mode], capture_output=True, text=True,
                         cwd=ROOT, timeout=120, env={"PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1",
                                                     "PATH": "/usr/bin:/bin"})
    assert res.returncode == 0, res.stderr[-2000:]
    return json.loads(res.stdout.strip().splitlines()[-1])


def test_retained_memory_removes_page_faults_and_keeps_the_losses():
    plain, kept = _probe("default"), _probe("retain")
    assert kept["took"] is True
    pages = (40 << 20) // 4096
    assert plain["faults"] > pages / 2      # fresh pages on every allocation
    assert kept["faults"] < pages / 50      # the same pages, kept
    assert kept["losses"] == plain["losses"]  # bit for bit: the allocator is not the maths


def test_going_back_to_glibc_thresholds_gives_memory_back():
    from loomis.train.memory import retain_freed_memory

    # the benchmark's plain step: glibc's own steady-state thresholds, free memory trimmed
    assert retain_freed_memory(False) is True
