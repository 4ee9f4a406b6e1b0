"""Per-image inference wrappers around the trained networks (method spec §2.4, §2.9, §2.10).

* :func:`compute_cams` — multi-scale, flip-summed CAMs at stride 4 and at full resolution.
* :func:`infer_boundary_displacement` — IRNet boundary map and calibrated displacement field.
* :func:`mean_displacement` — the post-training calibration pass that yields ``IRNet.mean_displacement``.

Inputs are RGB uint8 ``(H, W, 3)`` numpy images; outputs are float32 numpy arrays on the CPU (the
calibration value is float64). Each function runs the model in eval mode under
``torch.inference_mode()`` and restores the model's previous train/eval mode afterwards. The model
must already be on ``device`` (``None`` means "the device of the model's parameters").
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterable, Iterator, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from irnet_core.models.cam_net import CAMNet
from irnet_core.models.irnet import IRNet
from irnet_core.transforms import long_side_scale, normalize, resize_image, scaled_size, top_left_crop

CAM_SCALES: tuple[float, ...] = (1.0, 0.5, 1.5, 2.0)
# Added to each channel's max before dividing, as in the reference (keeps all-zero channels at 0).
CAM_NORM_EPS = 1e-5


def strided_size(height: int, width: int, stride: int) -> tuple[int, int]:
    """Size of the stride-``stride`` grid of an ``height x width`` image: ``((H-1)//s+1, (W-1)//s+1)``."""
    return (height - 1) // stride + 1, (width - 1) // stride + 1


@contextlib.contextmanager
def _eval_mode(model: nn.Module) -> Iterator[None]:
    """Run ``model`` in eval mode and restore its previous mode on exit."""
    was_training = model.training
    model.eval()
    try:
        yield
    finally:
        model.train(was_training)


def _resolve_device(model: nn.Module, device: torch.device | None) -> torch.device:
    if device is not None:
        return torch.device(device)
    param = next(model.parameters(), None)
    return param.device if param is not None else torch.device("cpu")


def _check_image(image: np.ndarray, where: str = "image") -> None:
    if not isinstance(image, np.ndarray) or image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] != 3:
        got = f"{image.dtype} {image.shape}" if isinstance(image, np.ndarray) else type(image).__name__
        raise ValueError(f"{where}: expected an RGB uint8 array of shape (H, W, 3), got {got}")
    if image.shape[0] < 1 or image.shape[1] < 1:
        raise ValueError(f"{where}: empty image of shape {image.shape}")


def _to_tensor(normalised_hwc: np.ndarray, device: torch.device) -> torch.Tensor:
    """float32 (H,W,3) -> (1,3,H,W) tensor on ``device``."""
    return torch.from_numpy(np.ascontiguousarray(normalised_hwc.transpose(2, 0, 1))).unsqueeze(0).to(device)


def _with_mirror(x: torch.Tensor) -> torch.Tensor:
    """(1,3,H,W) -> (2,3,H,W): the image and its horizontal mirror."""
    return torch.cat([x, x.flip(-1)], dim=0)


def _max_normalise(maps: torch.Tensor) -> torch.Tensor:
    """Divide each channel of (K, h, w) by its own spatial max + ``CAM_NORM_EPS``."""
    return maps / (maps.amax(dim=(-2, -1), keepdim=True) + CAM_NORM_EPS)


def cam_inputs(image: np.ndarray, scales: Sequence[float], max_long_side: int | None = None) -> list[torch.Tensor]:
    """The CPU half of :func:`compute_cams`: per scale, the resized, normalised image and its mirror as one
    float32 ``(2, 3, h, w)`` tensor. Pure CPU work (PIL bicubic resizing), so a data loader can run it in worker
    processes while the network computes the previous image."""
    _check_image(image)
    if not scales or any(s <= 0 for s in scales):
        raise ValueError(f"scales: expected positive scale factors, got {list(scales)}")
    height, width = image.shape[:2]
    fit = long_side_scale((height, width), max_long_side)
    inputs = []
    for s in scales:
        s = s * fit
        scaled = image if s == 1.0 else resize_image(image, scaled_size((height, width), s))
        inputs.append(_with_mirror(_to_tensor(normalize(scaled), torch.device("cpu"))))
    return inputs


