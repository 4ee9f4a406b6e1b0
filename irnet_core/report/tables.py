"""Report tables as small self-contained HTML pages.

Snakemake 9's report shows an HTML result inline (in an iframe) but offers CSV/TSV results only as downloads,
so the tables are HTML with inline CSS and no external resources: the report stays viewable offline.

Two kinds: :func:`metrics_page` renders any evaluation JSON of this workflow (headline numbers, per-class
values, other number mappings such as the CAM threshold sweep) and :func:`benchmarks_page` the wall time and
peak memory of every job, read from Snakemake's ``benchmark:`` files by :func:`read_benchmarks`.
"""

from __future__ import annotations

import csv
import html
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

_STYLE = """
body { font-family: system-ui, -apple-system, "Segoe UI", Helvetica, Arial, sans-serif; font-size: 14px;
       color: #1d1d1f; background: #ffffff; margin: 16px; }
h1 { font-size: 18px; margin: 0 0 12px 0; }
h2 { font-size: 15px; margin: 20px 0 6px 0; }
p.note { color: #555; margin: 4px 0 8px 0; max-width: 60em; }
table { border-collapse: collapse; margin-bottom: 8px; }
th, td { border: 1px solid #d0d0d0; padding: 3px 9px; }
th { background: #eef1f5; text-align: left; }
td.num { text-align: right; font-variant-numeric: tabular-nums; }
tr.total td { font-weight: bold; background: #f6f6f6; }
"""


def _format(value: object) -> str:
    """Table text of a JSON value: metrics (|x| < 10) to 3 decimals, larger floats to 1, None / NaN as n/a."""
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "n/a"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return f"{value:.3f}" if abs(value) < 10 else f"{value:.1f}"
    if isinstance(value, (list, tuple)):
        return ", ".join(_format(v) for v in value)
    return str(value)


def _is_number(value: object) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _cell(value: object, bar: bool = False, spec: str | None = None) -> str:
    """One <td>; a number in [0, 1] with ``bar`` gets a proportional background bar, to compare classes at a glance.

    ``spec`` is a format spec for a finite number (e.g. ".1f"), so that a column has one number of decimals.
    """
    if spec and _is_number(value) and math.isfinite(value):
        text = format(value, spec)
    else:
        text = html.escape(_format(value))
    if not _is_number(value) and value is not None:
        return f"<td>{text}</td>"
    style = ""
    if bar and _is_number(value) and math.isfinite(value) and 0.0 <= value <= 1.0:
        percent = f"{100 * value:.1f}%"
        style = f' style="background: linear-gradient(90deg, #cfe0f5 {percent}, transparent {percent})"'
    return f'<td class="num"{style}>{text}</td>'


def html_table(
    header: Sequence[str],
    rows: Iterable[Sequence[object]],
    bars: bool = False,
    total: Sequence[object] | None = None,
    specs: Sequence[str | None] | None = None,
) -> str:
    """An HTML table; numbers are right-aligned, ``bars`` draws value bars for numbers in [0, 1], ``specs`` gives
    a format spec per column (None: the default formatting) and ``total`` a last, bold row."""
    head = "".join(f"<th>{html.escape(str(name))}</th>" for name in header)
    specs = list(specs) if specs is not None else [None] * len(header)
    body = ["<tr>" + "".join(_cell(v, bars, f) for v, f in zip(row, specs)) + "</tr>" for row in rows]
    if total is not None:
        body.append('<tr class="total">' + "".join(_cell(v, False, f) for v, f in zip(total, specs)) + "</tr>")
    return f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table>"


def html_page(title: str, sections: Sequence[str]) -> str:
    """A complete HTML document with inline CSS."""
    return (
        '<!DOCTYPE html>\n<html><head><meta charset="utf-8">'
        f"<title>{html.escape(title)}</title><style>{_STYLE}</style></head>"
        f"<body><h1>{html.escape(title)}</h1>\n" + "\n".join(sections) + "\n</body></html>\n"
    )


# ---- evaluation metrics -----------------------------------------------------------------------------------

_STAGE_COLUMNS = (
    ("cam", "CAM IoU"),
    ("random_walk", "random-walk IoU"),
    ("change", "change (points)"),
    ("pseudo_ap50", "pseudo-label AP50"),
    ("pseudo_recall50", "objects recalled (IoU 0.5)"),
    ("pseudo_merged", "objects merged with another"),
    ("val_deeplab", "val DeepLabv3 IoU"),
    ("val_maskrcnn_ap50", "val Mask R-CNN AP50"),
)


