"""Shared fixtures: the real single-node SLURM cluster (tests/cluster) for tests marked `slurm`; how the suite
is split between pytest-xdist workers (`make test` runs two)."""

from pathlib import PurePosixPath

from tests.cluster.fixtures import slurm_cluster  # noqa: F401  (a fixture, used by name)


def pytest_xdist_make_scheduler(config, log):
    """One unit of work per test module, so that a module's fixtures (often a whole run) are built once, and one
    for the SLURM test modules (test_slurm*.py), since a machine runs one SLURM cluster at a time and the
    session fixture that starts it also stops it. (xdist's own `loadgroup` marks do not group under pytest 9.2,
    whose node ids no longer come from the attribute that xdist rewrites.)"""
    from xdist.scheduler import LoadScopeScheduling

    class ModuleScheduling(LoadScopeScheduling):
        def _split_scope(self, nodeid: str) -> str:
            module = nodeid.split("::", 1)[0]
            return "slurm" if PurePosixPath(module).name.startswith("test_slurm") else module

    return ModuleScheduling(config, log)
