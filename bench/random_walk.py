"""Benchmark: sparse random walk (irnet_core.random_walk.propagate) vs the dense reference, on CPU.

Run as ``.venv/bin/python bench/random_walk.py`` (about 2 minutes on 2 cores). Cases: R = 2 synthetic CAM-like
score maps and a realistic boundary map (faint smooth texture plus thin, strong, partly open curves), at the
typical VOC grid 94×125 (a 375×500 image), at 128×128, and at a small 40×50 grid.

What is measured and what is extrapolated (the output says which, line by line):

* sparse: the whole walk (graph construction and 256 steps), measured at every size, fastest of ``--repeats``
  runs (it takes a fraction of a second, so other load on the machine would otherwise dominate);
* dense, 40×50: the whole spec formulation (matrix, 8 squarings, product), measured;
* dense, 94×125: building the 11,750² matrix and ONE squaring are measured, the walk's time is extrapolated as
  build + 8 × squaring (the 8 squarings cost the same, 2n³ flops each); the full run would take minutes;
* dense, 128×128: building the 16,384² matrix is measured, the squarings are extrapolated from the flop rate
  measured at 94×125 (O(n³));
* labels (argmax with a 0.25 background channel after ×4 upsampling and the global max, as semantic labels):
  at 40×50 against the full dense result; at 94×125 against ``x · T`` applied 256 times with the dense matrix
  ``T`` of the reference (the same product as ``x · T^256``, associated differently, so it is exact up to
  rounding and runs in seconds).

Memory is the peak resident set size (RSS) of this process during each call, above the RSS just before it:
the Linux high-water mark ``VmHWM`` from /proc/self/status, reset with ``/proc/self/clear_refs`` before each
call. (tracemalloc would miss torch's tensors, which are not allocated through Python's allocator.) Without a
writable /proc the column reads "n/a".

The last line reads ``random_walk speedup=<dense/sparse at 94×125> identical=<fraction>``, where the fraction is
the worst label agreement over the two comparisons.
"""

from __future__ import annotations

import argparse
import math
import time
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

import torch
import torch.nn.functional as F

from irnet_core.random_walk import dense_transition, propagate, propagate_dense, upsample_scores

T = TypeVar("T")
BETA, EXP_TIMES, RADIUS = 10.0, 8, 5
STATUS = Path("/proc/self/status")
CLEAR_REFS = Path("/proc/self/clear_refs")


def _status_kib(field: str) -> int | None:
    try:
        for line in STATUS.read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1])
    except OSError:
        pass
    return None


def measure(fn: Callable[[], T]) -> tuple[T, float, float | None]:
    """Run ``fn`` once: its result, wall seconds and peak RSS above the starting RSS in MiB (None if unknown)."""
    base = _status_kib("VmRSS")
    try:
        CLEAR_REFS.write_text("5")  # resets VmHWM to the current RSS
        resettable = True
    except OSError:
        resettable = False
    start = time.perf_counter()
    result = fn()
    seconds = time.perf_counter() - start
    peak = _status_kib("VmHWM")
    mib = (peak - base) / 1024 if resettable and peak is not None and base is not None else None
    return result, seconds, mib


