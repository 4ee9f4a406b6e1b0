"""Path index geometry (spec §2.7): directions, paths, flat indices and path affinities, checked by hand."""

from __future__ import annotations

import pytest
import torch

from irnet_core.path_index import (
    PathIndex,
    build_path_index,
    directions,
    get_path_index,
    path_affinity,
    path_points,
)


def test_direction_counts_match_the_spec() -> None:
    assert len(directions(10)) == 152
    assert len(directions(5)) == 34


def test_directions_radius_3_by_hand() -> None:
    # rf = 2: (0, 1), (0, 2); then dy = 1, 2 with dx = -2..2 and dy² + dx² < 9 (all of them: 2² + 2² = 8).
    assert directions(3) == [
        (0, 1), (0, 2),
        (1, -2), (1, -1), (1, 0), (1, 1), (1, 2),
        (2, -2), (2, -1), (2, 0), (2, 1), (2, 2),
    ]  # fmt: skip


def test_directions_are_a_half_plane_of_the_open_disc() -> None:
    dirs = directions(5)
    assert len(set(dirs)) == len(dirs)
    for dy, dx in dirs:
        assert dy * dy + dx * dx < 25
        assert (-dy, -dx) not in dirs  # each unordered pair once
    assert (0, 4) in dirs and (3, 3) in dirs and (3, 4) not in dirs and (4, 3) not in dirs


@pytest.mark.parametrize(
    ("direction", "expected"),
    [
        ((0, 1), {(0, 0), (0, 1)}),
        # (x − y)²/2 < 1 holds for the whole 2×2 box.
        ((1, 1), {(0, 0), (0, 1), (1, 0), (1, 1)}),
        # (2x − y)² < 5 ⇔ |2x − y| <= 2: the whole 3×2 box.
        ((2, 1), {(0, 0), (0, 1), (1, 0), (1, 1), (2, 0), (2, 1)}),
        # (x + 3y)² < 10 ⇔ |x + 3y| <= 3: the whole 2×4 box.
        ((1, -3), {(0, 0), (0, -1), (0, -2), (0, -3), (1, 0), (1, -1), (1, -2), (1, -3)}),
        # (x − y)² < 2: the two far corners (0, 2) and (2, 0) are out.
        ((2, 2), {(0, 0), (0, 1), (1, 0), (1, 1), (1, 2), (2, 1), (2, 2)}),
        # (2x + 3y)² < 13 ⇔ |2x + 3y| <= 3: 8 of the 12 box cells.
        ((2, -3), {(0, 0), (0, -1), (1, 0), (1, -1), (1, -2), (1, -3), (2, -2), (2, -3)}),
        ((0, 3), {(0, 0), (0, 1), (0, 2), (0, 3)}),
    ],
)
def test_path_points_by_hand(direction: tuple[int, int], expected: set[tuple[int, int]]) -> None:
    points = path_points(*direction)
    assert len(points) == len(set(points))
    assert set(points) == expected
    assert points[0] == (0, 0) and points[-1] == direction


def test_path_of_the_opposite_direction_is_the_mirror() -> None:
    for dy, dx in directions(6):
        assert set(path_points(-dy, -dx)) == {(-y, -x) for y, x in path_points(dy, dx)}


def test_path_lengths_group_as_in_the_spec() -> None:
    # 20 groups for r = 10, lengths 2..22 (no direction has a path of 17 cells).
    assert get_path_index(10, 32, 32).path_lengths == (*range(2, 17), *range(18, 23))
    assert len(get_path_index(5, 16, 16).path_lengths) == 9


