"""Planning cost of the workflow at scale: dry runs of a synthetic 10,000- and 100,000-image configuration.

No real images are needed. The script builds a PASCAL-VOC-layout folder whose images and annotations are empty
files (the DAG is built from the id lists and only stat()s the files), copies the workflow next to it with
configs/voc12.yaml pointed at that folder, and times three Snakemake invocations per size:

  parse    `snakemake --list-rules`: Snakefile + rules/common.smk (config validation, lists, existence checks)
  plan     `snakemake -n` with no outputs yet: parse + the whole DAG (every job to run)
  no-op    `snakemake -n` after every output exists: what a user waits for when nothing is left to do. The
           outputs are empty files and folders, then `snakemake --touch` gives them mtimes in DAG order; the
           touch runs with small patches (see mark_done_here): it also records each job's metadata (code,
           params, input list, checksums), which plain `--touch` does not, so the no-op run checks provenance
           as after a real run
  no-op, compute.device auto (up to 10,000 images, or with --device-auto): the same with voc12.yaml's device
           setting, whose CUDA check imports torch while the DAG is built

Each figure is the wall time of a fresh `python -m snakemake` process (interpreter and Snakemake start-up
included, as a user sees it), the best of --repeat runs, with its CPU time (user + sys) beside it: on a busy
machine the wall time includes waiting for a core, the CPU time does not. Job counts per rule come from the
dry run.

    python bench/plan_scale.py                      # 10,000 and 100,000 images, default shard counts
    python bench/plan_scale.py --images 10000 --shards 32 --repeat 3
    python bench/plan_scale.py --images 2000 --keep /tmp/plan   # keep the folder, e.g. to profile a dry run
    python bench/plan_scale.py --images 10000 --source /tmp/patched  # the workflow files of another checkout
    python bench/plan_scale.py --images 10000 --infer eval      # VOC's setting: pseudo-labels for `train` only
    python bench/plan_scale.py --images 82783 --infer-images 40504  # COCO 2014: train2014 trains, val2014 labelled

The goal is a no-op dry run of the 10,000-image configuration in at most 5 s. Both default sizes take about
8 minutes on 2 cores, most of it marking the 100,000-image outputs done. Results, bottlenecks and shard
guidance: docs/scaling.md.
"""

from __future__ import annotations

import argparse
import os
import re
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))  # irnet_core and the test helpers of this checkout

from tests.workflow.dryrun import copy_workflow, job_counts  # noqa: E402

GOAL_NOOP_S = 5.0
GOAL_IMAGES = 10_000


def default_shards(n_images: int) -> int:
    """The docs/scaling.md rule of thumb: about 500 images per shard, at least 4 shards."""
    return max(4, round(n_images / 500))


# ---- the synthetic dataset and workflow copy ---------------------------------------------------------------


def synthesize_voc(root: Path, n_images: int, eval_every: int) -> dict[str, int]:
    """Empty files in VOC 2012 layout: every id in train_aug, every `eval_every`-th also in train (with
    ground-truth PNGs), like VOC's 10,582 / 1,464."""
    ids = [f"2026_{i:06d}" for i in range(1, n_images + 1)]
    eval_ids = ids[::eval_every]
    folders = {name: root / name for name in ("JPEGImages", "Annotations", "SegmentationClass", "SegmentationObject")}
    for folder in folders.values():
        folder.mkdir(parents=True, exist_ok=True)
    lists = root / "ImageSets" / "Segmentation"
    lists.mkdir(parents=True, exist_ok=True)
    for image_id in ids:
        (folders["JPEGImages"] / f"{image_id}.jpg").touch()
        (folders["Annotations"] / f"{image_id}.xml").touch()
    for image_id in eval_ids:
        (folders["SegmentationClass"] / f"{image_id}.png").touch()
        (folders["SegmentationObject"] / f"{image_id}.png").touch()
    (lists / "train_aug.txt").write_text("\n".join(ids) + "\n")
    (lists / "train.txt").write_text("\n".join(eval_ids) + "\n")
    return {"train": len(ids), "eval": len(eval_ids)}


