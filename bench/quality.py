"""Pseudo-label quality with fixed, calibrated and label-free thresholds, on the demo's generator.

Runs the whole workflow (the demo's settings, configs/demo.yaml) in one work folder per preset and seed, three
times with different threshold settings; Snakemake reruns only what each change touches (relation mining and
everything after it, since conf_fg / conf_bg feed IRNet's training):

- ``fixed``: the numbers the demo used before `auto` existed (hand-tuned on the standard preset's evaluated
  images: CAM 0.7, conf_fg 0.70, conf_bg 0.45, random walk 0.25, instances 0.25, baseline 0.7);
- ``calibrated``: every threshold `auto`, chosen on the calibration list (40 images outside the eval list);
- ``label-free``: every threshold `auto` without a calibration list (the label-free rules).

Scores are on the eval list (the demo's `train` list), disjoint from the calibration images.

    python bench/quality.py [--preset standard hard] [--seed 0] [--workdir /tmp/irnet-quality] [--cores 2]
                            [--layer extra.yaml ...]

``--layer`` adds config layers after the variant's (e.g. a longer IRNet training), to measure a change with the
same three threshold settings.

After each run, bench/diagnostics.py prints the per-stage diagnostics of that run. Prints one table per preset
and seed with its per-class table beside it (CAM IoU at the used threshold, random-walk IoU, AP50; a class whose
random-walk IoU is more than 2 points below its CAM IoU is marked ``LEAK``), then the mean and spread (sample
standard deviation) over the seeds of each preset and variant, and a last line per run:
``quality preset=<p> seed=<s> variant=<v> cam=<best CAM mIoU> cam_at=<CAM mIoU at the used threshold>
rw=<random-walk mIoU> map50=<...> map75=<...> cam_components_map50=<...> seconds=<wall>``.
Every run's figures, per class and per stage (wall and CPU seconds), are appended to ``<workdir>/quality.jsonl``.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "bench"))
from stage_times import stage_times  # noqa: E402

# A class whose random-walk IoU falls this many points below its CAM IoU is flagged (issue 18's rule).
LEAK_POINTS = 2.0

FIXED = {
    "cam": {"eval": {"threshold": 0.7}},
    "relations": {"conf_fg": 0.70, "conf_bg": 0.45},
    "random_walk": {"sem_bg_threshold": 0.25},
    "instances": {"bg_threshold": 0.25},
    "evaluation": {"cam_baseline_threshold": 0.7},
}
AUTO = {
    "cam": {"eval": {"threshold": "auto"}},
    "relations": {"conf_fg": "auto", "conf_bg": "auto"},
    "random_walk": {"sem_bg_threshold": "auto"},
    "instances": {"bg_threshold": "auto"},
    "evaluation": {"cam_baseline_threshold": "auto"},
}
CALIBRATION_LIST = "ImageSets/Segmentation/calibration.txt"


def variant_layer(variant: str, preset: str, seed: int) -> dict:
    layer = json.loads(json.dumps(FIXED if variant == "fixed" else AUTO))
    # The calibration images exist in every variant (the dataset stays the same); only `calibrated` uses them.
    # No val split: the final models add nothing to these figures and would double the run.
    layer["demo"] = {"preset": preset, "seed": seed, "n_calibration": 40, "n_val": 0}
    layer["dataset"] = {"calibration_list": CALIBRATION_LIST if variant == "calibrated" else None, "val_list": None}
    return layer


def run(workdir: Path, layer: dict, cores: int, extra_layers: list[Path]) -> float:
    workdir.mkdir(parents=True, exist_ok=True)
    (workdir / "bench.yaml").write_text(yaml.safe_dump(layer, sort_keys=False))
    (workdir / "config.yaml").write_text((REPO / "config.yaml").read_text())  # the Snakefile's first layer
    command = [
        sys.executable, "-m", "snakemake", "results/summary.json", "-s", str(REPO / "Snakefile"), "-d", str(workdir),
        "--cores", str(cores), "--quiet", "rules", "--rerun-incomplete", "--configfile", str(REPO / "configs/demo.yaml"),
        str(workdir / "bench.yaml"), *(str(path.resolve()) for path in extra_layers),
    ]  # fmt: skip
    start = time.perf_counter()
    subprocess.run(command, check=True)
    return time.perf_counter() - start


def scores(workdir: Path) -> dict:
    def load(name):
        return json.loads((workdir / "results/eval" / name).read_text())

    cam, semantic, instances = load("cam.json"), load("semantic.json"), load("instances.json")
    summary = json.loads((workdir / "results/summary.json").read_text())
    return {
        "cam": cam["best_miou"],
        "cam_at": cam["miou"],
        "rw": semantic["miou"],
        "map50": instances["map50"],
        "map75": instances["map75"],
        "cam_components_map50": instances["map50_cam_baseline"],
        "thresholds": {key: entry["value"] for key, entry in summary["thresholds"].items()},
        "per_class": {
            name: {
                "cam": cam["per_class"].get(name),
                "rw": semantic["per_class"].get(name),
                "ap50": instances["per_class"].get(name, {}).get("ap50"),
                "ap75": instances["per_class"].get(name, {}).get("ap75"),
            }
            for name in semantic["per_class"]
        },
    }


def per_class_table(result: dict) -> str:
    lines = [f"    {'class':12}{'CAM':>7}{'RW':>7}{'AP50':>7}{'AP75':>7}"]
    for name, row in result["per_class"].items():
        cells = "".join(
            f"{100 * row[k]:7.1f}" if row[k] is not None else f"{'-':>7}" for k in ("cam", "rw", "ap50", "ap75")
        )
        leak = "  LEAK" if 100 * (row["cam"] - row["rw"]) > LEAK_POINTS else ""
        lines.append(f"    {name:12}{cells}{leak}")
    return "\n".join(lines)


def spread(values: list[float]) -> str:
    """'mean ± sample sd' in points (sd left out for one value)."""
    n = len(values)
    mean = sum(values) / n
    if n == 1:
        return f"{100 * mean:.1f}"
    sd = (sum((v - mean) ** 2 for v in values) / (n - 1)) ** 0.5
    return f"{100 * mean:.1f} ± {100 * sd:.1f}"


def print_spread(records: list[dict]) -> None:
    """Mean and spread over seeds, per preset and variant, for the means and every class."""
    groups: dict[tuple, list[dict]] = {}
    for record in records:
        groups.setdefault((record["preset"], record["variant"]), []).append(record)
    for (preset, variant), group in groups.items():
        seeds = ", ".join(str(r["seed"]) for r in group)
        print(f"\n{preset} preset, {variant}, seeds {seeds}: mean ± sd (points)")
        for key in ("cam", "cam_at", "rw", "map50", "map75"):
            print(f"    {key:12}{spread([r[key] for r in group]):>14}")
        print(f"    {'class':12}{'CAM':>14}{'RW':>14}{'AP50':>14}")
        for name in group[0]["per_class"]:
            cells = []
            for key in ("cam", "rw", "ap50"):
                values = [r["per_class"][name][key] for r in group if r["per_class"][name][key] is not None]
                cells.append(f"{spread(values):>14}" if values else f"{'-':>14}")
            print(f"    {name:12}" + "".join(cells))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--preset", nargs="+", default=["standard", "hard"])
    parser.add_argument("--seed", nargs="+", type=int, default=[0])
    parser.add_argument("--variant", nargs="+", default=["fixed", "calibrated", "label-free"])
    parser.add_argument("--workdir", type=Path, default=Path("/tmp/irnet-quality"))
    parser.add_argument("--cores", type=int, default=2)
    parser.add_argument("--layer", nargs="*", type=Path, default=[], help="extra config layers, applied last")
    args = parser.parse_args()
    lines = []
    records = []
    for preset in args.preset:
        for seed in args.seed:
            workdir = args.workdir / f"{preset}-seed{seed}"
            rows = {}
            for variant in args.variant:
                seconds = run(workdir, variant_layer(variant, preset, seed), args.cores, args.layer)
                rows[variant] = scores(workdir)
                # Where the random walk's gain is lost, for this variant's run (bench/diagnostics.py).
                subprocess.run([sys.executable, str(REPO / "bench/diagnostics.py"), str(workdir)], check=True)
                result = rows[variant]
                record = {"preset": preset, "seed": seed, "variant": variant, "layers": [str(p) for p in args.layer],
                          "seconds": seconds, **result,
                          "stages": {rule: {"wall": w, "cpu": c} for rule, (w, c) in stage_times(workdir).items()}}  # fmt: skip
                records.append(record)
                with open(args.workdir / "quality.jsonl", "a") as handle:
                    handle.write(json.dumps(record) + "\n")
                lines.append(
                    f"quality preset={preset} seed={seed} variant={variant} "
                    + " ".join(
                        f"{k}={100 * result[k]:.1f}"
                        for k in ("cam", "cam_at", "rw", "map50", "map75", "cam_components_map50")
                    )
                    + f" seconds={seconds:.0f}"
                )
                print(lines[-1], flush=True)
            print(f"\n{preset} preset, seed {seed} (scores in %, on the eval list)")
            print(
                f"{'':12}{'CAM best':>9}{'CAM used':>9}{'RW':>7}{'mAP50':>7}{'mAP75':>7}{'CAM comp.':>10}  thresholds"
            )
            for variant, r in rows.items():
                used = " ".join(f"{k.split('.')[-1]}={v:g}" for k, v in r["thresholds"].items())
                print(f"{variant:12}{100 * r['cam']:9.1f}{100 * r['cam_at']:9.1f}{100 * r['rw']:7.1f}"
                      f"{100 * r['map50']:7.1f}{100 * r['map75']:7.1f}{100 * r['cam_components_map50']:10.1f}  {used}")  # fmt: skip
                print(per_class_table(r))
    print_spread(records)
    print()
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
