"""Inputs of the inference stages, prepared by a data loader (worker processes when asked) while the network
works on the previous image: decoding, resizing and normalising are CPU work that would otherwise leave a GPU
idle. With no workers the same code runs in the main process, so CPU results do not change."""

from __future__ import annotations

from collections.abc import Sequence

import torch

from .inference import cam_inputs


class CamInferenceInputs(torch.utils.data.Dataset):
    """Per image: ``(image id, keys, (H, W), [per scale: normalised image and mirror (2, 3, h, w)])``."""

    def __init__(self, dataset, image_ids: Sequence[str], scales: Sequence[float], max_long_side: int | None):
        self.dataset, self.image_ids = dataset, list(image_ids)
        self.scales, self.max_long_side = list(scales), max_long_side

    def __len__(self) -> int:
        return len(self.image_ids)

    def __getitem__(self, index: int):
        image_id = self.image_ids[index]
        keys = self.dataset.image_labels(image_id)
        image = self.dataset.load_image(image_id)
        inputs = cam_inputs(image, self.scales, self.max_long_side) if keys else []
        return image_id, list(keys), tuple(image.shape[:2]), inputs


def loader(inputs: torch.utils.data.Dataset, num_workers: int, device: torch.device) -> torch.utils.data.DataLoader:
    """One sample at a time, in order, prepared ahead by ``num_workers`` processes (0: in this process)."""
    return torch.utils.data.DataLoader(
        inputs,
        batch_size=None,  # samples as they are: images of different sizes do not stack
        num_workers=num_workers,
        pin_memory=device.type == "cuda",
        prefetch_factor=4 if num_workers else None,
    )