def synthesize_infer_split(root: Path, n_images: int, eval_every: int) -> dict[str, int]:
    """A second split of empty files outside the training list, as COCO's val2014 beside train2014: `infer.txt`
    (every image) and `infer_eval.txt` (every `eval_every`-th, with ground truth)."""
    ids = [f"3026_{i:06d}" for i in range(1, n_images + 1)]
    eval_ids = ids[::eval_every]
    for image_id in ids:
        (root / "JPEGImages" / f"{image_id}.jpg").touch()
        (root / "Annotations" / f"{image_id}.xml").touch()
    for image_id in eval_ids:
        (root / "SegmentationClass" / f"{image_id}.png").touch()
        (root / "SegmentationObject" / f"{image_id}.png").touch()
    lists = root / "ImageSets" / "Segmentation"
    (lists / "infer.txt").write_text("\n".join(ids) + "\n")
    (lists / "infer_eval.txt").write_text("\n".join(eval_ids) + "\n")
    return {"infer": len(ids), "eval": len(eval_ids)}


def make_workdir(
    workdir: Path, source: Path, n_images: int, shards: int, eval_every: int, infer: str, infer_images: int = 0
) -> dict[str, int]:
    """Copy the workflow of `source`, synthesise the dataset, write bench.yaml (configs/voc12.yaml, adapted).

    infer `all`: pseudo-labels for every training image (the list a segmentation network is then trained on;
    the largest DAG); `eval`: for the eval list only, as configs/voc12.yaml does for VOC's `train`.
    """
    copy_workflow(source, workdir)
    sizes = synthesize_voc(workdir / "data" / "VOC", n_images, eval_every)
    config = yaml.safe_load((source / "configs" / "voc12.yaml").read_text())
    config["dataset"].update(
        {
            "root": "data/VOC",
            "train_list": "ImageSets/Segmentation/train_aug.txt",
            "infer_list": "ImageSets/Segmentation/" + ("train_aug.txt" if infer == "all" else "train.txt"),
            "eval_list": "ImageSets/Segmentation/train.txt",
            # configs/voc12.yaml's val list feeds the final models, which this bench leaves out (it has no val split).
            "val_list": None,
        }
    )
    if infer_images:  # pseudo-labels for another split (COCO: train2014 trains, val2014 is labelled)
        split = synthesize_infer_split(workdir / "data" / "VOC", infer_images, eval_every)
        config["dataset"].update(
            {"infer_list": "ImageSets/Segmentation/infer.txt", "eval_list": "ImageSets/Segmentation/infer_eval.txt"}
        )
        sizes.update(split)
    # device cpu: with `auto` (voc12.yaml's value) rules/common.smk imports torch at parse time to look for CUDA,
    # a fixed cost that would blur how planning scales; it is timed on its own (a no-op with device auto), for
    # sizes up to GOAL_IMAGES or with --device-auto.
    config["compute"].update({"shards": shards, "device": "cpu"})
    (workdir / "bench.yaml").write_text(yaml.safe_dump(config, sort_keys=False))
    return sizes


# ---- running Snakemake ---------------------------------------------------------------------------------------


class Timing(tuple):
    """(wall seconds, CPU seconds) of one child process."""

    wall = property(lambda self: self[0])
    cpu = property(lambda self: self[1])

    def __str__(self) -> str:
        return f"{self.wall:7.2f} s  (CPU {self.cpu:6.2f} s)"


def _children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def run_timed(cmd: list[str], workdir: Path, what: str, timeout: float = 3600) -> tuple[Timing, str]:
    env = {**os.environ, "PYTHONWARNINGS": "ignore"}
    cpu0, start = _children_cpu(), time.perf_counter()
    proc = subprocess.run(cmd, cwd=workdir, capture_output=True, text=True, timeout=timeout, env=env)
    timing = Timing((time.perf_counter() - start, _children_cpu() - cpu0))
    text = proc.stdout + proc.stderr
    if proc.returncode != 0:
        raise SystemExit(f"{what} failed ({proc.returncode}):\n{text[-4000:]}")
    return timing, text


def snakemake(workdir: Path, *args: str) -> tuple[Timing, str]:
    cmd = [sys.executable, "-m", "snakemake", "--configfile", "bench.yaml", "--cores", "2", *args]
    return run_timed(cmd, workdir, f"snakemake {' '.join(args)}")


def best_of(repeat: int, workdir: Path, *args: str) -> tuple[Timing, str]:
    runs = [snakemake(workdir, *args) for _ in range(repeat)]
    return min(r[0] for r in runs), runs[-1][1]


def planned_outputs(text: str) -> list[str]:
    """Output paths of every job of a (non-quiet) dry run, in the order the jobs are listed."""
    outputs: list[str] = []
    for line in text.splitlines():
        match = re.match(r"^\s+output:\s+(.*)$", line)
        if match:
            outputs += [p.strip() for p in match.group(1).split(",") if p.strip()]
    return outputs