def per_class_stages_page(summary: Mapping[str, object]) -> str:
    """HTML page of the summary's per-class table: CAM, random walk, pseudo-label AP and the final models, one
    row per class, with the classes the random walk lost marked."""
    rows_in: Mapping[str, Mapping[str, object]] = summary["per_class"]  # type: ignore[assignment]
    lost = set(summary.get("classes_lost_in_random_walk", []))  # type: ignore[arg-type]
    columns = [(key, name) for key, name in _STAGE_COLUMNS if any(key in row for row in rows_in.values())]
    rows = []
    for name, row in rows_in.items():
        # The change is in points (text: a value bar would read it as a fraction).
        cells = [
            f"{100 * row[key]:+.1f}" if key == "change" and row.get(key) is not None else row.get(key)
            for key, _ in columns
        ]
        rows.append([f"{name} (lost in the random walk)" if name in lost else name, *cells])
    note = (
        "CAM (at the threshold used), random walk and pseudo-label AP50 on the eval images; the val columns are the "
        "final models on the val images. A class whose random-walk IoU is more than 2 points below its CAM IoU is "
        "marked: the mean can rise while it falls."
    )
    if lost:
        note += f" Lost here: {', '.join(sorted(lost))}."
    return html_page(
        "Per class, stage by stage",
        [
            f'<p class="note">{html.escape(note)}</p>',
            html_table(["class", *(n for _, n in columns)], rows, bars=True),
            *_self_training_sections(summary.get("self_training", [])),  # type: ignore[arg-type]
        ],
    )


def _self_training_sections(rounds: Sequence[Mapping]) -> list[str]:
    """The self-training rounds: each round's targets on the eval images (and the val AP50 of the Mask R-CNN
    trained on them), then the targets' AP50 per class and round."""
    if not rounds:
        return []
    has_val = "val_model" in rounds[0]
    header = ["round", "mAP50", "mAP75", "objects recalled (IoU 0.5)", "objects merged with another"]
    rows = [
        [entry["round"], *(entry["targets"].get(key) for key in ("map50", "map75", "recall50", "merged"))]
        + ([entry["val_model"]["map50"]] if has_val else [])
        for entry in rounds
    ]
    classes = list(rounds[0]["targets"]["per_class"])
    per_class = [[name, *(e["targets"]["per_class"][name]["ap50"] for e in rounds)] for name in classes]
    note = (
        "Round 0 is IRNet's instance pseudo-labels; round J combines the predictions of round J-1's Mask R-CNN on "
        "the training images with round J-1's targets. Scored on the eval images"
        + ("; the last column is the val mAP50 of the Mask R-CNN trained on the round's targets." if has_val else ".")
    )
    return [
        "<h2>Self-training rounds</h2>",
        f'<p class="note">{html.escape(note)}</p>',
        html_table(header + (["val Mask R-CNN mAP50"] if has_val else []), rows, bars=True),
        html_table(["class", *(f"round {e['round']} AP50" for e in rounds)], per_class, bars=True),
    ]


def _per_class_table(tables: Mapping[str, Mapping[str, object]], value_name: str = "value") -> str:
    """Merge per-class mappings into one class-by-metric table.

    ``tables`` maps a JSON key (e.g. ``per_class``, ``cam_baseline_per_class``) to ``{class: value}`` or
    ``{class: {metric: value}}``. A column is named after the metric (``value_name`` for plain values),
    preceded by what the key adds to ``per_class`` (``cam baseline ap50``).
    """
    classes: list[str] = []
    columns: list[tuple[str, str, str | None]] = []  # (header, table key, metric or None)
    for key, table in tables.items():
        prefix = key.removesuffix("per_class").strip("_").replace("_", " ")
        for name, value in table.items():
            if name not in classes:
                classes.append(name)
            for metric in list(value) if isinstance(value, Mapping) else [None]:
                header = f"{prefix} {metric if metric is not None else value_name}".strip()
                if (header, key, metric) not in columns:
                    columns.append((header, key, metric))
    rows = []
    for name in classes:
        row: list[object] = [name]
        for _, key, metric in columns:
            value = tables[key].get(name)
            row.append(value.get(metric) if isinstance(value, Mapping) and metric is not None else value)
        rows.append(row)
    return html_table(["class", *(header for header, _, _ in columns)], rows, bars=True)


def metrics_page(metrics: Mapping[str, object], title: str, note: str = "", value_name: str = "value") -> str:
    """HTML page of one evaluation JSON: its scalars, its per-class values, its other mappings (e.g. a sweep).

    Keys ending in ``per_class`` are merged into one table with a row per class; ``value_name`` names their
    plain (non-mapping) values, e.g. "IoU".
    """
    scalars = [(key, value) for key, value in metrics.items() if not isinstance(value, Mapping)]
    per_class = {
        key: value for key, value in metrics.items() if isinstance(value, Mapping) and key.endswith("per_class")
    }
    others = {key: value for key, value in metrics.items() if isinstance(value, Mapping) and key not in per_class}
    sections = [f'<p class="note">{html.escape(note)}</p>'] if note else []
    if scalars:
        sections += ["<h2>Summary</h2>", html_table(["metric", "value"], scalars)]
    if per_class:
        sections += ["<h2>Per class</h2>", _per_class_table(per_class, value_name)]
    for key, mapping in others.items():
        flat = all(not isinstance(v, Mapping) for v in mapping.values())
        sections.append(f"<h2>{html.escape(key)}</h2>")
        if flat:
            sections.append(html_table(["key", "value"], list(mapping.items()), bars=True))
        else:
            sections.append(_per_class_table({key: mapping}))
    return html_page(title, sections)


