"""Snakemake as a user's terminal runs it, for the fault tests: in the background, in its own session (so that its
whole process tree can be found, stopped and killed like a crashed machine's), with its output in a file."""

from __future__ import annotations

import contextlib
import os
import re
import signal
import subprocess
import time
from pathlib import Path

import psutil
import pytest
import torch

from tests.workflow.harness import SNAKEMAKE

RUN_TIMEOUT_S = 600
ENV = {**os.environ, "PYTHONWARNINGS": "ignore"}


class Snakemake:
    """`snakemake` in the background, in its own session, so that its whole process tree can be found and killed."""

    def __init__(self, workdir: Path, *args: str, name: str):
        self.workdir, self.name = workdir, name
        self.log = workdir / f"snakemake-{name}.out"
        with open(self.log, "w") as out:
            self.proc = subprocess.Popen(
                [*SNAKEMAKE, *args], cwd=workdir, stdout=out, stderr=subprocess.STDOUT, env=ENV, start_new_session=True
            )

    def output(self) -> str:
        return self.log.read_text()

    def tree(self) -> list[psutil.Process]:
        try:
            return [psutil.Process(self.proc.pid), *psutil.Process(self.proc.pid).children(recursive=True)]
        except psutil.NoSuchProcess:
            return []

    def scripts(self, rule: str) -> list[psutil.Process]:
        """The job processes of `rule`: Snakemake runs `script:` files as .snakemake/scripts/tmpXXXX.<rule>.py."""
        found = []
        for process in self.tree()[1:]:
            try:
                cmdline = process.cmdline()
            except (psutil.NoSuchProcess, psutil.ZombieProcess):
                continue
            if any(re.search(rf"/\.snakemake/scripts/[^/]*\.{rule}\.py$", arg) for arg in cmdline):
                found.append(process)
        return found

    def wait_until(self, condition, what: str, timeout: float = RUN_TIMEOUT_S):
        """Poll `condition()` every 10 ms until it returns something truthy; fail if Snakemake ends first."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            result = condition()
            if result:
                return result
            if self.proc.poll() is not None:
                pytest.fail(f"snakemake ({self.name}) ended before {what}:\n{self.output()[-5000:]}", pytrace=False)
            time.sleep(0.01)
        self.kill_all()
        pytest.fail(f"timeout waiting for {what}:\n{self.output()[-5000:]}", pytrace=False)

    def finish(self, timeout: float = RUN_TIMEOUT_S) -> int:
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.kill_all()
            pytest.fail(
                f"snakemake ({self.name}) did not finish in {timeout} s:\n{self.output()[-5000:]}", pytrace=False
            )

    def kill_all(self) -> None:
        """kill -9 of Snakemake and every job (a crashed node): stop all first, so that none reacts to the others."""
        processes = self.tree()
        for process in processes:
            _signal(process, signal.SIGSTOP)
        for process in processes:
            _signal(process, signal.SIGKILL)
        self.proc.wait(60)
        psutil.wait_procs(processes, timeout=60)

    def interrupt(self) -> None:
        """Ctrl-C at the terminal: SIGINT to Snakemake's whole process group (Snakemake and its jobs)."""
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.proc.pid, signal.SIGINT)

    def finished_jobs(self) -> int:
        """Jobs this Snakemake has finished so far, from its output."""
        return self.output().count("Finished jobid:")


def checkpoint_epoch(workdir: Path, rule: str) -> int:
    """0-based epoch of the last checkpoint that `rule` saved."""
    state = torch.load(workdir / f"results/checkpoints/{rule}/last.pt", map_location="cpu", weights_only=True)
    return int(state["epoch"])


def _signal(process: psutil.Process, sig: int) -> None:
    with contextlib.suppress(psutil.NoSuchProcess):
        process.send_signal(sig)