def is_directory_output(path: str) -> bool:
    # The workflow's directory() outputs: the Zarr stores and the exported PNG folder (no suffix).
    return path.endswith(".zarr") or not Path(path).suffix


def mark_done_here(args: list[str]) -> None:
    """`snakemake --touch` in this process, recording each touched job's metadata as a finished real job would.

    Three patches of Snakemake 9 internals, for this step only (the timed dry runs are unpatched):
    - the touch executor only updates mtimes; without metadata records a later dry run skips the params /
      code / input / software-env checks it does after a real run, and would look cheaper than it is;
    - before every job selection the scheduler stats every input of every ready job to rank them by input
      size (`JobScheduler.update_input_sizes`): at 100,000 images that is seconds per job, over an hour for
      the whole touch; here every size reads as unknown, which only changes the order of the touches;
    - the touch executor sleeps 0.1 s per job so that mtimes follow the DAG; 1 ms is enough on file systems
      with sub-second mtimes (ext4, xfs, tmpfs).
    """
    from collections import defaultdict

    import snakemake.executors.touch as touch_executor
    import snakemake.scheduling.job_scheduler as job_scheduler
    from snakemake.cli import main as snakemake_main

    run_job = touch_executor.Executor.run_job

    def run_job_and_record(self, job):
        run_job(self, job)
        self.workflow.async_run(self.workflow.persistence.finished(job))

    async def unknown_input_sizes(self, jobs):
        if not isinstance(self._input_sizes, defaultdict):
            self._input_sizes = defaultdict(lambda: None)

    touch_executor.Executor.run_job = run_job_and_record
    touch_executor.Executor.SLEEPING_TIME = 0.001
    job_scheduler.JobScheduler.update_input_sizes = unknown_input_sizes
    sys.argv = ["snakemake", *args]
    snakemake_main()


def mark_done(workdir: Path) -> tuple[Timing, str]:
    cmd = [sys.executable, str(Path(__file__).resolve()), "--mark-done-here",
           "--configfile", "bench.yaml", "--cores", "1", "--scheduler", "greedy", "--touch", "--forceall", "--quiet", "rules"]  # fmt: skip
    return run_timed(cmd, workdir, "snakemake --touch")


def create_outputs(workdir: Path, outputs: list[str]) -> None:
    for output in outputs:
        path = workdir / output
        if is_directory_output(output):
            path.mkdir(parents=True, exist_ok=True)
        else:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.touch()


# ---- one size ------------------------------------------------------------------------------------------------


