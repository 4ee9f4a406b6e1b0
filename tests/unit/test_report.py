"""Report assets: image selection, figure PNGs, training curves, metric and benchmark tables, entry points."""

from __future__ import annotations

import html.parser
import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from irnet_core.data.voc import VOCDataset
from irnet_core.palette import voc_palette, write_palette_png
from irnet_core.pipeline.report import (
    detect_centroids,
    read_history,
    report_calibration,
    report_curves,
    report_figures,
    report_tables,
)
from irnet_core.report import figures, select_images, tables
from irnet_core.store import ShardWriter

CLASSES = ["disc", "square", "triangle"]
H, W = 72, 96  # image size; the stride-4 grid is 18 x 24


# ---- a synthetic scene: two squares of class "square" (1) and one disc (0) -------------------------------


def _scene() -> dict:
    image = np.full((H, W, 3), 120, np.uint8)
    image[..., 2] = np.linspace(60, 200, W, dtype=np.uint8)[None, :]
    objects = np.zeros((H, W), np.uint8)
    objects[8:32, 8:32] = 1  # square A
    objects[40:64, 12:36] = 2  # square B
    yy, xx = np.mgrid[0:H, 0:W]
    objects[(yy - 36) ** 2 + (xx - 70) ** 2 < 14**2] = 3  # disc
    classes = np.zeros((H, W), np.uint8)
    classes[(objects == 1) | (objects == 2)] = 2
    classes[objects == 3] = 1
    image[objects > 0] = [230, 200, 40]
    # Ground truth has a void border around the disc, as VOC does.
    ring = ((yy - 36) ** 2 + (xx - 70) ** 2 >= 14**2) & ((yy - 36) ** 2 + (xx - 70) ** 2 < 16**2)
    classes_gt = classes.copy()
    classes_gt[ring] = 255
    return {"image": image, "objects": objects, "semantic": classes, "class_gt": classes_gt}


def _displacement_towards(centres: list[tuple[float, float]], objects_grid: np.ndarray) -> np.ndarray:
    """Displacement (2, h, w) of each object pixel towards its object's centre on the grid; 0 on background."""
    grid_h, grid_w = objects_grid.shape
    yy, xx = np.mgrid[0:grid_h, 0:grid_w].astype(np.float32)
    field = np.zeros((2, grid_h, grid_w), np.float32)
    for index, (cy, cx) in enumerate(centres, start=1):
        mask = objects_grid == index
        field[0][mask] = (cy - yy)[mask]
        field[1][mask] = (cx - xx)[mask]
    return field


def _png_stats(path: Path) -> tuple[tuple[int, int], float]:
    with Image.open(path) as image:
        pixels = np.asarray(image.convert("RGB"), dtype=np.float64)
    return (pixels.shape[1], pixels.shape[0]), float(pixels.std())


def _assert_real_figure(path: Path, min_width: int = 400) -> None:
    (width, height), spread = _png_stats(path)
    assert width >= min_width and height >= 150, (path, width, height)
    assert spread > 20.0, (path, spread)  # a blank or single-colour PNG has a spread near 0


# ---- selection --------------------------------------------------------------------------------------------


def test_select_images_is_deterministic_prefers_training_images_and_ignores_order():
    eval_ids = [f"img_{i:03d}" for i in range(40)]
    train_ids = eval_ids[:10]
    chosen = select_images(eval_ids, train_ids, 8)
    assert len(chosen) == 8 and len(set(chosen)) == 8
    assert set(chosen) <= set(train_ids)  # 10 training images available, so all 8 are training images
    assert select_images(list(reversed(eval_ids)) + eval_ids[:3], reversed(train_ids), 8) == chosen
    assert select_images(eval_ids, train_ids, 12)[:10] == select_images(eval_ids, train_ids, 10)
    assert set(select_images(eval_ids, train_ids, 12)[10:]).isdisjoint(train_ids)
    assert select_images(eval_ids, [], 0) == []
    assert sorted(select_images(eval_ids[:3], [], 8)) == eval_ids[:3]
    with pytest.raises(ValueError):
        select_images(eval_ids, train_ids, -1)