# ---- benchmarks -------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class BenchmarkRow:
    """One job's benchmark: its rule, its job name (the file stem, i.e. its wildcards) and the measurements."""

    rule: str
    job: str
    seconds: float
    max_rss_mb: float | None
    max_uss_mb: float | None
    cpu_seconds: float | None
    mean_load: float | None


def _float(row: Mapping[str, str], key: str) -> float | None:
    # psutil reports "-" or "NA" where a platform cannot measure something; those are simply unknown.
    try:
        value = float(row.get(key, ""))
    except ValueError:
        return None
    return value if math.isfinite(value) else None


def read_benchmarks(paths: Iterable[str | Path]) -> list[BenchmarkRow]:
    """Read ``benchmarks/<rule>/<job>.tsv`` files (the last row of each: the latest repetition), in order.

    Files that do not exist are skipped: a rule that did not run in this configuration (e.g. the demo-dataset
    rule on a real dataset) simply has no benchmark.
    """
    rows = []
    for path in map(Path, paths):
        if not path.is_file():
            continue
        with open(path, newline="") as handle:
            records = list(csv.DictReader(handle, delimiter="\t"))
        if not records:
            continue
        last = records[-1]
        seconds = _float(last, "s")
        rows.append(
            BenchmarkRow(
                rule=path.parent.name,
                job=path.stem,
                seconds=seconds if seconds is not None else math.nan,
                max_rss_mb=_float(last, "max_rss"),
                max_uss_mb=_float(last, "max_uss"),
                cpu_seconds=_float(last, "cpu_time"),
                mean_load=_float(last, "mean_load"),
            )
        )
    return rows


def _hms(seconds: float) -> str:
    if not math.isfinite(seconds):
        return "n/a"
    whole = round(seconds)
    return f"{whole // 3600}:{whole // 60 % 60:02d}:{whole % 60:02d}"


def benchmarks_page(rows: Sequence[BenchmarkRow], title: str = "Wall time and peak memory of every job") -> str:
    """HTML page: one row per rule (jobs, summed and longest wall time, largest peak memory), then every job."""
    by_rule: dict[str, list[BenchmarkRow]] = {}
    for row in rows:
        by_rule.setdefault(row.rule, []).append(row)
    rule_rows = []
    for rule, jobs in by_rule.items():
        seconds = [job.seconds for job in jobs if math.isfinite(job.seconds)]
        peaks = [job.max_rss_mb for job in jobs if job.max_rss_mb is not None]
        rule_rows.append([rule, len(jobs), sum(seconds), max(seconds, default=math.nan), max(peaks, default=None)])
    finite = [row.seconds for row in rows if math.isfinite(row.seconds)]
    all_peaks = [row.max_rss_mb for row in rows if row.max_rss_mb is not None]
    total = ["all jobs", len(rows), sum(finite), max(finite, default=math.nan), max(all_peaks, default=None)]
    job_rows = [
        [
            row.rule,
            row.job,
            row.seconds,
            _hms(row.seconds),
            row.max_rss_mb,
            row.max_uss_mb,
            row.cpu_seconds,
            row.mean_load,
        ]
        for row in rows
    ]
    note = (
        "From Snakemake's benchmark: files (benchmarks/<rule>/<job>.tsv), latest run of each job. Wall time in "
        "seconds; peak memory is the maximum resident set size (RSS) and unique set size (USS) in MB; CPU time "
        "in seconds; mean load in % of one core. Jobs run in parallel, so the summed wall time exceeds the "
        "elapsed time of the run."
    )
    sections = [
        f'<p class="note">{html.escape(note)}</p>',
        "<h2>Per rule</h2>",
        html_table(
            ["rule", "jobs", "wall s (sum)", "wall s (longest job)", "peak RSS MB (max)"],
            rule_rows,
            total=total,
            specs=[None, "d", ".1f", ".1f", ".0f"],
        ),
        "<h2>Per job</h2>",
        html_table(
            ["rule", "job", "wall s", "h:m:s", "peak RSS MB", "peak USS MB", "CPU s", "mean load %"],
            job_rows,
            specs=[None, None, ".1f", None, ".0f", ".0f", ".1f", ".0f"],
        ),
    ]
    if not rows:
        sections.append('<p class="note">No benchmark files were found.</p>')
    return html_page(title, sections)
