"""Self-training rounds measured per round and per class (issue 24, item 3), on the demo's generator.

Runs the workflow with the demo's layer (configs/demo.yaml) and ``self_training.rounds`` = R in one work
folder per preset and seed, or adds the rounds to a finished ``bench/quality.py`` run (``--reuse``: its
work folder and its ``bench.yaml`` layer; only the rounds, the Mask R-CNN trainings and what reads them run).

    python bench/self_training.py [--preset standard hard] [--seed 0] [--rounds 2] [--workdir /tmp/irnet-rounds]
                                  [--val 50] [--cores 2] [--layer extra.yaml ...]
    python bench/self_training.py --reuse /tmp/irnet-quality/hard-0-label-free [--rounds 2]

Prints, per run, each round's targets on the evaluated training images (mAP50, mAP75, recall at IoU 0.5, share
of objects merged with another of their class) and, with a val list (``--val`` images; not with ``--reuse``,
whose runs have none), the val mAP50 / mAP75 of the Mask R-CNN trained on them; then AP50 per class and round,
and the wall seconds of the round stages. Appends every run's figures to ``<workdir>/rounds.jsonl`` and prints
the mean and spread over seeds of each round's figures, per preset. Last line per run:
``rounds preset=<p> seed=<s> round=<J> map50=<...> map75=<...> recall50=<...> merged=<...> val_map50=<...>``.
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
from quality import spread  # noqa: E402
from stage_times import stage_times  # noqa: E402

ROUND_STAGES = (
    "train_instance_model",
    "predict_train_instances",
    "combine_round",
    "predict_instances",
    "evaluate_round",
)


def run(workdir: Path, layers: list[Path], cores: int) -> float:
    (workdir / "config.yaml").write_text((REPO / "config.yaml").read_text())  # the Snakefile's first layer
    command = [
        sys.executable, "-m", "snakemake", "results/summary.json", "-s", str(REPO / "Snakefile"), "-d", str(workdir),
        "--cores", str(cores), "--quiet", "rules", "--rerun-incomplete", "--configfile",
        str(REPO / "configs/demo.yaml"), *(str(path.resolve()) for path in layers),
    ]  # fmt: skip
    start = time.perf_counter()
    subprocess.run(command, check=True)
    return time.perf_counter() - start


def round_figures(workdir: Path) -> list[dict]:
    summary = json.loads((workdir / "results/summary.json").read_text())
    rounds = []
    for entry in summary.get("self_training", []):
        targets, val = entry["targets"], entry.get("val_model")
        rounds.append({
            "round": entry["round"],
            **{key: targets[key] for key in ("map50", "map75", "recall50", "merged", "n_instances")},
            "val_map50": val["map50"] if val else None,
            "val_map75": val["map75"] if val else None,
            "per_class_ap50": {name: row["ap50"] for name, row in targets["per_class"].items()},
            "val_per_class_ap50": {name: row["ap50"] for name, row in val["per_class"].items()} if val else None,
        })  # fmt: skip
    return rounds


def pct(value) -> str:
    return f"{'-':>7}" if value is None else f"{100 * value:7.1f}"


def print_run(label: str, rounds: list[dict], seconds: dict[str, float]) -> None:
    print(f"\n{label}")
    print(f"  {'round':<7}{'mAP50':>7}{'mAP75':>7}{'recall':>7}{'merged':>7}{'val50':>7}{'val75':>7}{'n':>6}")
    for r in rounds:
        cells = "".join(pct(r[k]) for k in ("map50", "map75", "recall50", "merged", "val_map50", "val_map75"))
        print(f"  {r['round']:<7}{cells}{r['n_instances']:>6}")
    print(f"  {'AP50 per class':<16}" + "".join(f"{'r' + str(r['round']):>7}" for r in rounds)
          + ("   val: " + "".join(f"{'r' + str(r['round']):>7}" for r in rounds) if rounds[0]["val_map50"] is not None else ""))  # fmt: skip
    for name in rounds[0]["per_class_ap50"]:
        row = "".join(pct(r["per_class_ap50"][name]) for r in rounds)
        if rounds[0]["val_per_class_ap50"]:
            row += "        " + "".join(pct(r["val_per_class_ap50"][name]) for r in rounds)
        print(f"  {name:<16}{row}")
    print("  round stages (wall s): " + ", ".join(f"{k} {v:.0f}" for k, v in seconds.items()))


def print_spread(records: list[dict]) -> None:
    by_preset: dict[str, list[dict]] = {}
    for record in records:
        by_preset.setdefault(record["preset"], []).append(record)
    for preset, group in by_preset.items():
        print(f"\n{preset}: mean ± sd over seeds {', '.join(str(r['seed']) for r in group)}")
        for index in range(min(len(r["rounds"]) for r in group)):
            cells = []
            for key in ("map50", "map75", "recall50", "merged", "val_map50"):
                values = [r["rounds"][index][key] for r in group if r["rounds"][index][key] is not None]
                cells.append(f"{key} {spread(values)}" if values else f"{key} -")
            print(f"  round {index}: " + ", ".join(cells))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--preset", nargs="+", default=["standard", "hard"])
    parser.add_argument("--seed", nargs="+", type=int, default=[0])
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--val", type=int, default=50, help="val images (final models per round)")
    parser.add_argument("--workdir", type=Path, default=Path("/tmp/irnet-rounds"))
    parser.add_argument("--reuse", nargs="*", type=Path, default=[], help="finished bench/quality.py run folders")
    parser.add_argument("--cores", type=int, default=2)
    parser.add_argument("--layer", nargs="*", type=Path, default=[], help="extra config layers, applied last")
    args = parser.parse_args()

    jobs = []
    if args.reuse:
        for folder in args.reuse:
            bench = yaml.safe_load((folder / "bench.yaml").read_text())
            jobs.append((folder, folder / "bench.yaml", bench["demo"]["preset"], bench["demo"]["seed"]))
    else:
        for preset in args.preset:
            for seed in args.seed:
                folder = args.workdir / f"{preset}-{seed}"
                folder.mkdir(parents=True, exist_ok=True)
                layer = {"demo": {"preset": preset, "seed": seed, "n_val": args.val}}
                (folder / "bench.yaml").write_text(yaml.safe_dump(layer, sort_keys=False))
                jobs.append((folder, folder / "bench.yaml", preset, seed))
    records = []
    for folder, layer, preset, seed in jobs:
        rounds_layer = folder / "rounds.yaml"
        rounds_layer.write_text(yaml.safe_dump({"self_training": {"rounds": args.rounds}}))
        wall = run(folder, [layer, rounds_layer, *args.layer], args.cores)
        rounds = round_figures(folder)
        times = stage_times(folder)
        seconds = {stage: times[stage][0] for stage in ROUND_STAGES if stage in times}
        record = {"preset": preset, "seed": seed, "rounds": rounds, "stage_seconds": seconds, "wall": wall}
        records.append(record)
        log_dir = args.workdir if not args.reuse else folder.parent
        log_dir.mkdir(parents=True, exist_ok=True)
        with open(log_dir / "rounds.jsonl", "a") as handle:
            handle.write(json.dumps(record) + "\n")
        print_run(f"{preset} seed {seed} ({folder}, {wall:.0f} s)", rounds, seconds)
        for r in rounds:
            print(f"rounds preset={preset} seed={seed} round={r['round']} map50={r['map50']} map75={r['map75']} "
                  f"recall50={r['recall50']} merged={r['merged']} val_map50={r['val_map50']}")  # fmt: skip
    print_spread(records)


if __name__ == "__main__":
    main()