def test_adding_an_image_changes_the_sample_by_at_most_one():
    eval_ids = [f"2026_{i:06d}" for i in range(60)]
    before = select_images(eval_ids, [], 8)
    after = select_images([*eval_ids, "2026_999999"], [], 8)
    assert len(set(before) - set(after)) <= 1


# ---- colours ----------------------------------------------------------------------------------------------


def test_displacement_colours_white_at_rest_and_hue_by_direction():
    field = np.zeros((2, 1, 4), np.float32)
    field[1, 0, 1] = 3.0  # right
    field[0, 0, 2] = 3.0  # down (image y axis)
    field[1, 0, 3] = -3.0  # left
    rgb = figures.displacement_rgb(field)
    np.testing.assert_allclose(rgb[0, 0], [1, 1, 1])
    np.testing.assert_allclose(rgb[0, 1], [1, 0, 0], atol=1e-9)  # hue 0: red
    np.testing.assert_allclose(rgb[0, 3], [0, 1, 1], atol=1e-9)  # opposite direction: cyan
    assert not np.allclose(rgb[0, 2], rgb[0, 1])
    wheel = figures.colour_wheel(33)
    assert wheel.shape == (33, 33, 4)
    assert wheel[0, 0, 3] == 0.0 and wheel[16, 16, 3] == 1.0
    np.testing.assert_allclose(wheel[16, 32, :3], [1, 0, 0], atol=1e-9)  # right edge of the key: red, like "right"


def test_label_colours_are_the_voc_palette():
    labels = np.array([[0, 1, 2, 255]], np.uint8)
    rgb = figures.label_rgb(labels, 3, special_rgb=(0.5, 0.5, 0.5))
    np.testing.assert_allclose(rgb[0, :3] * 255, voc_palette(3).astype(np.float64))
    np.testing.assert_allclose(rgb[0, 3], [0.5, 0.5, 0.5])


# ---- figures ----------------------------------------------------------------------------------------------


def test_stage_figures_are_real_pngs(tmp_path):
    scene = _scene()
    image = scene["image"]
    cams = np.zeros((2, H, W), np.float16)
    cams[0][scene["objects"] == 3] = 1.0
    cams[1][(scene["objects"] == 1) | (scene["objects"] == 2)] = 0.8
    objects_grid = scene["objects"][::4, ::4]
    field = _displacement_towards([(5, 5), (13, 6), (9, 17.5)], objects_grid)
    centroids = detect_centroids(field, objects_grid > 0, iterations=30, weak_threshold=2.5)
    # The figure draws extraction's own clusters: here the squares' weak regions touch through the background
    # (|D| ~ 0 there), so extraction groups two of them, and the figure shows exactly that.
    from irnet_core.instances import cluster_centroids, find_centroids
    from tests.defaults import WEAK_THRESHOLD

    clusters = cluster_centroids(find_centroids(field, 30), field, WEAK_THRESHOLD)
    assert len(centroids) == len(np.unique(clusters[objects_grid > 0])) >= 1
    masks = np.stack([scene["objects"] == k for k in (1, 2, 3)])
    relations = scene["semantic"].copy()
    relations[(scene["objects"] == 0) & (np.arange(W)[None, :] > 80)] = 255

    paths = {
        "cam": figures.save_png(figures.cam_figure(image, cams, [0, 1], CLASSES, "x · CAMs"), tmp_path / "cam.png"),
        "relations": figures.save_png(figures.relations_figure(image, relations, CLASSES, "x"), tmp_path / "rel.png"),
        "no_relations": figures.save_png(figures.relations_figure(image, None, CLASSES, "x"), tmp_path / "none.png"),
        "irnet": figures.save_png(
            figures.irnet_figure(image, np.random.default_rng(0).random(objects_grid.shape), field, centroids, "x"),
            tmp_path / "irnet.png",
        ),
        "pseudo": figures.save_png(
            figures.pseudo_label_figure(
                image,
                scene["semantic"],
                scene["class_gt"],
                masks,
                [1, 1, 0],
                [0.9, 0.0, 0.7],
                masks,
                [1, 1, 0],
                CLASSES,
                "x",
            ),
            tmp_path / "pseudo.png",
        ),
    }
    paths["no_instances"] = figures.save_png(
        figures.pseudo_label_figure(
            image, np.zeros((H, W), np.uint8), scene["class_gt"], masks[:0], [], [], masks[:0], [], CLASSES, "x"
        ),
        tmp_path / "empty.png",
    )
    for path in paths.values():
        _assert_real_figure(path)
    # A strip has one panel per present class plus the image: two classes give a wider figure than none.
    no_class = figures.save_png(figures.cam_figure(image, cams[:0], [], CLASSES, "x"), tmp_path / "cam0.png")
    assert _png_stats(paths["cam"])[0][0] > _png_stats(no_class)[0][0]


