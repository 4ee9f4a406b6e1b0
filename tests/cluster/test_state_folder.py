"""The SLURM harness refuses a state folder that anyone but root could have prepared or could change.

Root daemons read their configuration, pid files and device files from that folder (tests/cluster/README.md,
"The state folder"), so each of these is a way to run code as root. No SLURM is needed here: only the
harness's `check`, `env`, `status`, `stop` and `start` commands are run against prepared folders, and on an
unsafe folder every one of them stops before reading or writing anything in it.
"""

from __future__ import annotations

import os
import subprocess
import tempfile
from pathlib import Path

import pytest

HARNESS = Path(__file__).resolve().parent / "slurm_cluster.sh"
OTHER_UID = 65534  # nobody: an owner that is neither root nor the test

needs_root = pytest.mark.skipif(
    os.geteuid() != 0, reason="the harness wants root-owned folders; making them, and other users' ones, needs root"
)


def harness(command: str, state_dir: Path | str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "IRNET_SLURM_DIR": str(state_dir)}
    return subprocess.run(
        ["bash", str(HARNESS), command], env=env, capture_output=True, text=True, timeout=60, check=False
    )


def assert_refused(proc: subprocess.CompletedProcess[str], *reason: str) -> None:
    """Exit 1 with one line on stderr that names the problem, and nothing on stdout."""
    assert proc.returncode == 1, (proc.returncode, proc.stdout, proc.stderr)
    lines = proc.stderr.splitlines()
    assert len(lines) == 1, proc.stderr
    assert proc.stdout == ""
    for text in reason:
        assert text in lines[0], lines[0]


def private_dir(parent: Path, mode: int = 0o700) -> Path:
    path = Path(tempfile.mkdtemp(dir=parent))  # what `mktemp -d` makes: root's, mode 700
    path.chmod(mode)
    return path


@pytest.fixture
def safe_parent(tmp_path: Path) -> Path:
    """A folder that only root can change, below pytest's root-owned base folder."""
    tmp_path.chmod(0o755)
    return tmp_path


@needs_root
def test_a_mktemp_folder_is_accepted(safe_parent):
    state = private_dir(safe_parent)
    proc = harness("check", state)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == f"state folder {state}: safe"
    env = harness("env", state)
    assert env.returncode == 0, env.stderr
    assert env.stdout.splitlines() == [f"export SLURM_CONF={state}/etc/slurm.conf", f"export IRNET_SLURM_DIR={state}"]


@needs_root
def test_an_absent_folder_in_a_safe_parent_is_accepted(safe_parent):
    proc = harness("check", safe_parent / "state")
    assert proc.returncode == 0, proc.stderr
    assert "absent" in proc.stdout and "mode 700" in proc.stdout
    assert not (safe_parent / "state").exists()  # check never creates anything


@needs_root
def test_a_root_folder_in_a_sticky_world_writable_parent_is_accepted(safe_parent):
    # /tmp's case: with the sticky bit nobody but root can move root's folder away, so `mktemp -d` is fine there.
    sticky = private_dir(safe_parent, 0o1777)
    assert harness("check", private_dir(sticky)).returncode == 0


@needs_root
@pytest.mark.parametrize(
    ("prepare", "reason"),
    [
        (lambda parent: private_dir(parent, 0o777), "it is group/world-writable (mode 777)"),
        (lambda parent: private_dir(parent, 0o770), "it is group/world-writable (mode 770)"),
        (lambda parent: private_dir(parent, 0o755), "it has mode 755, not 700"),
        (lambda parent: private_dir(parent, 0o2700), "it has mode 2700, not 700"),
    ],
    ids=["mode-777", "mode-770", "mode-755", "setgid"],
)
def test_a_folder_others_can_write_or_read_is_refused(safe_parent, prepare, reason):
    state = prepare(safe_parent)
    assert_refused(harness("check", state), f"unsafe state folder {state}", reason)


