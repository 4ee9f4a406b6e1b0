"""Instance scoring over whole image lists, composed as the pipeline's evaluation stages compose it."""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import numpy as np

from irnet_core.metrics import REPORT_IOUS, InstanceAP, instance_ap_report

# One image: predicted masks, labels and scores, then ground-truth masks and labels.
ImagePair = tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]


def instance_report(images: Iterable[ImagePair], class_names: Sequence[str]) -> dict:
    """The JSON-friendly AP summary at the IoUs of ``REPORT_IOUS`` (see ``instance_ap_report``)."""
    accumulator = InstanceAP(len(class_names), tuple(REPORT_IOUS.values()))
    for image in images:
        accumulator.add(*image)
    return instance_ap_report(accumulator, class_names)