def test_match_instances_pairs_each_ground_truth_once_at_iou_half():
    gt = np.zeros((2, 10, 10), bool)
    gt[0, :5, :5] = True
    gt[1, 5:, 5:] = True
    pred = np.zeros((4, 10, 10), bool)
    pred[0, 5:, 5:] = True  # = gt 1
    pred[1, :5, :4] = True  # IoU 0.8 with gt 0
    pred[2, :5, :5] = True  # IoU 1.0 with gt 0: wins it
    pred[3, :2, :2] = True  # IoU 0.16: no match
    assert figures.match_instances(pred, gt) == [1, None, 0, None]
    assert figures.match_instances(pred[:0], gt) == []
    assert figures.match_instances(pred, gt[:0]) == [None] * 4


def test_detect_centroids_finds_one_centroid_per_object():
    objects = np.zeros((18, 24), np.uint8)
    objects[1:9, 1:9] = 1
    objects[10:17, 14:22] = 2
    field = _displacement_towards([(4.5, 4.5), (13.0, 17.5)], objects)
    centroids = detect_centroids(field, objects > 0, iterations=40, weak_threshold=2.5)
    assert centroids.shape == (2, 3)
    found = sorted(map(tuple, centroids[:, :2].round()))
    assert found[0] in {(4.0, 4.0), (4.0, 5.0), (5.0, 4.0), (5.0, 5.0)}
    assert abs(found[1][0] - 13) <= 1 and abs(found[1][1] - 17.5) <= 1
    assert centroids[:, 2].sum() <= np.count_nonzero(objects)
    # No foreground: nothing to draw, even though every background pixel "converges" where it stands.
    assert detect_centroids(field, np.zeros_like(objects, bool), 40, 2.5).shape == (0, 3)
    with pytest.raises(ValueError):
        detect_centroids(field, np.zeros((3, 3), bool), 40, 2.5)


def test_training_curves_have_the_panels_of_their_columns(tmp_path):
    cam_rows = [
        {
            "epoch": e,
            "step": 10 * e,
            "loss": 1 / e,
            "lr": 1e-3 / e,
            "seconds": 2.0,
            "val_loss": 1.1 / e,
            "val_map": 0.5 + e / 10,
            "val_label_accuracy": 0.6,
            "val_exact_match": 0.3,
        }
        for e in (1, 2, 3)
    ]
    fig = figures.training_curves_figure(cam_rows, "cam")
    assert [ax.get_title() for ax in fig.axes] == ["loss", "validation", "learning rate (end of epoch)"]
    assert [line.get_label() for line in fig.axes[0].lines] == ["training loss (loss)", "held-out loss (val_loss)"]
    np.testing.assert_allclose(fig.axes[0].lines[0].get_ydata(), [1, 0.5, 1 / 3])
    irnet_rows = [
        {
            "epoch": 1,
            "step": 4,
            "loss_pos_bg": 0.6,
            "loss_pos_fg": 0.5,
            "loss_neg": 0.7,
            "loss_disp_fg": 3.8,
            "loss_disp_bg": 0.9,
            "loss": 3.0,
            "lr": 0.03,
            "seconds": 14.6,
        }
    ]
    fig = figures.training_curves_figure(irnet_rows, "irnet")
    assert [ax.get_title() for ax in fig.axes] == ["loss", "loss terms", "learning rate (end of epoch)"]
    assert fig.axes[1].get_yscale() == "log" and len(fig.axes[1].lines) == 5
    _assert_real_figure(figures.save_png(fig, tmp_path / "irnet.png"))
    assert len(figures.training_curves_figure([], "empty").axes) == 1


