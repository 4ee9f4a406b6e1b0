"""Wall and CPU time per stage of finished runs, from Snakemake's per-job benchmark files.

    python bench/stage_times.py RUN_DIR [RUN_DIR ...]

Sums the jobs of each rule (``benchmarks/<rule>/*.tsv``: the shards of a stage add up) and prints one column
pair per run: wall seconds (``s``) and CPU seconds (``cpu_time``). CPU seconds compare runs made under different
machine load better than wall seconds do; rules are listed in the order of their first job's file time.
"""

from __future__ import annotations

import argparse
import csv
from pathlib import Path


def stage_times(run: Path) -> dict[str, tuple[float, float]]:
    """{rule: (wall seconds, CPU seconds)} summed over the rule's jobs, in the order the stages ran."""
    # benchmarks/<rule>/<wildcards>.tsv; a wildcard value with a slash (self_training/round-0) nests deeper.
    files = sorted((run / "benchmarks").glob("*/**/*.tsv"), key=lambda path: path.stat().st_mtime)
    times: dict[str, tuple[float, float]] = {}
    for path in files:
        with open(path, newline="") as handle:
            rows = list(csv.DictReader(handle, delimiter="\t"))
        wall = sum(float(row["s"]) for row in rows)
        cpu = sum(float(row["cpu_time"]) for row in rows if row["cpu_time"] not in ("", "NA"))
        rule = path.relative_to(run / "benchmarks").parts[0]
        before = times.get(rule, (0.0, 0.0))
        times[rule] = (before[0] + wall, before[1] + cpu)
    return times


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("runs", nargs="+", type=Path)
    args = parser.parse_args()
    tables = [stage_times(run) for run in args.runs]
    rules = list(dict.fromkeys(rule for table in tables for rule in table))
    print(f"{'stage':28}" + "".join(f"{'wall s':>9}{'CPU s':>9}" for _ in tables))
    for rule in rules + ["total"]:
        cells = []
        for table in tables:
            wall, cpu = (
                (sum(w for w, _ in table.values()), sum(c for _, c in table.values()))
                if rule == "total"
                else table.get(rule, (float("nan"), float("nan")))
            )
            cells.append(f"{wall:9.0f}{cpu:9.0f}")
        print(f"{rule:28}" + "".join(cells))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