@needs_root
def test_a_folder_of_another_user_is_refused(safe_parent):
    state = private_dir(safe_parent)
    os.chown(state, OTHER_UID, OTHER_UID)
    assert_refused(harness("check", state), f"it belongs to uid {OTHER_UID}, not root")


@needs_root
def test_a_symbolic_link_is_refused_even_to_a_safe_folder(safe_parent):
    target = private_dir(safe_parent)
    link = safe_parent / "link"
    link.symlink_to(target)
    assert_refused(harness("check", link), f"unsafe state folder {link}", "symbolic link", str(target))


@needs_root
def test_a_dangling_symbolic_link_is_refused(safe_parent):
    # An attacker's link to where root would create the folder (or a file root would then write).
    link = safe_parent / "link"
    link.symlink_to(safe_parent / "not-yet")
    assert_refused(harness("check", link), "symbolic link")
    assert not (safe_parent / "not-yet").exists()


@needs_root
def test_a_file_is_refused(safe_parent):
    (safe_parent / "file").write_text("")
    assert_refused(harness("check", safe_parent / "file"), "it is not a folder")


@needs_root
@pytest.mark.parametrize("mode", [0o777, 0o775, 0o757])
def test_a_parent_that_others_can_write_is_refused(safe_parent, mode):
    # Without the sticky bit anyone who can write the parent can rename our folder and put theirs in its place.
    parent = private_dir(safe_parent, mode)
    state = private_dir(parent)
    assert_refused(harness("check", state), f"its parent {parent} is group/world-writable without the sticky bit")


@needs_root
def test_a_parent_of_another_user_is_refused(safe_parent):
    parent = private_dir(safe_parent, 0o755)
    state = private_dir(parent)
    os.chown(parent, OTHER_UID, OTHER_UID)
    assert_refused(harness("check", state), f"its parent {parent} belongs to uid {OTHER_UID}")


@needs_root
def test_every_ancestor_is_checked(safe_parent):
    unsafe = private_dir(safe_parent, 0o777)
    middle = private_dir(unsafe, 0o755)
    state = private_dir(middle)
    assert_refused(harness("check", state), f"its parent {unsafe} is group/world-writable")


@needs_root
def test_a_link_in_the_parent_path_is_resolved_once(safe_parent):
    # The daemons get the resolved path, so re-pointing the link later cannot redirect them.
    real = private_dir(safe_parent, 0o755)
    (safe_parent / "via").symlink_to(real)
    env = harness("env", safe_parent / "via" / "state")
    assert env.returncode == 0, env.stderr
    assert f"export IRNET_SLURM_DIR={real}/state" in env.stdout.splitlines()


@pytest.mark.parametrize(
    ("path", "reason"),
    [
        ("relative/state", "must be an absolute path"),
        ("/tmp/with space", "only letters, digits"),
        ("/", "must name a folder"),
    ],
)
def test_unusable_paths_are_refused(path, reason):
    proc = harness("check", path)
    assert proc.returncode == 1 and len(proc.stderr.splitlines()) == 1 and reason in proc.stderr, proc.stderr


@pytest.mark.parametrize("command", ["check", "env", "status", "stop", "start"])
def test_no_command_touches_an_unsafe_folder(tmp_path, command):
    """Whatever the command, it refuses before reading or writing in the folder: a prepared harness.log that
    points at another file is not appended to, and nothing is created (no lock, no slurm.conf)."""
    state = tmp_path / "state"
    (state / "run").mkdir(parents=True)
    state.chmod(0o777)
    victim = tmp_path / "victim"
    victim.write_text("must stay as it is\n")
    (state / "harness.log").symlink_to(victim)
    (state / "run" / "slurmd.pid").write_text("1\n")
    before = sorted((p.relative_to(state), p.lstat().st_mtime_ns) for p in state.rglob("*"))

    proc = harness(command, state)

    # Refused for the mode as root; as another user already for its owner (or its parents' owner).
    assert_refused(proc, "unsafe state folder")
    assert victim.read_text() == "must stay as it is\n"
    assert sorted((p.relative_to(state), p.lstat().st_mtime_ns) for p in state.rglob("*")) == before