def test_read_history_reads_floats_and_names_a_bad_cell(tmp_path):
    path = tmp_path / "train_log.csv"
    path.write_text("epoch,step,loss,val_map\n1,22,0.5,\n2,44,0.25,0.9\n")
    rows = read_history(path)
    assert rows[1] == {"epoch": 2.0, "step": 44.0, "loss": 0.25, "val_map": 0.9}
    assert np.isnan(rows[0]["val_map"])
    path.write_text("epoch,loss\n1,oops\n")
    with pytest.raises(ValueError, match=r"train_log.csv:2.*'loss'"):
        read_history(path)


# ---- tables -----------------------------------------------------------------------------------------------


class _Cells(html.parser.HTMLParser):
    """Collect the text of every table as rows of cell strings."""

    def __init__(self) -> None:
        super().__init__()
        self.tables: list[list[list[str]]] = []
        self._cell: list[str] | None = None

    def handle_starttag(self, tag, attrs):
        if tag == "table":
            self.tables.append([])
        elif tag == "tr":
            self.tables[-1].append([])
        elif tag in ("td", "th"):
            self._cell = []

    def handle_endtag(self, tag):
        if tag in ("td", "th") and self._cell is not None:
            self.tables[-1][-1].append("".join(self._cell))
            self._cell = None

    def handle_data(self, data):
        if self._cell is not None:
            self._cell.append(data)


def _tables(page: str) -> list[list[list[str]]]:
    parser = _Cells()
    parser.feed(page)
    return parser.tables


def test_metrics_page_merges_per_class_tables_and_lists_scalars():
    metrics = {
        "map50": 0.25,
        "n_images": 6,
        "per_class": {"disc": {"ap25": 0.5, "ap50": 0.25}, "square": {"ap25": None, "ap50": None}},
        "cam_baseline_per_class": {"disc": {"ap25": 0.125, "ap50": 0.0}, "square": {"ap25": 0.0, "ap50": 0.0}},
        "sweep": {"0.1": 0.2, "0.2": 0.3},
    }
    summary, per_class, sweep = _tables(tables.metrics_page(metrics, "Instances", value_name="AP"))
    assert summary == [["metric", "value"], ["map50", "0.250"], ["n_images", "6"]]
    assert per_class[0] == ["class", "ap25", "ap50", "cam baseline ap25", "cam baseline ap50"]
    assert per_class[1] == ["disc", "0.500", "0.250", "0.125", "0.000"]
    assert per_class[2] == ["square", "n/a", "n/a", "0.000", "0.000"]
    assert sweep == [["key", "value"], ["0.1", "0.200"], ["0.2", "0.300"]]
    semantic = _tables(
        tables.metrics_page({"miou": 0.5, "per_class": {"background": 0.9, "a<b": 0.1}}, "S", value_name="IoU")
    )
    assert semantic[1] == [["class", "IoU"], ["background", "0.900"], ["a<b", "0.100"]]  # escaped, read back


def test_benchmarks_page_has_every_job_and_totals(tmp_path):
    header = "s\th:m:s\tmax_rss\tmax_vms\tmax_uss\tmax_pss\tio_in\tio_out\tmean_load\tcpu_time\n"
    files = []
    for rule, job, seconds, rss in [
        ("train_cam", "train_cam", 77.8, 1452.04),
        ("infer_cam", "shard-0", 10.0, 900.0),
        ("infer_cam", "shard-1", 12.5, "-"),
    ]:
        path = tmp_path / "benchmarks" / rule / f"{job}.tsv"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(header + f"{seconds}\t0:00:10\t{rss}\t1\t2\t3\t0\t0\t50.0\t9.5\n")
        files.append(str(path))
    files.append(str(tmp_path / "benchmarks" / "summarize" / "missing.tsv"))
    rows = tables.read_benchmarks(files)
    assert [(r.rule, r.job) for r in rows] == [
        ("train_cam", "train_cam"),
        ("infer_cam", "shard-0"),
        ("infer_cam", "shard-1"),
    ]
    assert rows[2].max_rss_mb is None and rows[0].max_rss_mb == pytest.approx(1452.04)
    per_rule, per_job = _tables(tables.benchmarks_page(rows))
    assert per_rule[1] == ["train_cam", "1", "77.8", "77.8", "1452"]
    assert per_rule[2] == ["infer_cam", "2", "22.5", "12.5", "900"]
    assert per_rule[-1] == ["all jobs", "3", "100.3", "77.8", "1452"]
    assert per_job[1] == ["train_cam", "train_cam", "77.8", "0:01:18", "1452", "2", "9.5", "50"]
    assert per_job[2][2] == "10.0"  # one number of decimals per column
    assert len(per_job) == 4 and per_job[3][4] == "n/a"