def bench_size(
    n_images: int,
    shards: int,
    *,
    repeat: int,
    eval_every: int,
    infer: str,
    source: Path,
    keep: Path | None,
    device_auto: bool,
    infer_images: int = 0,
) -> dict:
    base = keep or Path(tempfile.mkdtemp(prefix=f"plan_scale_{n_images}_"))
    workdir = base / f"n{n_images}"
    if workdir.exists():
        shutil.rmtree(workdir)
    try:
        start = time.perf_counter()
        sizes = make_workdir(workdir, source, n_images, shards, eval_every, infer, infer_images)
        setup_s = time.perf_counter() - start
        print(
            f"\n== {n_images:,} training images, pseudo-labels for "
            f"{sizes.get('infer') or (n_images if infer == 'all' else sizes['eval']):,}, "
            f"{sizes['eval']:,} with ground truth; {shards} shards; workflow from {source} "
            f"(empty-file dataset made in {setup_s:.1f} s) ==",
            flush=True,
        )

        parse_s, _ = best_of(repeat, workdir, "--list-rules")
        plan_s, _ = best_of(repeat, workdir, "-n", "--quiet", "rules")
        _, listing = snakemake(workdir, "-n")  # full job listing, for the output paths
        counts = job_counts(listing)
        outputs = planned_outputs(listing)

        create_outputs(workdir, outputs)
        touch_s, _ = mark_done(workdir)
        records = sum(1 for _ in (workdir / ".snakemake" / "metadata").iterdir())
        noop_s, noop_text = best_of(repeat, workdir, "-n", "--quiet", "rules")
        left = job_counts(noop_text)
        auto_s = None
        if device_auto or n_images <= GOAL_IMAGES:
            auto_s, _ = best_of(repeat, workdir, "-n", "--quiet", "rules", "--config", "compute={device: auto}")
        version_s, _ = best_of(repeat, workdir, "--version")
    finally:
        if keep is None:
            shutil.rmtree(base, ignore_errors=True)

    total = sum(counts.values())
    print(f"{'rule':<26}{'jobs':>8}")
    for rule, count in sorted(counts.items(), key=lambda kv: (-kv[1], kv[0])):
        print(f"{rule:<26}{count:>8}")
    print(f"{'total':<26}{total:>8}   ({len(outputs):,} output paths)")
    print(f"snakemake --version (start-up only)  {version_s}")
    print(f"parse (--list-rules)                 {parse_s}")
    print(f"plan from scratch (-n)               {plan_s}")
    print(f"mark all done (--touch + metadata)   {touch_s}   {records} metadata records")
    print(
        f"no-op dry run (-n, all outputs)      {noop_s}   jobs left: {sum(left.values())}"
        + (f" {left}" if left else "")
    )
    if auto_s is not None:
        print(f"no-op dry run, compute.device auto   {auto_s}")
    sys.stdout.flush()
    return {
        "images": n_images,
        "shards": shards,
        "jobs": total,
        "counts": counts,
        "parse_s": parse_s,
        "plan_s": plan_s,
        "noop_s": noop_s,
        "left": left,
        "auto_s": auto_s,
        "version_s": version_s,
    }


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["--mark-done-here"]:  # internal: the patched --touch, run inside the work folder
        mark_done_here(argv[1:])
        return 0
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--images", type=int, nargs="+", default=[10_000, 100_000], help="dataset sizes (default 10000 100000)"
    )
    parser.add_argument("--shards", type=int, default=None, help="compute.shards (default: about 500 images per shard)")
    parser.add_argument(
        "--eval-every", type=int, default=7, help="every N-th image has ground truth (default 7, like VOC)"
    )
    parser.add_argument(
        "--infer",
        choices=["all", "eval"],
        default="all",
        help="pseudo-labels for every training image (default) or for the eval list only",
    )
    parser.add_argument(
        "--source", type=Path, default=REPO, help="checkout whose workflow files are timed (default: this one)"
    )
    parser.add_argument(
        "--infer-images",
        type=int,
        default=0,
        help="pseudo-labels for this many images of another split instead (COCO 2014: --images 82783 "
        "--infer-images 40504); overrides --infer",
    )
    parser.add_argument("--repeat", type=int, default=1, help="runs per timing; the best is printed (default 1)")
    parser.add_argument("--keep", type=Path, default=None, help="build the folders here and keep them")
    parser.add_argument(
        "--device-auto",
        action="store_true",
        help=f"also time a no-op dry run with compute.device auto above {GOAL_IMAGES:,} images (always done up to it)",
    )
    args = parser.parse_args(argv)

    results = []
    for n in args.images:
        results.append(
            bench_size(
                n, args.shards or default_shards(n), repeat=args.repeat, eval_every=args.eval_every, infer=args.infer,
                source=args.source.resolve(), keep=args.keep, device_auto=args.device_auto,
                infer_images=args.infer_images,
            )
        )  # fmt: skip

    print("\nsummary (wall seconds, CPU seconds in brackets)")
    print(f"{'images':>9} {'shards':>6} {'jobs':>6} {'parse':>15} {'plan':>15} {'no-op':>15}")
    for r in results:
        cells = [f"{t.wall:6.2f} ({t.cpu:5.2f})" for t in (r["parse_s"], r["plan_s"], r["noop_s"])]
        print(f"{r['images']:>9,} {r['shards']:>6} {r['jobs']:>6} {cells[0]:>15} {cells[1]:>15} {cells[2]:>15}")
    failed = [r for r in results if r["left"]]
    for r in (r for r in results if r["images"] == GOAL_IMAGES):
        noop = r["noop_s"]
        verdict = (
            "met"
            if noop.wall <= GOAL_NOOP_S
            else ("MISSED" if noop.cpu > GOAL_NOOP_S else "missed in wall time only (busy machine)")
        )
        print(
            f"goal: no-op dry run of {GOAL_IMAGES:,} images <= {GOAL_NOOP_S:.0f} s: {verdict} ({noop.wall:.2f} s, CPU {noop.cpu:.2f} s)"
        )
        if r["auto_s"] is not None:
            print(
                f"      with compute.device auto (configs/voc12.yaml): {r['auto_s'].wall:.2f} s, CPU {r['auto_s'].cpu:.2f} s"
            )
    if failed:
        print("error: the no-op dry run still planned jobs for " + ", ".join(f"{r['images']:,} images" for r in failed))
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