def test_path_index_on_a_tiny_grid() -> None:
    # Radius 2 (rf = 1): directions (0,1), (1,-1), (1,0), (1,1); paths of length 2 for (0,1), (1,0) and 4 for the
    # diagonals, so the grouped order is (0,1), (1,0), (1,-1), (1,1). Grid 3×4: sources rows [0,2), cols [1,3).
    index = build_path_index(2, 3, 4)
    assert index.directions == ((0, 1), (1, 0), (1, -1), (1, 1))
    assert index.offsets.tolist() == [[0, 1], [1, 0], [1, -1], [1, 1]]
    assert index.path_lengths == (2, 4)
    assert index.src.tolist() == [1, 2, 5, 6]
    assert index.source_shape == (2, 2)
    assert index.dst.tolist() == [
        [2, 3, 6, 7],  # (0, 1)
        [5, 6, 9, 10],  # (1, 0)
        [4, 5, 8, 9],  # (1, -1)
        [6, 7, 10, 11],  # (1, 1)
    ]
    short, diag = index.path_indices
    assert short.shape == (2, 2, 4) and diag.shape == (2, 4, 4)
    assert short.dtype == torch.int64
    # Source (0, 1) = flat 1 along (1, -1) covers cells (0,1), (0,0), (1,1), (1,0).
    assert set(diag[0, :, 0].tolist()) == {1, 0, 5, 4}
    # Source (1, 2) = flat 6 along (1, 1) covers (1,2), (1,3), (2,2), (2,3).
    assert set(diag[1, :, 3].tolist()) == {6, 7, 10, 11}
    # Every path starts at the source and ends at the destination.
    for group, start in ((short, 0), (diag, 2)):
        assert torch.equal(group[:, 0, :], index.src.expand(group.shape[0], -1))
        assert torch.equal(group[:, -1, :], index.dst[start : start + group.shape[0]])


def test_training_geometry() -> None:
    index = get_path_index(10, 128, 128)
    assert index.n_dirs == 152 and index.n_src == 119 * 110 == 13090
    assert index.dst.shape == (152, 13090)
    assert sum(t.shape[0] for t in index.path_indices) == 152
    assert int(index.dst.max()) < 128 * 128 and int(index.dst.min()) >= 0


def test_get_path_index_is_cached_and_to_same_device_is_free() -> None:
    a = get_path_index(5, 20, 30)
    assert get_path_index(5, 20, 30) is a
    assert isinstance(a, PathIndex)
    assert a.to("cpu") is a


def test_too_small_grid_is_rejected() -> None:
    with pytest.raises(ValueError, match="too small"):
        build_path_index(5, 10, 8)  # needs more than 2·rf = 8 columns


def _brute_affinity(boundary: torch.Tensor, index: PathIndex) -> torch.Tensor:
    """Affinities straight from path_points, one pair at a time."""
    _h, w = boundary.shape
    out = torch.empty(index.n_dirs, index.n_src)
    for d, (dy, dx) in enumerate(index.directions):
        for s, flat in enumerate(index.src.tolist()):
            y, x = divmod(flat, w)
            out[d, s] = 1 - max(float(boundary[y + py, x + px]) for py, px in path_points(dy, dx))
    return out


def test_a_wall_blocks_every_pair_across_it() -> None:
    # A vertical wall (B = 0.9) in column 3: a path meets every column between its ends, so a pair gets
    # 1 − 0.9 when its columns straddle (or touch) column 3 and 1 otherwise.
    boundary = torch.zeros(1, 6, 9)
    boundary[0, :, 3] = 0.9
    index = get_path_index(3, 6, 9)
    aff = path_affinity(boundary, index)[0]
    xs = index.src % 9
    xd = index.dst % 9
    crosses = (torch.minimum(xs, xd) <= 3) & (torch.maximum(xs, xd) >= 3)
    expected = torch.where(crosses, torch.tensor(1 - 0.9), torch.tensor(1.0))
    torch.testing.assert_close(aff, expected)


def test_path_affinity_matches_brute_force_and_has_gradients() -> None:
    gen = torch.Generator().manual_seed(0)
    boundary = torch.rand(2, 9, 12, generator=gen, requires_grad=True)
    index = get_path_index(4, 9, 12)
    aff = path_affinity(boundary, index)
    assert aff.shape == (2, index.n_dirs, index.n_src)
    for n in range(2):
        torch.testing.assert_close(aff[n].detach(), _brute_affinity(boundary[n].detach(), index))
    aff.sum().backward()
    assert boundary.grad is not None and float(boundary.grad.abs().sum()) > 0


def test_path_affinity_rejects_a_wrong_grid() -> None:
    with pytest.raises(ValueError, match="shape"):
        path_affinity(torch.zeros(1, 9, 13), get_path_index(4, 9, 12))


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_path_index_on_cuda() -> None:
    cpu = get_path_index(5, 20, 24)
    gpu = cpu.to("cuda")
    assert gpu.src.is_cuda and all(t.is_cuda for t in gpu.path_indices)
    assert gpu.to("cuda") is gpu and cpu.to("cuda") is gpu  # cached per device
    boundary = torch.rand(2, 20, 24)
    torch.testing.assert_close(path_affinity(boundary.cuda(), cpu).cpu(), path_affinity(boundary, cpu))