# ---- entry points on real stores --------------------------------------------------------------------------


def _write_stores(root: Path, image_id: str, scene: dict) -> dict[str, str]:
    """One-image stores of every stage, in the layout the pipeline writes, plus the dataset files."""
    objects_grid = scene["objects"][::4, ::4]
    cams = np.zeros((2, H, W), np.float16)
    cams[0][scene["objects"] == 3] = 1.0
    cams[1][(scene["objects"] == 1) | (scene["objects"] == 2)] = 1.0
    arrays = {
        "cam": ({"high_res": cams, "cam": cams[:, ::4, ::4]}, {"keys": [0, 1], "size": [H, W]}),
        "relations": ({"labels": scene["semantic"]}, {}),
        "irnet": (
            {
                "boundary": np.zeros(objects_grid.shape, np.float16),
                "displacement": _displacement_towards([(5, 5), (13, 6), (9, 17.5)], objects_grid).astype(np.float16),
            },
            {},
        ),
        "semantic": ({"labels": scene["semantic"]}, {}),
        "instances": (
            {
                "instance_map": scene["objects"].astype(np.int32),
                "classes": np.array([1, 1, 0], np.int64),
                "scores": np.array([0.9, 0.8, 0.7], np.float32),
            },
            {},
        ),
    }
    paths = {}
    for stage, (data, attrs) in arrays.items():
        path = root / "results" / stage / "shard-0.zarr"
        with ShardWriter(path, stage=stage, image_ids=[image_id]) as writer:
            writer.write(image_id, data, attrs)
        paths[stage] = str(path)
    voc = root / "VOC"  # the image and its ground truth, read through the dataset interface as the workflow does
    for sub in ("JPEGImages", "SegmentationClass", "SegmentationObject"):
        (voc / sub).mkdir(parents=True, exist_ok=True)
    Image.fromarray(scene["image"]).save(voc / f"JPEGImages/{image_id}.jpg", quality=95)
    write_palette_png(voc / f"SegmentationClass/{image_id}.png", scene["class_gt"])
    write_palette_png(voc / f"SegmentationObject/{image_id}.png", scene["objects"])
    paths["dataset"] = VOCDataset(voc, classes=CLASSES)
    return paths


def test_report_figures_writes_four_real_pngs(tmp_path):
    stores = _write_stores(tmp_path, "2026_000001", _scene())
    outs = {
        kind: tmp_path / "report" / f"2026_000001_{kind}.png" for kind in ("cam", "relations", "irnet", "pseudo_labels")
    }
    inputs_and_outputs = {
        "dataset": stores["dataset"],
        "cam_store": stores["cam"],
        "relations_store": stores["relations"],
        "irnet_store": stores["irnet"],
        "semantic_store": stores["semantic"],
        "instance_store": stores["instances"],
        **{f"out_{kind}": str(path) for kind, path in outs.items()},
    }
    report_figures(
        image_id="2026_000001", instances={"centroid_iterations": 30, "weak_threshold": 2.5}, **inputs_and_outputs
    )
    for path in outs.values():
        _assert_real_figure(path)
    with pytest.raises(ValueError, match=r"2026_000002\.jpg: image file does not exist"):
        report_figures(
            image_id="2026_000002", instances={"centroid_iterations": 3, "weak_threshold": 2.5}, **inputs_and_outputs
        )