def scale_maps_from_inputs(
    model: CAMNet,
    inputs: Sequence[torch.Tensor],
    keys: Sequence[int],
    *,
    device: torch.device | None = None,
    precision=None,
) -> list[torch.Tensor]:
    """Per scale of :func:`cam_inputs`, ``A_s = out[0] + flip(out[1])`` for the classes ``keys`` (in that order):
    float32 ``(K, h_s, w_s)`` at the network's output stride, on the model's device. Everything else about an
    image's CAMs derives from these (:func:`cam_from_scale_maps`, :func:`high_res_from_scale_maps`).

    ``precision`` (an :class:`irnet_core.training.Precision`) runs the forward passes in mixed precision and
    channels-last on CUDA; the maps are returned in float32.
    """
    key_list = [int(k) for k in keys]
    if any(not 0 <= k < model.num_classes for k in key_list):
        raise ValueError(f"keys: class indices {key_list} outside 0..{model.num_classes - 1}")
    if len(set(key_list)) != len(key_list):
        raise ValueError(f"keys: repeated class indices in {key_list}")
    if not key_list:
        return []
    device = _resolve_device(model, device)
    index = torch.tensor(key_list, dtype=torch.long, device=device)
    autocast = precision.autocast() if precision is not None else contextlib.nullcontext()
    maps = []
    with _eval_mode(model), torch.inference_mode():
        for pair in inputs:
            pair = precision.to_device(pair) if precision is not None else pair.to(device)
            with autocast:
                out = model.cams(pair)
            # Select the kept classes first: interpolation is per channel, so this only saves work.
            maps.append((out[0] + out[1].flip(-1))[index].float())
    return maps


def _summed(scale_maps: Sequence[torch.Tensor | np.ndarray], size: tuple[int, int]) -> torch.Tensor:
    """sum_s bilinear(A_s -> size), float32, in the order of the scales; (0, *size) when no class is present (no
    forward pass was run, so there are no scale maps)."""
    maps = [torch.as_tensor(m) for m in scale_maps]
    if not maps:
        return torch.zeros((0, *size), dtype=torch.float32)
    total = torch.zeros((maps[0].shape[0], *size), dtype=torch.float32, device=maps[0].device)
    with torch.inference_mode():
        for m in maps:
            total += F.interpolate(m.float().unsqueeze(0), size=size, mode="bilinear", align_corners=False)[0]
    return total


def cam_from_scale_maps(scale_maps: Sequence[torch.Tensor | np.ndarray], size: tuple[int, int]) -> torch.Tensor:
    """Stride-4 CAMs ``(K, h, w)`` of an image of ``size`` (H, W), each channel max-normalised."""
    return _max_normalise(_summed(scale_maps, strided_size(*size, 4)))


def high_res_from_scale_maps(scale_maps: Sequence[torch.Tensor | np.ndarray], size: tuple[int, int]) -> torch.Tensor:
    """Full-resolution CAMs ``(K, H, W)``: the scale maps summed at ``16 * ceil(H/16) x 16 * ceil(W/16)``, cropped
    top-left to ``H x W``, each channel max-normalised. Deterministic on the CPU (bilinear interpolation computes
    every output element on its own), which lets CAM stores keep the scale maps instead of the full maps."""
    height, width = size
    h16, w16 = strided_size(height, width, 16)
    return _max_normalise(_summed(scale_maps, (16 * h16, 16 * w16))[:, :height, :width])


def cams_from_inputs(
    model: CAMNet,
    inputs: Sequence[torch.Tensor],
    keys: Sequence[int],
    size: tuple[int, int],
    *,
    device: torch.device | None = None,
    precision=None,
) -> tuple[np.ndarray, np.ndarray]:
    """The network half of :func:`compute_cams`: CAMs of an image of ``size`` from its :func:`cam_inputs`."""
    maps = scale_maps_from_inputs(model, inputs, keys, device=device, precision=precision)
    cam, high_res = cam_from_scale_maps(maps, size), high_res_from_scale_maps(maps, size)
    return cam.cpu().numpy().astype(np.float32, copy=False), high_res.cpu().numpy().astype(np.float32, copy=False)


SCALE_MAP_PREFIX = "scale_"


