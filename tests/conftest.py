"""Shared fixtures: the real single-node SLURM cluster (tests/cluster) for tests marked `slurm`."""

from tests.cluster.fixtures import slurm_cluster  # noqa: F401  (a fixture, used by name)