def test_report_curves_and_tables_write_their_files(tmp_path):
    cam_log = tmp_path / "cam.csv"
    cam_log.write_text(
        "epoch,step,loss,lr,seconds,val_loss,val_map,val_label_accuracy,val_exact_match\n"
        "1,22,0.47,0.00098,84.0,0.48,0.79,0.86,0.4\n2,44,0.36,0.00094,7.2,0.27,0.90,0.91,0.55\n"
    )
    irnet_log = tmp_path / "irnet.csv"
    irnet_log.write_text(
        "epoch,step,loss_pos_bg,loss_pos_fg,loss_neg,loss_disp_fg,loss_disp_bg,loss,lr,seconds\n"
        "1,4,0.62,0.56,0.70,3.79,0.94,3.01,0.029,14.6\n2,8,0.5,0.4,0.6,2.0,0.5,2.0,0.01,14.0\n"
    )
    report_curves(
        cam_history=str(cam_log),
        irnet_history=str(irnet_log),
        out_cam=str(tmp_path / "c.png"),
        out_irnet=str(tmp_path / "i.png"),
    )
    _assert_real_figure(tmp_path / "c.png")
    _assert_real_figure(tmp_path / "i.png")

    for name, data in {
        "cam": {
            "miou": 0.31,
            "threshold": 0.15,
            "sweep": {"0.1": 0.26},
            "per_class": {"background": 0.75, "disc": 0.35},
        },
        "semantic": {"miou": 0.4, "per_class": {"background": 0.8, "disc": None}},
        "instances": {
            "map50": 0.1,
            "per_class": {"disc": {"ap50": 0.1}},
            "cam_baseline_per_class": {"disc": {"ap50": 0.05}},
        },
    }.items():
        (tmp_path / f"{name}.json").write_text(json.dumps(data))
    bench = tmp_path / "benchmarks" / "train_cam" / "train_cam.tsv"
    bench.parent.mkdir(parents=True)
    bench.write_text(
        "s\th:m:s\tmax_rss\tmax_vms\tmax_uss\tmax_pss\tio_in\tio_out\tmean_load\tcpu_time\n"
        "77.80\t0:01:17\t1452.04\t4931.74\t1144.89\t1255.80\t0.09\t20.11\t56.00\t43.82\n"
    )
    outs = {k: tmp_path / "tables" / f"{k}.html" for k in ("cam", "semantic", "instances", "benchmarks")}
    report_tables(
        cam_metrics=str(tmp_path / "cam.json"),
        semantic_metrics=str(tmp_path / "semantic.json"),
        instance_metrics=str(tmp_path / "instances.json"),
        benchmark_files=[str(bench), str(tmp_path / "nope.tsv")],
        out_cam=str(outs["cam"]),
        out_semantic=str(outs["semantic"]),
        out_instances=str(outs["instances"]),
        out_benchmarks=str(outs["benchmarks"]),
    )
    cam_tables = _tables(outs["cam"].read_text())
    assert cam_tables[1] == [["class", "IoU"], ["background", "0.750"], ["disc", "0.350"]]
    assert _tables(outs["instances"].read_text())[1][0] == ["class", "ap50", "cam baseline ap50"]
    assert _tables(outs["semantic"].read_text())[1][2] == ["disc", "n/a"]
    per_job = _tables(outs["benchmarks"].read_text())[1]
    assert per_job[1][:5] == ["train_cam", "train_cam", "77.8", "0:01:18", "1452"]


@pytest.mark.parametrize("calibrated", [True, False], ids=["calibrated", "label-free"])
def test_calibration_curves_are_a_real_png_with_one_panel_per_swept_threshold(tmp_path, calibrated):
    grid = [0.1, 0.3, 0.5, 0.7]
    curve = {f"{t:g}": t * (1 - t) for t in grid} if calibrated else None
    edges = {f"{t:g}": 1 - abs(t - 0.5) for t in grid}
    entry = {"value": 0.5, "method": "calibrated" if calibrated else "label-free", "metric": "mIoU" if calibrated else None,
             "curve": curve, "label_free": 0.5, "label_free_curve": edges}  # fmt: skip
    calibration = {
        "method": entry["method"],
        "n_images": 4,
        "thresholds": {
            "cam": entry,
            "conf_fg": {"value": 0.7},
            "conf_bg": {"value": 0.2},
            "semantic": entry,
            "instances": entry,
        },
    }
    path = tmp_path / "calibration.json"
    path.write_text(json.dumps(calibration))
    report_calibration(calibration=str(path), out_png=str(tmp_path / "curves.png"))
    with Image.open(tmp_path / "curves.png") as image:
        pixels = np.asarray(image.convert("RGB"), dtype=np.float64)
    assert pixels.shape[1] > 3 * pixels.shape[0] and pixels.std() > 20  # three panels side by side, not blank
