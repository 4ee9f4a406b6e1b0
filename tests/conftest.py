"""Shared fixtures: the real single-node SLURM cluster (tests/cluster) for tests marked `slurm`; how the suite
is split between pytest-xdist workers."""

import pytest

from tests.cluster.fixtures import slurm_cluster  # noqa: F401  (a fixture, used by name)


@pytest.hookimpl(tryfirst=True)  # before xdist reads the groups
def pytest_collection_modifyitems(items):
    """One xdist group per test module, so that a module's fixtures (often a whole run) are built once, and one
    for every test that needs the SLURM cluster, which a machine runs once at a time (`--dist loadgroup`)."""
    for item in items:
        group = "slurm" if item.get_closest_marker("slurm") else item.module.__name__
        item.add_marker(pytest.mark.xdist_group(group))