def stored_high_res(reader, image_id: str) -> tuple[np.ndarray, dict]:
    """Full-resolution CAMs ``(K, H, W)`` float16 and the attributes of one image of a CAM store
    (:class:`irnet_core.store.ShardReader`).

    The store keeps each scale's map (``scale_0``, ``scale_1``, ... float32, a few percent of the full maps'
    bytes); the full maps are derived here on the CPU, and rounded to float16 as they were when stores held them,
    so every consumer sees exactly the values it saw then. A store that holds ``high_res`` itself (written
    before) is read as it is."""
    names = reader.array_names(image_id)
    if "high_res" in names:
        arrays, attrs = reader.read(image_id, ["high_res"])
        return arrays["high_res"], attrs
    scale_names = sorted(
        (n for n in names if n.startswith(SCALE_MAP_PREFIX)), key=lambda n: int(n[len(SCALE_MAP_PREFIX) :])
    )
    arrays, attrs = reader.read(image_id, scale_names)
    height, width = attrs["size"]
    maps = [torch.from_numpy(arrays[name]) for name in scale_names]
    return high_res_from_scale_maps(maps, (height, width)).numpy().astype(np.float16), attrs


def compute_cams(
    model: CAMNet,
    image: np.ndarray,
    keys: Sequence[int],
    *,
    scales: Sequence[float] = CAM_SCALES,
    device: torch.device | None = None,
    max_long_side: int | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Multi-scale CAMs of one image (method spec §2.4).

    For every scale ``s``: PIL-bicubic resize to ``(round(H*s), round(W*s))`` (skipped at ``s == 1``),
    normalise, run ``model.cams`` on the image and its mirror, ``A_s = out[0] + flip(out[1])``.
    ``cam = sum_s bilinear(A_s -> (h, w))`` with ``h = (H-1)//4+1``; ``high_res = sum_s
    bilinear(A_s -> (16*ceil(H/16), 16*ceil(W/16)))`` cropped top-left to ``H x W``. Only the channels
    in ``keys`` are kept (in the given order), each divided by its own max + 1e-5, separately for the
    two outputs, so values lie in [0, 1). An image whose long side exceeds ``max_long_side`` is fed to the
    network scaled down to it (every scale multiplied by the same factor); both outputs keep the image's size.

    Returns ``(cam float32 (K, h, w), high_res float32 (K, H, W))``; with ``K == 0`` both are empty (no forward
    pass is run). ValueError for a bad image, out-of-range or repeated class indices, or non-positive scales.
    """
    inputs = cam_inputs(image, scales, max_long_side) if len(keys) else []
    if not len(keys):
        _check_image(image)
    return cams_from_inputs(model, inputs, keys, image.shape[:2], device=device)


def _inference_pad(size: int, pad_size: int) -> int:
    """Padded length of one axis: ``pad_size`` if it fits, else the next multiple of 16 (never crop)."""
    return pad_size if size <= pad_size else 16 * ((size + 15) // 16)


def infer_boundary_displacement(
    model: IRNet,
    image: np.ndarray,
    *,
    pad_size: int,
    device: torch.device | None = None,
    max_long_side: int | None = None,
    precision=None,
) -> tuple[np.ndarray, np.ndarray]:
    """Boundary map and calibrated displacement field of one image (method spec §2.10).

    The normalised image and its mirror (batch of 2) are zero-padded right/bottom — zero in
    normalised space, i.e. the ImageNet mean colour — to ``pad_size x pad_size``, as in the paper: the
    padding is not neutral, because every GroupNorm computes its statistics over the whole padded map,
    exactly as during training on zero-padded crops. **Padding policy for large images:** along an
    axis longer than ``pad_size`` the image is padded up to the next multiple of 16 instead; it is
    never cropped (the reference code silently cropped such images, which misaligns the boundary map
    with the CAMs). Outputs are cropped to the stride-4 grid ``(h, w) = ((H-1)//4+1, (W-1)//4+1)``.

    An image whose long side exceeds ``max_long_side`` is fed to the network scaled down to it; both maps
    are then resampled (bilinear) to the image's own stride-4 grid, and the displacement, measured in grid
    cells of the smaller image, is scaled up by the same factor.

    Returns:
        ``boundary`` float32 ``(h, w)`` in [0, 1]: ``sigmoid((logit(img) + flip(logit(mirror))) / 2)``;
        ``displacement`` float32 ``(2, h, w)``: ``D(img) - model.mean_displacement`` from the
        un-mirrored image only; channel 0 = dy, 1 = dx, in stride-4 grid cells.

    Raises:
        ValueError: bad image (``image``) or non-positive ``pad_size`` (``pad_size``).
    """
    _check_image(image)
    if pad_size < 1:
        raise ValueError(f"pad_size: expected a positive size, got {pad_size}")
    fit = long_side_scale(image.shape[:2], max_long_side)
    if fit < 1.0:
        grid = strided_size(*image.shape[:2], 4)
        small = resize_image(image, scaled_size(image.shape[:2], fit))
        boundary, displacement = infer_boundary_displacement(
            model, small, pad_size=pad_size, device=device, precision=precision
        )
        return _resample_maps(boundary, displacement, grid)
    height, width = image.shape[:2]
    h, w = strided_size(height, width, 4)
    device = _resolve_device(model, device)
    padded_h, padded_w = _inference_pad(height, pad_size), _inference_pad(width, pad_size)
    with _eval_mode(model), torch.inference_mode():
        pair = _with_mirror(_to_tensor(normalize(image), device))
        pair = F.pad(pair, (0, padded_w - width, 0, padded_h - height))
        if precision is not None:  # CUDA: mixed precision and channels-last for the network, float32 after it
            with precision.autocast():
                edge_logits, displacement = model(precision.to_device(pair))
            edge_logits, displacement = edge_logits.float(), displacement.float()
        else:
            edge_logits, displacement = model(pair)
        edge_logits = edge_logits[:, 0, :h, :w]
        boundary = torch.sigmoid((edge_logits[0] + edge_logits[1].flip(-1)) / 2)
        disp = displacement[0, :, :h, :w] - model.mean_displacement.to(displacement)[:, None, None]
    return boundary.float().cpu().numpy(), disp.float().cpu().numpy()


def _resample_maps(boundary: np.ndarray, displacement: np.ndarray, grid: tuple[int, int]):
    """Boundary and displacement of a scaled-down image on the original image's grid (displacement rescaled)."""
    stacked = torch.from_numpy(np.concatenate([boundary[None], displacement]))[None]
    resized = F.interpolate(stacked, size=grid, mode="bilinear", align_corners=False)[0]
    factor = torch.tensor([grid[0] / boundary.shape[0], grid[1] / boundary.shape[1]], dtype=resized.dtype)
    return resized[0].clamp(0, 1).numpy(), (resized[1:] * factor[:, None, None]).numpy()


def mean_displacement(
    model: IRNet,
    images: Iterable[np.ndarray],
    *,
    pad_size: int,
    device: torch.device | None = None,
    batch_size: int = 8,
) -> np.ndarray:
    """Calibration offset μ of the displacement field (method spec §2.9, mean-displacement pass).

    Each image is normalised and top-left cropped / zero-padded to ``pad_size x pad_size`` (here
    large images *are* cropped, as in the reference, because μ is a statistic over training-like
    inputs); batches of ``batch_size`` go through an eval-mode forward; μ is the mean of the raw
    displacement over all images and all positions (padding included), every image weighted equally.
    The reference averaged per-batch means and dropped the last, smaller batch (``drop_last``); here
    every image counts once, so μ does not depend on ``batch_size`` (a run setting must not change a
    result: per-image outputs are the same for any batch size, and so is their mean).

    The model is not modified: assign the result to ``model.mean_displacement`` yourself. μ is
    computed from the raw output, so the model's current ``mean_displacement`` does not matter.

    Returns:
        float64 ``(2,)`` array ``(mean dy, mean dx)`` in stride-4 grid cells.

    Raises:
        ValueError: no images (``images``), a bad image (``images[i]``), or bad sizes.
    """
    if pad_size < 1:
        raise ValueError(f"pad_size: expected a positive size, got {pad_size}")
    if batch_size < 1:
        raise ValueError(f"batch_size: expected a positive batch size, got {batch_size}")
    device = _resolve_device(model, device)
    image_means: list[torch.Tensor] = []
    batch: list[np.ndarray] = []

    def flush() -> None:
        x = torch.from_numpy(np.stack(batch).transpose(0, 3, 1, 2).copy()).to(device)
        _, displacement = model(x)
        image_means.extend(displacement.double().mean(dim=(2, 3)).cpu())
        batch.clear()

    with _eval_mode(model), torch.inference_mode():
        for i, image in enumerate(images):
            _check_image(image, f"images[{i}]")
            batch.append(top_left_crop(normalize(image), pad_size))  # zero = the mean colour
            if len(batch) == batch_size:
                flush()
        if batch:
            flush()
    if not image_means:
        raise ValueError("images: no images to compute the mean displacement from")
    # Summed in image order: the same additions whatever the batching.
    return torch.stack(image_means).mean(dim=0).numpy().astype(np.float64)
