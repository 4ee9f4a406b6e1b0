"""Stage D: mining inter-pixel-relation labels from CAMs with a hard-label dense CRF (method doc §2.6).

The result for one image is a uint8 map (H, W):

* ``c + 1``  confident foreground of class ``c`` (0-based): foreground of the CRF-refined map thresholded at
  ``conf_fg``;
* ``0``      confident background: background of *both* CRF-refined maps, including the one thresholded at the
  very low ``conf_bg``;
* ``255``    unsure: everything else.

IRNet later learns affinities only from pairs of pixels whose labels are both not 255.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, fields
from typing import Any

import numpy as np

from .errors import InputError


@dataclass(frozen=True)
class CRFParams:
    """Parameters of the hard-label dense CRF; defaults are those of the official code.

    ``gt_prob`` is the unary probability of the given label (the other labels share ``1 - gt_prob``);
    the Gaussian kernel smooths spatially, the bilateral kernel follows colour edges; ``iterations`` is the
    number of mean-field steps.
    """

    gt_prob: float = 0.7
    gauss_sxy: float = 3.0
    gauss_compat: float = 3.0
    bilateral_sxy: float = 50.0
    bilateral_srgb: float = 5.0
    bilateral_compat: float = 10.0
    iterations: int = 10

    def __post_init__(self) -> None:
        if not 0.0 < float(self.gt_prob) < 1.0:
            raise InputError("crf.gt_prob", f"must lie strictly between 0 and 1, got {self.gt_prob!r}")
        if int(self.iterations) < 0:
            raise InputError("crf.iterations", f"must be >= 0, got {self.iterations!r}")
        for name in ("gauss_sxy", "bilateral_sxy", "bilateral_srgb"):
            if float(getattr(self, name)) <= 0:
                raise InputError(f"crf.{name}", f"must be > 0, got {getattr(self, name)!r}")

    @classmethod
    def from_dict(cls, values: Mapping[str, Any] | None) -> CRFParams:
        """Build from a config mapping; missing keys take the defaults, unknown keys raise InputError."""
        values = dict(values or {})
        known = {f.name: f.type for f in fields(cls)}
        unknown = sorted(set(values) - set(known))
        if unknown:
            raise InputError("crf", f"unknown key(s) {', '.join(unknown)}; allowed: {', '.join(known)}")
        converted: dict[str, Any] = {}
        for name, value in values.items():
            cast = int if name == "iterations" else float
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                raise InputError(f"crf.{name}", f"must be a number, got {value!r}")
            if cast is int and float(value) != int(value):
                raise InputError(f"crf.{name}", f"must be an integer, got {value!r}")
            converted[name] = cast(value)
        return cls(**converted)


def _check_image(image: np.ndarray, where: str) -> np.ndarray:
    if not isinstance(image, np.ndarray) or image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
        shape = getattr(image, "shape", None)
        dtype = getattr(image, "dtype", None)
        raise InputError(where, f"image must be uint8 (H, W, 3), got {dtype} {shape}")
    return image


def crf_refine_labels(
    image: np.ndarray, labels: np.ndarray, n_labels: int, params: CRFParams | None = None
) -> np.ndarray:
    """Refine a hard label map with a fully connected CRF and return the MAP labels, int64 (H, W).

    ``labels`` holds integers in ``0..n_labels-1``; every label (0 included) is an ordinary label, never
    "unsure". The unary gives the present label probability ``gt_prob`` and each of the other ``n_labels - 1``
    labels ``(1 - gt_prob) / (n_labels - 1)``. With ``n_labels == 1`` there is nothing to choose and the labels
    are returned unchanged (the official code would divide by zero there).
    """
    params = params or CRFParams()
    image = _check_image(image, "crf_refine_labels")
    labels = np.asarray(labels)
    if labels.shape != image.shape[:2]:
        raise InputError("crf_refine_labels", f"labels {labels.shape} do not match image {image.shape[:2]}")
    if n_labels < 1:
        raise InputError("crf_refine_labels", f"n_labels must be >= 1, got {n_labels}")
    if labels.size and (labels.min() < 0 or labels.max() >= n_labels):
        raise InputError("crf_refine_labels", f"labels must lie in 0..{n_labels - 1}")
    labels = labels.astype(np.int64)
    if n_labels == 1:
        return labels.copy()

    # Imported here so that importing this module stays cheap and free of the compiled extension.
    import pydensecrf.densecrf as dcrf

    height, width = labels.shape
    flat = labels.reshape(-1)
    unary = np.full((n_labels, flat.size), -np.log((1.0 - params.gt_prob) / (n_labels - 1)), dtype=np.float32)
    unary[flat, np.arange(flat.size)] = -np.log(params.gt_prob)

    crf = dcrf.DenseCRF2D(width, height, n_labels)
    crf.setUnaryEnergy(np.ascontiguousarray(unary))
    crf.addPairwiseGaussian(sxy=params.gauss_sxy, compat=params.gauss_compat)
    crf.addPairwiseBilateral(
        sxy=params.bilateral_sxy,
        srgb=params.bilateral_srgb,
        rgbim=np.ascontiguousarray(image),
        compat=params.bilateral_compat,
    )
    marginals = np.asarray(crf.inference(int(params.iterations)), dtype=np.float32)
    return np.argmax(marginals.reshape(n_labels, height, width), axis=0).astype(np.int64)


def _threshold_argmax(high_res: np.ndarray, threshold: float) -> np.ndarray:
    """Index map of argmax over [threshold; high_res]: 0 = background, j = channel j-1 (ties go to background)."""
    background = np.full((1, *high_res.shape[1:]), threshold, dtype=np.float32)
    return np.argmax(np.concatenate([background, high_res], axis=0), axis=0)


def mine_relation_labels(
    image: np.ndarray,
    high_res: np.ndarray,
    keys: Sequence[int] | np.ndarray,
    *,
    conf_fg: float = 0.30,
    conf_bg: float = 0.05,
    crf: CRFParams | None = None,
) -> np.ndarray:
    """Return the relation label map uint8 (H, W) with values in {0, c+1, 255} (method doc §2.6).

    ``image`` is uint8 (H, W, 3) RGB, ``high_res`` the full-resolution CAMs (K, H, W) of the classes ``keys``
    (0-based, one per channel). Both thresholded maps are CRF-refined separately; the combination starts from
    the foreground map, marks its background as 255, and marks as 0 only pixels that are background in both
    maps. An image without image-level labels (K = 0) is all background: every pixel is 0.
    """
    image = _check_image(image, "mine_relation_labels")
    high_res = np.asarray(high_res, dtype=np.float32)
    key_array = np.asarray(keys, dtype=np.int64).reshape(-1)
    if high_res.ndim != 3 or high_res.shape[1:] != image.shape[:2]:
        raise InputError("mine_relation_labels", f"high_res {high_res.shape} does not match image {image.shape[:2]}")
    if high_res.shape[0] != key_array.size:
        raise InputError("mine_relation_labels", f"{key_array.size} keys for {high_res.shape[0]} CAM channels")
    if key_array.size and (key_array.min() < 0 or key_array.max() >= 254):
        raise InputError("mine_relation_labels", f"class keys must lie in 0..253, got {key_array.tolist()}")
    if not conf_bg <= conf_fg:
        raise InputError("mine_relation_labels", f"conf_bg {conf_bg} must not exceed conf_fg {conf_fg}")

    height, width = image.shape[:2]
    if key_array.size == 0:
        return np.zeros((height, width), dtype=np.uint8)

    n_labels = key_array.size + 1
    # index j of the CRF label space -> segmentation label value (0 = background, keys[j-1] + 1).
    to_label = np.concatenate([[0], key_array + 1]).astype(np.uint8)
    fg_crf = to_label[crf_refine_labels(image, _threshold_argmax(high_res, conf_fg), n_labels, crf)]
    bg_crf = to_label[crf_refine_labels(image, _threshold_argmax(high_res, conf_bg), n_labels, crf)]

    result = fg_crf.copy()
    result[fg_crf == 0] = 255
    result[(fg_crf == 0) & (bg_crf == 0)] = 0
    return result