def synthetic_case(h: int, w: int, r: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """CAM-like scores ``(r, h, w)`` in [0, 1] and a boundary map ``(h, w)`` in [0, 1].

    Boundary: faint smooth texture (≤ 0.15) plus arcs of random ellipses, about one cell wide, of strength
    0.6–1.0; some arcs are open, as real boundary maps often are. Scores: Gaussian blobs inside the ellipses.
    """
    gen = torch.Generator().manual_seed(seed)
    coarse = torch.rand(1, 1, max(2, h // 8), max(2, w // 8), generator=gen)
    texture = 0.15 * F.interpolate(coarse, size=(h, w), mode="bilinear", align_corners=False)[0, 0]
    ys, xs = torch.meshgrid(torch.arange(h, dtype=torch.float32), torch.arange(w, dtype=torch.float32), indexing="ij")
    boundary = texture
    scores = torch.zeros(r, h, w)
    size = min(h, w)
    for k in range(5):
        cy, cx = float(torch.rand(1, generator=gen)) * h, float(torch.rand(1, generator=gen)) * w
        a, b = (0.12 + 0.25 * torch.rand(2, generator=gen)) * size
        angle = float(torch.rand(1, generator=gen)) * math.pi
        u = (ys - cy) * math.cos(angle) + (xs - cx) * math.sin(angle)
        v = -(ys - cy) * math.sin(angle) + (xs - cx) * math.cos(angle)
        rho = torch.sqrt((u / a) ** 2 + (v / b) ** 2)
        distance = (rho - 1).abs() * float(a + b) / 2
        strength = 0.6 + 0.4 * float(torch.rand(1, generator=gen))
        curve = strength * torch.exp(-(distance**2) / (2 * 0.6**2))
        if k % 2:  # open arc: keep 3/4 of the ellipse
            start = float(torch.rand(1, generator=gen)) * 2 * math.pi
            phase = torch.remainder(torch.atan2(v / b, u / a) - start, 2 * math.pi)
            curve = curve * (phase < 1.5 * math.pi)
        boundary = torch.maximum(boundary, curve)
        blob = torch.exp(-(((ys - cy) / a) ** 2 + ((xs - cx) / b) ** 2) / (2 * 0.35**2))
        scores[k % r] += (0.5 + 0.5 * float(torch.rand(1, generator=gen))) * blob
    scores += 0.05 * torch.rand(r, h, w, generator=gen)
    scores /= scores.amax(dim=(1, 2), keepdim=True)
    return scores, boundary.clamp(0, 1)


def sparse_walk(scores: torch.Tensor, boundary: torch.Tensor) -> torch.Tensor:
    return propagate(scores, boundary, beta=BETA, exp_times=EXP_TIMES, radius=RADIUS)


def labels(y: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """Semantic-label argmax: ×4 upsampling, global max, 0.25 background channel."""
    s = upsample_scores(y, size)
    return torch.cat([torch.full_like(s[:1], 0.25), s]).argmax(0)


def dense_by_steps(scores: torch.Tensor, boundary: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    """``x · T^256`` as 256 products with the dense matrix (exact like the squarings, up to rounding)."""
    r, h, w = scores.shape
    y = (scores * (1 - boundary)).reshape(r, h * w)
    for _ in range(1 << EXP_TIMES):
        y = y @ t
    return y.reshape(r, h, w)


def best_of(repeats: int, fn: Callable[[], T]) -> tuple[T, float, float | None]:
    """:func:`measure` ``repeats`` times: the last result, the fastest time and the largest memory peak."""
    runs = [measure(fn) for _ in range(repeats)]
    peaks = [m for _, _, m in runs if m is not None]
    return runs[-1][0], min(t for _, t, _ in runs), max(peaks) if peaks else None


def fmt_mib(mib: float | None) -> str:
    return "n/a" if mib is None else f"{mib:8.1f} MiB"


def main(args: argparse.Namespace) -> None:
    if args.threads:
        torch.set_num_threads(args.threads)  # a script may; the library never touches global torch settings
    print(
        f"torch {torch.__version__}, {torch.get_num_threads()} threads, float32, CPU; beta={BETA}, "
        f"exp_times={EXP_TIMES} (256 steps), radius={RADIUS}, R=2"
    )
    print("memory = peak RSS above the RSS before the call (/proc VmHWM, reset via /proc/self/clear_refs)")
    print(f"sparse times: fastest of {args.repeats} runs; dense times: single runs (too slow to repeat)")
    agreements: list[float] = []

    # 1. Small grid: everything measured, including the full dense formulation.
    h, w = 40, 50
    scores, boundary = synthetic_case(h, w, 2, seed=1)
    size = (4 * h - 3, 4 * w - 2)
    sparse, t_sparse, m_sparse = best_of(args.repeats, lambda: sparse_walk(scores, boundary))
    dense, t_dense, m_dense = measure(
        lambda: propagate_dense(scores, boundary, beta=BETA, exp_times=EXP_TIMES, radius=RADIUS)
    )
    same = float((labels(sparse, size) == labels(dense, size)).float().mean())
    agreements.append(same)
    rel = float((sparse - dense).abs().max() / dense.abs().max())
    print(f"\n[{h}x{w}, n={h * w}] all measured")
    print(f"  sparse {t_sparse:8.3f} s  {fmt_mib(m_sparse)}")
    print(f"  dense  {t_dense:8.3f} s  {fmt_mib(m_dense)}  (8 squarings of {h * w}^2)")
    print(f"  speed-up {t_dense / t_sparse:.1f}x; max |sparse-dense|/max = {rel:.2e}; identical labels {same:.6f}")

    # 2. VOC size: dense build + one squaring measured, the rest extrapolated; labels against 256 dense steps.
    h, w = 94, 125
    n = h * w
    scores, boundary = synthetic_case(h, w, 2, seed=2)
    size = (375, 500)
    sparse, t_sparse, m_sparse = best_of(args.repeats, lambda: sparse_walk(scores, boundary))
    t, t_build, m_build = measure(lambda: dense_transition(boundary, beta=BETA, radius=RADIUS))
    _, t_square, m_square = measure(lambda m=t: m @ m)
    flops_rate = 2 * n**3 / t_square
    t_dense = t_build + EXP_TIMES * t_square
    stepped, t_steps, _ = measure(lambda m=t: dense_by_steps(scores, boundary, m))
    same = float((labels(sparse, size) == labels(stepped, size)).float().mean())
    agreements.append(same)
    rel = float((sparse - stepped).abs().max() / stepped.abs().max())
    # Peak of the dense walk: the matrix plus one squaring's output (the build peaks higher while it runs).
    dense_peak = None if m_build is None or m_square is None else max(m_build, n * n * 4 / 2**20 + m_square)
    del t
    voc_speedup = t_dense / t_sparse
    print(f"\n[{h}x{w}, n={n}] dense: build and ONE squaring measured, walk = build + 8 x squaring (extrapolated)")
    print(f"  sparse {t_sparse:8.3f} s  {fmt_mib(m_sparse)}  (measured)")
    print(
        f"  dense  build {t_build:.2f} s {fmt_mib(m_build)}; one squaring {t_square:.2f} s "
        f"({flops_rate / 1e9:.0f} GFLOP/s) {fmt_mib(m_square)}"
    )
    print(
        f"  dense  {t_dense:8.1f} s  {fmt_mib(dense_peak)}  (time extrapolated: build + 8 x {t_square:.2f} s; "
        "memory: matrix + measured squaring peak)"
    )
    print(f"  speed-up {voc_speedup:.0f}x")
    print(f"  labels vs 256 dense steps x.T ({t_steps:.1f} s): max |diff|/max = {rel:.2e}; identical labels {same:.6f}")

    # 3. 128×128: dense build measured, squarings extrapolated from the flop rate above.
    if not args.skip_128:
        h, w = 128, 128
        n = h * w
        scores, boundary = synthetic_case(h, w, 2, seed=3)
        sparse, t_sparse, m_sparse = best_of(args.repeats, lambda: sparse_walk(scores, boundary))
        _, t_build, m_build = measure(lambda: dense_transition(boundary, beta=BETA, radius=RADIUS))
        t_dense = t_build + EXP_TIMES * 2 * n**3 / flops_rate
        dense_peak = None if m_build is None else max(m_build, 2 * n * n * 4 / 2**20)
        print(f"\n[{h}x{w}, n={n}] dense: build measured, 8 squarings extrapolated at {flops_rate / 1e9:.0f} GFLOP/s")
        print(f"  sparse {t_sparse:8.3f} s  {fmt_mib(m_sparse)}  (measured)")
        print(
            f"  dense  {t_dense:8.1f} s  {fmt_mib(dense_peak)}  (build {t_build:.2f} s measured, rest extrapolated; "
            "memory: max of the measured build and two matrices)"
        )
        print(f"  speed-up {t_dense / t_sparse:.0f}x")

    print(f"\nidentical = worst label agreement above ({', '.join(f'{a:.6f}' for a in agreements)})")
    print(f"random_walk speedup={voc_speedup:.0f} identical={min(agreements):.6f}")


def get_args_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--skip-128", action="store_true", help="skip the 128x128 case")
    parser.add_argument("--repeats", type=int, default=5, help="runs of each sparse walk (fastest counts)")
    parser.add_argument("--threads", type=int, default=0, help="torch intra-op threads (default: torch's choice)")
    return parser


if __name__ == "__main__":
    main(get_args_parser().parse_args())
