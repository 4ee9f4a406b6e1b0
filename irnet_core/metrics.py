"""Evaluation: semantic confusion matrix / IoU and PASCAL VOC instance-segmentation AP (method doc §2.5, §2.14).

Both follow the semantics of the official evaluation (which uses chainercv), so numbers are comparable:

* semantic: confusion matrix with ground truth as rows and prediction as columns, ground-truth 255 ignored,
  ``IoU_c = TP / (GT_c + Pred_c - TP)``, mIoU = NaN-mean over classes (classes absent from both are NaN);
* instance: greedy matching by descending score per image and class, all-point interpolated AP (VOC2010+),
  mAP = NaN-mean over classes that have ground truth.

Reports are JSON friendly: NaN becomes ``None``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

IGNORE_LABEL = 255


def _json_float(value: float) -> float | None:
    value = float(value)
    return None if math.isnan(value) else value


class ConfusionMatrix:
    """Accumulates an (n_classes, n_classes) int64 confusion matrix; entry [g, p] counts pixels of GT g predicted p.

    Class 0 is background; ``n_classes`` includes it (21 for VOC).
    """

    def __init__(self, n_classes: int) -> None:
        if n_classes < 1:
            raise ValueError(f"ConfusionMatrix: n_classes must be >= 1, got {n_classes}")
        self.n_classes = int(n_classes)
        self.matrix = np.zeros((self.n_classes, self.n_classes), dtype=np.int64)

    def update(self, gt: np.ndarray, pred: np.ndarray) -> None:
        """Add one image. ``gt`` values in 0..n_classes-1 or 255 (ignored); ``pred`` values in 0..n_classes-1.

        Raises ValueError on shape mismatch or out-of-range values (a prediction may not be 255: map unsure
        pixels to a class before evaluating).
        """
        gt = np.asarray(gt)
        pred = np.asarray(pred)
        if gt.shape != pred.shape:
            raise ValueError(f"ConfusionMatrix.update: gt {gt.shape} and prediction {pred.shape} differ in shape")
        gt = gt.reshape(-1).astype(np.int64)
        pred = pred.reshape(-1).astype(np.int64)
        if pred.size and (pred.min() < 0 or pred.max() >= self.n_classes):
            raise ValueError(
                f"ConfusionMatrix.update: prediction values must lie in 0..{self.n_classes - 1}, got {pred.min()}..{pred.max()}"
            )
        keep = gt != IGNORE_LABEL
        gt, pred = gt[keep], pred[keep]
        if gt.size and (gt.min() < 0 or gt.max() >= self.n_classes):
            raise ValueError(
                f"ConfusionMatrix.update: ground-truth values must lie in 0..{self.n_classes - 1} or be {IGNORE_LABEL}, got {gt.min()}..{gt.max()}"
            )
        self.matrix += np.bincount(gt * self.n_classes + pred, minlength=self.n_classes**2).reshape(
            self.n_classes, self.n_classes
        )

    def iou(self) -> np.ndarray:
        """Per-class IoU float64 (n_classes,); NaN for classes absent from both ground truth and prediction."""
        tp = np.diag(self.matrix).astype(np.float64)
        union = self.matrix.sum(axis=1) + self.matrix.sum(axis=0) - tp
        return np.where(union > 0, tp / np.maximum(union, 1), np.nan)

    def miou(self) -> float:
        """NaN-mean of :meth:`iou`; NaN when no class has any pixel."""
        values = self.iou()
        return float(np.mean(values[~np.isnan(values)])) if np.any(~np.isnan(values)) else math.nan

    def pixel_accuracy(self) -> float:
        """Fraction of non-ignored pixels predicted correctly; NaN when nothing was counted."""
        total = int(self.matrix.sum())
        return float(np.trace(self.matrix)) / total if total else math.nan


def _with_background(class_names: Sequence[str], n_classes: int, where: str) -> list[str]:
    names = [str(name) for name in class_names]
    if len(names) == n_classes - 1:
        return ["background", *names]
    if len(names) == n_classes and names[0] == "background":
        return names
    raise ValueError(
        f"{where}: expected {n_classes - 1} foreground class names (or {n_classes} starting with 'background'), got {len(names)}"
    )


def semantic_report(conf: ConfusionMatrix, class_names: Sequence[str]) -> dict:
    """JSON-friendly summary ``{"miou", "per_class": {name: iou or None}, "pixel_accuracy"}``.

    ``class_names`` are the foreground names (``n_classes - 1``, background is prepended as name 0) or all
    ``n_classes`` names starting with "background". NaN values are reported as None.
    """
    names = _with_background(class_names, conf.n_classes, "semantic_report")
    return {
        "miou": _json_float(conf.miou()),
        "per_class": {name: _json_float(value) for name, value in zip(names, conf.iou())},
        "pixel_accuracy": _json_float(conf.pixel_accuracy()),
    }


# --------------------------------------------------------------------------------------------------------------
# Multi-label classification (the CAM network's held-out check)


def multilabel_average_precision(scores: np.ndarray, targets: np.ndarray) -> float:
    """Mean over classes with at least one positive of the (non-interpolated) average precision."""
    aps = []
    for c in range(targets.shape[1]):
        positives = targets[:, c] > 0.5
        if not positives.any():
            continue
        order = np.argsort(-scores[:, c], kind="stable")
        hits = positives[order]
        precision_at_hit = np.cumsum(hits)[hits] / (np.flatnonzero(hits) + 1)
        aps.append(precision_at_hit.mean())
    return float(np.mean(aps)) if aps else float("nan")


def classification_report(probabilities: np.ndarray, targets: np.ndarray) -> dict[str, float]:
    """Held-out multi-label metrics of a classifier: loss (binary cross-entropy), mAP, per-label accuracy and
    exact-match rate at 0.5. A network stuck at the label prior shows as a low mAP at a fair accuracy."""
    import torch
    import torch.nn.functional as F

    probs = torch.from_numpy(np.asarray(probabilities, dtype=np.float32))
    loss = F.binary_cross_entropy(probs.clamp(1e-6, 1 - 1e-6), torch.from_numpy(np.asarray(targets, np.float32))).item()
    predicted = probabilities > 0.5
    positive = targets > 0.5
    return {
        "val_loss": loss,
        "val_map": multilabel_average_precision(probabilities, targets),
        "val_label_accuracy": float((predicted == positive).mean()),
        "val_exact_match": float((predicted == positive).all(axis=1).mean()),
    }


# --------------------------------------------------------------------------------------------------------------
# Instance segmentation AP


def mask_iou(masks_a: np.ndarray, masks_b: np.ndarray) -> np.ndarray:
    """Pairwise IoU float64 (A, B) of bool masks (A, H, W) and (B, H, W); 0 where both masks are empty."""
    flat_a = masks_a.reshape(masks_a.shape[0], -1).astype(np.float64)
    flat_b = masks_b.reshape(masks_b.shape[0], -1).astype(np.float64)
    intersection = flat_a @ flat_b.T
    union = flat_a.sum(axis=1)[:, None] + flat_b.sum(axis=1)[None, :] - intersection
    return np.where(union > 0, intersection / np.maximum(union, 1), 0.0)


def _descending(scores: np.ndarray) -> np.ndarray:
    # Stable, so equal scores keep their input order: results do not depend on the sort algorithm.
    return np.argsort(-scores, kind="stable")


def average_precision(precision: np.ndarray, recall: np.ndarray) -> float:
    """All-point interpolated AP (VOC2010+): area under the monotone (right-to-left max) precision envelope."""
    mrec = np.concatenate([[0.0], recall, [1.0]])
    mpre = np.concatenate([[0.0], np.nan_to_num(precision), [0.0]])
    mpre = np.maximum.accumulate(mpre[::-1])[::-1]
    steps = np.where(mrec[1:] != mrec[:-1])[0]
    return float(np.sum((mrec[steps + 1] - mrec[steps]) * mpre[steps + 1]))


class InstanceAP:
    """PASCAL VOC instance-segmentation AP, accumulated one image at a time, as chainercv's
    ``eval_instance_segmentation_voc`` (``use_07_metric=False``) computes it, at several IoU thresholds at once.

    :meth:`add` takes one image: predicted masks bool (M, H, W), labels (M,) 0-based, scores (M,); ground-truth
    masks bool (G, H, W) and labels (G,). Per image and class, predictions are visited by descending score; each
    takes the ground-truth instance of maximal mask IoU: a true positive if that IoU >= the threshold and the
    instance is not yet taken, a false positive otherwise (also when its best instance is already taken: there
    is no fall-back to the second best). Only each prediction's score and match flags are kept, so memory does
    not grow with the images' sizes. :meth:`result` ranks, per class, all predictions of the dataset by score
    (ties keep input order) and returns the area under the monotone precision envelope.

    Void regions: ground-truth instances come from VOC's SegmentationObject; the 255 void pixels belong to no
    ground-truth mask, and predictions are *not* masked there, so predicted pixels on void count in the union,
    exactly as in chainercv.
    """

    def __init__(self, n_classes: int, iou_thresholds: Sequence[float] = (0.5,)) -> None:
        self.n_classes = int(n_classes)
        self.thresholds = [float(t) for t in iou_thresholds]
        self.n_positive = np.zeros(self.n_classes, dtype=np.int64)
        self._scores: list[list[np.ndarray]] = [[] for _ in range(self.n_classes)]
        # _matches[t][c]: per image, the match flags of class c's predictions at threshold t.
        self._matches: list[list[list[np.ndarray]]] = [[[] for _ in range(self.n_classes)] for _ in self.thresholds]
        self.n_images = 0

    def add(self, pred_masks, pred_labels, pred_scores, gt_masks, gt_labels) -> None:
        p_masks = np.asarray(pred_masks, dtype=bool)
        p_labels = np.asarray(pred_labels, dtype=np.int64).reshape(-1)
        p_scores = np.asarray(pred_scores, dtype=np.float64).reshape(-1)
        g_masks = np.asarray(gt_masks, dtype=bool)
        g_labels = np.asarray(gt_labels, dtype=np.int64).reshape(-1)
        where = f"InstanceAP image {self.n_images}"
        if p_masks.ndim != 3 or p_masks.shape[0] != p_labels.size or p_scores.size != p_labels.size:
            raise ValueError(
                f"{where}: prediction masks {p_masks.shape}, labels {p_labels.shape} and scores {p_scores.shape} disagree"
            )
        if g_masks.ndim != 3 or g_masks.shape[0] != g_labels.size:
            raise ValueError(f"{where}: ground-truth masks {g_masks.shape} and labels {g_labels.shape} disagree")
        if p_masks.shape[0] and g_masks.shape[0] and p_masks.shape[1:] != g_masks.shape[1:]:
            raise ValueError(
                f"{where}: prediction size {p_masks.shape[1:]} differs from ground truth {g_masks.shape[1:]}"
            )
        for labels, kind in ((p_labels, "prediction"), (g_labels, "ground-truth")):
            if labels.size and (labels.min() < 0 or labels.max() >= self.n_classes):
                raise ValueError(f"{where}: {kind} labels must lie in 0..{self.n_classes - 1}")
        self.n_images += 1
        for label in np.unique(np.concatenate([p_labels, g_labels])):
            keep = p_labels == label
            order = _descending(p_scores[keep])
            cls_masks = p_masks[keep][order]
            cls_gt = g_masks[g_labels == label]
            self.n_positive[label] += cls_gt.shape[0]
            self._scores[label].append(p_scores[keep][order])
            ious = mask_iou(cls_masks, cls_gt) if cls_masks.shape[0] and cls_gt.shape[0] else None
            for t, threshold in enumerate(self.thresholds):
                match = np.zeros(cls_masks.shape[0], dtype=bool)
                if ious is not None:
                    best = ious.argmax(axis=1)
                    taken = np.zeros(cls_gt.shape[0], dtype=bool)
                    for row, gt_index in enumerate(best):
                        if ious[row, gt_index] >= threshold:
                            match[row] = not taken[gt_index]
                            taken[gt_index] = True
                self._matches[t][label].append(match)

    @classmethod
    def merged(cls, parts: Sequence[InstanceAP]) -> InstanceAP:
        """One accumulator holding the images of ``parts`` (same classes and IoU thresholds), as if they had been
        added to it in order: AP of any subset of images from per-image accumulators, without matching again."""
        if not parts:
            raise ValueError("InstanceAP.merged: no accumulators given")
        out = cls(parts[0].n_classes, parts[0].thresholds)
        for part in parts:
            if part.n_classes != out.n_classes or part.thresholds != out.thresholds:
                raise ValueError("InstanceAP.merged: accumulators of other classes or IoU thresholds")
            out.n_positive += part.n_positive
            out.n_images += part.n_images
            for label in range(out.n_classes):
                out._scores[label] += part._scores[label]
                for t in range(len(out.thresholds)):
                    out._matches[t][label] += part._matches[t][label]
        return out

    def result(self) -> dict[float, tuple[np.ndarray, float]]:
        """Per threshold: ``(ap float64 (n_classes,), mAP)``; NaN AP for classes without ground truth (their
        predictions are ignored), AP 0 for classes with ground truth but no prediction; mAP is the NaN-mean."""
        out = {}
        for t, threshold in enumerate(self.thresholds):
            ap = np.full(self.n_classes, np.nan)
            for label in range(self.n_classes):
                if self.n_positive[label] == 0:
                    continue
                scores = np.concatenate(self._scores[label]) if self._scores[label] else np.zeros(0)
                matches = self._matches[t][label]
                ranked = (np.concatenate(matches) if matches else np.zeros(0, dtype=bool))[_descending(scores)]
                tp = np.cumsum(ranked)
                fp = np.cumsum(~ranked)
                precision = tp / np.maximum(tp + fp, 1)
                recall = tp / self.n_positive[label]
                ap[label] = average_precision(precision, recall)
            valid = ~np.isnan(ap)
            out[threshold] = (ap, float(np.mean(ap[valid])) if np.any(valid) else math.nan)
        return out


class InstanceCoverage:
    """What AP does not show about instance masks, accumulated one image at a time, per class:

    - ``recall50``: the share of ground-truth objects that some prediction of their class overlaps at mask
      IoU >= 0.5 (whatever its score: the masks' quality apart from their ranking);
    - ``merged``: the share of ground-truth objects lying in a prediction (at least half of the object inside
      it) that also holds another object of their class that way: objects that came out as one instance.
    """

    def __init__(self, n_classes: int) -> None:
        self.n_classes = int(n_classes)
        self.n_objects = np.zeros(self.n_classes, dtype=np.int64)
        self.n_recalled = np.zeros(self.n_classes, dtype=np.int64)
        self.n_merged = np.zeros(self.n_classes, dtype=np.int64)

    def add(self, pred_masks, pred_labels, gt_masks, gt_labels) -> None:
        p_masks, g_masks = np.asarray(pred_masks, dtype=bool), np.asarray(gt_masks, dtype=bool)
        p_labels = np.asarray(pred_labels, dtype=np.int64).reshape(-1)
        g_labels = np.asarray(gt_labels, dtype=np.int64).reshape(-1)
        for label in np.unique(g_labels):
            objects, preds = g_masks[g_labels == label], p_masks[p_labels == label]
            self.n_objects[label] += objects.shape[0]
            if preds.shape[0] == 0:
                continue
            self.n_recalled[label] += int((mask_iou(objects, preds).max(axis=1) >= 0.5).sum())
            flat_o = objects.reshape(objects.shape[0], -1).astype(np.float64)
            inside = (flat_o @ preds.reshape(preds.shape[0], -1).T.astype(np.float64)) >= 0.5 * np.maximum(
                flat_o.sum(axis=1, keepdims=True), 1
            )  # (objects, predictions): at least half of the object in the prediction
            holds_two = inside.sum(axis=0) >= 2
            self.n_merged[label] += int((inside & holds_two[None]).any(axis=1).sum())

    def result(self) -> dict[str, np.ndarray | float]:
        """``recall50`` / ``merged`` per class (NaN without objects) and over all objects (``*_all``)."""
        with np.errstate(invalid="ignore", divide="ignore"):
            recall = np.where(self.n_objects > 0, self.n_recalled / np.maximum(self.n_objects, 1), np.nan)
            merged = np.where(self.n_objects > 0, self.n_merged / np.maximum(self.n_objects, 1), np.nan)
        total = max(int(self.n_objects.sum()), 1)
        return {
            "recall50": recall,
            "merged": merged,
            "recall50_all": float(self.n_recalled.sum() / total) if self.n_objects.sum() else math.nan,
            "merged_all": float(self.n_merged.sum() / total) if self.n_objects.sum() else math.nan,
        }


def voc_instance_ap(
    pred_masks: Sequence[np.ndarray],
    pred_labels: Sequence[np.ndarray],
    pred_scores: Sequence[np.ndarray],
    gt_masks: Sequence[np.ndarray],
    gt_labels: Sequence[np.ndarray],
    n_classes: int,
    iou_threshold: float = 0.5,
) -> tuple[np.ndarray, float]:
    """PASCAL VOC instance AP per class and its mean over per-image lists (see :class:`InstanceAP`)."""
    n_images = len(pred_masks)
    if not (len(pred_labels) == len(pred_scores) == len(gt_masks) == len(gt_labels) == n_images):
        raise ValueError("voc_instance_ap: prediction and ground-truth lists must have one entry per image")
    accumulator = InstanceAP(n_classes, (iou_threshold,))
    for image in zip(pred_masks, pred_labels, pred_scores, gt_masks, gt_labels, strict=True):
        accumulator.add(*image)
    return accumulator.result()[float(iou_threshold)]


REPORT_IOUS = {"25": 0.25, "50": 0.5, "75": 0.75}


def instance_ap_report(accumulator: InstanceAP, class_names: Sequence[str]) -> dict:
    """JSON-friendly summary of an accumulator built with the thresholds of :data:`REPORT_IOUS`:
    ``{"map25", "map50", "map75", "per_class": {name: {"ap25", "ap50", "ap75"}}}`` with None for NaN."""
    names = [str(name) for name in class_names]
    results = accumulator.result()
    by_tag = {tag: results[threshold] for tag, threshold in REPORT_IOUS.items()}
    report: dict = {f"map{tag}": _json_float(by_tag[tag][1]) for tag in by_tag}
    report["per_class"] = {
        name: {f"ap{tag}": _json_float(by_tag[tag][0][index]) for tag in by_tag} for index, name in enumerate(names)
    }
    return report


def coverage_report(coverage: InstanceCoverage, class_names: Sequence[str]) -> dict:
    """JSON-friendly summary of an :class:`InstanceCoverage`: ``{"recall50", "merged", "coverage_per_class":
    {name: {"recall50", "merged"}}}`` with None for NaN (a class without objects)."""
    result = coverage.result()
    return {
        "recall50": _json_float(result["recall50_all"]),
        "merged": _json_float(result["merged_all"]),
        "coverage_per_class": {
            str(name): {"recall50": _json_float(result["recall50"][i]), "merged": _json_float(result["merged"][i])}
            for i, name in enumerate(class_names)
        },
    }


def coco_segm_ap(annotation_file: str, predictions: Sequence[dict], image_ids: Sequence[int]) -> dict:
    """COCO mask AP (pycocotools ``COCOeval``, iouType ``segm``) of ``predictions`` (COCO result dicts with the
    source's image and category ids and a ``score``) on ``image_ids`` of ``annotation_file``; the predictions
    are not modified. Crowd regions are handled as COCO does. Returns fractions: ``{"ap", "ap50", "ap75"}`` (None when nothing can be scored)."""
    import contextlib
    import io

    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    wanted = set(int(i) for i in image_ids)
    # Copies: loadRes writes area, bbox and id into the dicts it is given, and the caller's stay as they were.
    predictions = [dict(p) for p in predictions if int(p["image_id"]) in wanted]
    with contextlib.redirect_stdout(io.StringIO()):  # pycocotools prints progress and tables
        ground_truth = COCO(str(annotation_file))
        if not predictions:
            return {"ap": 0.0, "ap50": 0.0, "ap75": 0.0}
        evaluation = COCOeval(ground_truth, ground_truth.loadRes(list(predictions)), "segm")
        evaluation.params.imgIds = sorted(wanted)
        evaluation.evaluate()
        evaluation.accumulate()
        evaluation.summarize()
    stats = evaluation.stats
    return {key: _json_float(value) if value >= 0 else None for key, value in zip(("ap", "ap50", "ap75"), stats[:3])}
