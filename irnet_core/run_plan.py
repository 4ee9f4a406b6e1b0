"""The image lists of a run and how they split into jobs: what the workflow works out when it builds its DAG.

rules/common.smk calls :func:`run_lists` and :func:`plan_run` once per DAG build; the rules' input functions
then only look ids up. Nothing here knows Snakemake. Every problem is an :class:`InputError` naming the config
key, which the workflow prints as its one-line stop.

- The **train list** trains the networks; the **infer list** gets pseudo-labels; the **eval list** (inside the
  infer list) is scored; the **calibration list** (outside the eval list) chooses the `auto` thresholds; the
  **val list** (outside train and infer) scores the final models.
- CAMs are computed for train ∪ infer ∪ calibration, split into shards by a hash of the id
  (:mod:`irnet_core.shards`); the input check covers every list, the val list too, by the same hash.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

from .errors import InputError
from .shards import split_into_shards
from .thresholds import label_free_sample, threshold_rule

LIST_KEYS = ("train_list", "infer_list", "eval_list", "calibration_list", "val_list")


def demo_lists(config: Mapping) -> dict[str, list[str]]:
    """The demo's lists, computed from its `demo:` settings: the DAG is known before the data exists."""
    from .tools.demo_generator import demo_split_ids

    demo = config["demo"]
    try:
        splits = demo_split_ids(demo["n_images"], demo["n_labelled"], demo["n_calibration"], demo["n_val"])
    except InputError as exc:
        raise InputError(f"config key demo.{exc.where}", exc.problem) from None
    lists = {}
    for key in LIST_KEYS:
        if config["dataset"][key] is None:
            continue
        name = os.path.splitext(os.path.basename(config["dataset"][key]))[0]
        if name not in splits:
            raise InputError(f"config key dataset.{key}", f"the demo dataset has lists {sorted(splits)}, not {name!r}")
        lists[key] = splits[name]
    return lists


@dataclass(frozen=True)
class RunPlan:
    """The lists of a run, their shards and the threshold calibration's sample (ids in list order)."""

    train: list[str]
    infer: list[str]
    eval: list[str]
    calibration: list[str]  # the first calibration.max_images of the list: a long list costs no extra inference
    val: list[str]
    shards: list[list[str]]  # CAM shards: train ∪ infer ∪ calibration
    verify_shards: list[list[str]]  # the input check's shards: every list, by the same hash
    threshold_ids: list[str]  # the calibration stages' images: the calibration list, or a label-free sample
    threshold_method: str  # the rule of the `auto` thresholds (irnet_core.thresholds.THRESHOLD_RULES)

    @property
    def thresholds_with_ground_truth(self) -> bool:
        from .thresholds import THRESHOLD_RULES

        return THRESHOLD_RULES[self.threshold_method].needs_ground_truth

    @property
    def ground_truth_ids(self) -> set[str]:
        """Images whose ground truth is read (scored or calibrated on)."""
        return set(self.eval) | set(self.calibration) | set(self.val)

    @property
    def every_id(self) -> list[str]:
        """Every image the run reads, sorted."""
        return sorted(set(self.train) | set(self.infer) | set(self.calibration) | set(self.val))


def plan_run(config: Mapping, lists: Mapping[str, Sequence[str]]) -> RunPlan:
    """Check the relations between the lists that the stages rely on and split them into shards."""
    section = config["dataset"]
    train, infer = list(lists.get("train_list", [])), list(lists.get("infer_list", []))
    eval_ids, val = list(lists.get("eval_list", [])), list(lists.get("val_list", []))
    calibration = list(lists.get("calibration_list", []))[: config["calibration"]["max_images"]]
    if not train:
        raise InputError("config key dataset.train_list", f"the training list {section['train_list']} is empty")
    train_set, infer_set, eval_set = set(train), set(infer), set(eval_ids)
    relations: list[tuple[str, list[str], str, Callable[[str], bool]]] = [
        ("eval_list", eval_ids, "is not in dataset.infer_list", lambda i: i not in infer_set),
        ("calibration_list", calibration, "is also in dataset.eval_list", lambda i: i in eval_set),
        ("val_list", val, "also trains or gets pseudo-labels", lambda i: i in train_set or i in infer_set),
    ]
    for key, ids, problem, bad in relations:
        offending = [i for i in ids if bad(i)]
        if offending:
            raise InputError(f"config key dataset.{key}", f"{len(offending)} id(s) {problem}, e.g. {offending[0]!r}")
    n_shards = config["compute"]["shards"]
    cam_scope = train_set | infer_set | set(calibration)
    rule = threshold_rule(config["calibration"]["method"], bool(calibration))
    if rule.needs_ground_truth:
        threshold_ids = calibration
    else:
        threshold_ids = label_free_sample(train, infer, config["calibration"]["max_images"])
    return RunPlan(
        train=train,
        infer=infer,
        eval=eval_ids,
        calibration=calibration,
        val=val,
        shards=split_into_shards(cam_scope, n_shards),
        verify_shards=split_into_shards(cam_scope | set(val), n_shards),
        threshold_ids=threshold_ids,
        threshold_method=rule.name,
    )


def check_files_exist(paths: Sequence[str], what: str) -> None:
    """One line for the first of ``paths`` that does not exist, with how many are missing."""
    missing = [p for p in paths if not os.path.exists(p)]
    if missing:
        raise InputError(missing[0], f"{what} does not exist ({len(missing)} missing in all)")


def largest_image_pixels(image_paths: Sequence[str], cam_stores: Sequence[str], max_pixels: int | None) -> int:
    """Pixels of the largest image a job holds, for its memory request: from the image headers (cheap), else from
    the sizes its CAM stores record; 0 while they do not exist yet (a dry run), when a base figure stands alone."""
    from .data.images import image_size
    from .store import recorded_sizes

    try:
        if image_paths:
            return max(h * w for h, w in (image_size(path, max_pixels=max_pixels) for path in image_paths))
        return max((h * w for store in cam_stores for h, w in recorded_sizes(store)), default=0)
    except (InputError, OSError, ValueError):
        return 0
