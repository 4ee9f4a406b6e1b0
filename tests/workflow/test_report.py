"""Workflow test of the report: a tiny real run, then `snakemake --report` as .zip and as .html (offline where the
machine allows it); every figure and table is in the report, and every figure PNG is a real picture."""

from __future__ import annotations

import io
import re
import shutil
import subprocess
import zipfile

import numpy as np
import pytest
import yaml
from PIL import Image

from irnet_core.report import select_images

from .harness import SNAKEMAKE, planned_jobs

pytestmark = pytest.mark.workflow

FIGURE_KINDS = ("cam", "relations", "irnet", "pseudo_labels")
TABLES = ("cam.html", "semantic.html", "instances.html", "per_class.html", "benchmarks.html")
CURVES = ("train_cam.png", "train_irnet.png", "calibration.png")


def _offline_prefix() -> list[str]:
    """`unshare -n` (a new network namespace without interfaces) where it is allowed, else nothing."""
    unshare = shutil.which("unshare")
    if unshare and subprocess.run([unshare, "-n", "true"], capture_output=True).returncode == 0:
        return [unshare, "-n"]
    return []


@pytest.fixture(scope="module")
def tiny_report(tiny_run, tmp_path_factory):
    workdir = tmp_path_factory.mktemp("report") / "run"
    shutil.copytree(tiny_run, workdir, symlinks=True)
    for target in ("report.zip", "report.html"):
        command = [*_offline_prefix(), *SNAKEMAKE, "--configfile", "tiny.yaml", "--cores", "1", "--report", target]
        result = subprocess.run(command, cwd=workdir, capture_output=True, text=True, timeout=300)
        assert result.returncode == 0, result.stderr[-3000:]
    return workdir


def _expected_ids(workdir) -> list[str]:
    config = yaml.safe_load((workdir / "tiny.yaml").read_text())
    lists = workdir / config["dataset"]["root"] / "ImageSets" / "Segmentation"
    eval_ids = (lists / "train.txt").read_text().split()
    train_ids = (lists / "train_aug.txt").read_text().split()
    return select_images(eval_ids, train_ids, config["report"]["images"])


def test_report_zip_holds_every_figure_and_table(tiny_report):
    ids = _expected_ids(tiny_report)
    assert len(ids) == 2
    with zipfile.ZipFile(tiny_report / "report.zip") as archive:
        members = {name.rsplit("/", 1)[-1]: name for name in archive.namelist()}
        expected = [f"{i}_{kind}.png" for i in ids for kind in FIGURE_KINDS] + list(CURVES) + list(TABLES)
        assert not [name for name in expected if name not in members], sorted(members)
        assert {"cam.json", "semantic.json", "instances.json", "calibration.json", "report.html"} <= set(members)
        for name in [*(n for n in expected if n.endswith(".png"))]:
            with Image.open(io.BytesIO(archive.read(members[name]))) as image:
                pixels = np.asarray(image.convert("RGB"), dtype=np.float64)
            assert pixels.shape[1] >= 400 and pixels.shape[0] >= 150, (name, pixels.shape)
            assert pixels.std() > 20.0, name  # not blank
        benchmarks = archive.read(members["benchmarks.html"]).decode()
    for rule_job in ["train_cam", "shard-0", "shard-1", "report_curves", *ids]:
        assert f"<td>{rule_job}</td>" in benchmarks, rule_job
    assert "<td>report_tables</td>" not in benchmarks  # a job cannot time itself


def test_report_html_embeds_every_result_and_loads_nothing_from_outside(tiny_report):
    page = (tiny_report / "report.html").read_text()
    for image_id in _expected_ids(tiny_report):
        for kind in FIGURE_KINDS:
            assert f"results/report/figures/{image_id}_{kind}.png" in page
    for name in ("results/report/curves/train_cam.png", "results/report/tables/benchmarks.html"):
        assert name in page
    categories = re.search(r"var categories = (\{.*?\});", page)
    assert categories is not None
    for category in ("CAM", "Relations", "IRNet", "Pseudo-labels", "Training", "Evaluation", "Benchmarks"):
        assert f'"{category}"' in categories.group(1)
    # Embedded results are data: URIs; scripts and styles are inline.
    assert not re.search(r"<(script|link|img)[^>]+(src|href)=\"https?:", page)


def test_report_reruns_nothing_and_a_larger_sample_adds_one_figure_job(tiny_report):
    assert planned_jobs(tiny_report) == {}
    assert planned_jobs(tiny_report, "--config", "report={images: 3}") == {
        "report_figures": 1,
        "report_tables": 1,
        "all": 1,
    }
