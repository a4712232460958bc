"""loomis.sample_data: real-face samples that installed packages ship, found by path."""
import sys

from PIL import Image

from loomis import sample_data


def test_the_packages_samples_are_found_without_importing_the_packages():
    already = {name for name in ("gradio", "matplotlib") if name in sys.modules}
    hopper, scan = sample_data.grace_hopper(), sample_data.face_scan()
    assert {name for name in ("gradio", "matplotlib") if name in sys.modules} == already
    with Image.open(hopper) as im:
        assert im.size == (512, 600)
    header = scan.read_text().splitlines()
    assert sum(line.startswith("v ") for line in header) == 845   # vertices with colours
    assert len(next(line for line in header if line.startswith("v ")).split()) == 7


def test_an_absent_package_or_file_gives_none():
    assert sample_data.package_file("no_such_package_here", "x.png") is None
    assert sample_data.package_file("matplotlib", "mpl-data", "no_such_file.jpg") is None
