"""Starting and stopping a job's process: the worker's fork server, process groups, signals.

Children are forked by the worker's fork server, a single-threaded process that has already
imported what every job needs (pygeoapi and the job code: most of a CPU-second that a fresh
interpreter per job would pay again while requests are being served). Each child leads its own
process group, so a dismiss kills the whole tree and a server crash does not.
"""

from __future__ import annotations

import contextlib
import multiprocessing
import os
import signal
import time
from collections.abc import Callable
from dataclasses import dataclass
from multiprocessing.process import BaseProcess
from pathlib import Path
from typing import Any

from app_package.jobs.identity import alive, runs_job

KILL_GRACE_S = 2.0  # SIGTERM, then SIGKILL after this long
# imported once by each worker's fork server, not by every job (pygeoapi's import is the cost)
FORK_SERVER_PRELOAD = ["app_package.jobs.child", "pygeoapi.plugin", "setproctitle"]


@dataclass
class ForkedChild:
    """A job's process forked by the fork server (`multiprocessing` knows its exit code).

    The exit code comes through the fork server; should the fork server die first (killed, out of
    memory), the job still runs: it is then watched by its pid until it is gone. Safe to use
    from several threads: the reaper may close it while a dismiss still polls it.
    """

    process: BaseProcess
    job_id: str
    exit_code: int | None = None

    @property
    def pid(self) -> int:
        return int(self.process.pid or 0)

    @property
    def returncode(self) -> int | None:
        return self.poll()

    def poll(self) -> int | None:
        try:
            code = self.process.exitcode
        except ValueError:  # closed: it had exited, with the code kept here
            return self.exit_code
        if code is not None and self.exit_code is None and runs_job(self.pid, self.job_id):
            return None  # the fork server is gone (its pipe closed), not the job
        if code is not None:
            self.exit_code = code
        return code

    def wait(self, timeout: float | None = None) -> int | None:
        with contextlib.suppress(ValueError):
            self.process.join(timeout)
        return self.poll()

    def close(self) -> None:
        """Release its handles once it has exited."""
        if self.poll() is not None:
            with contextlib.suppress(ValueError):
                self.process.close()


def _fork_server() -> Any:
    ctx = multiprocessing.get_context("forkserver")
    ctx.set_forkserver_preload(FORK_SERVER_PRELOAD)
    return ctx


def start_fork_server() -> None:
    """Start this process's fork server (once; `multiprocessing` restarts it if it dies)."""
    from multiprocessing import forkserver

    _fork_server()
    forkserver.ensure_running()


def fork_job(
    job_id: str, env: dict[str, str], target: Callable[[str, dict[str, str]], None]
) -> ForkedChild:
    """Start `target(job_id, env)` as the job's process from the fork server."""
    process = _fork_server().Process(
        target=target, args=(job_id, env), name=f"job-{job_id}", daemon=False
    )
    process.start()
    return ForkedChild(process, job_id)


def kill_group(pid: int, child: ForkedChild | None = None) -> None:
    """SIGTERM the process group, SIGKILL it after a grace period.

    A child forked a moment ago may not lead its group yet (its first act is `setsid`): then
    the process itself is signalled.
    """
    signal_group(pid, signal.SIGTERM)
    deadline = time.monotonic() + KILL_GRACE_S
    while time.monotonic() < deadline:
        if child is not None and child.poll() is not None:
            break
        if child is None and not alive(pid):
            break
        time.sleep(0.05)
    signal_group(pid, signal.SIGKILL)
    if child is not None:
        child.wait(timeout=2)


def signal_group(pid: int, sig: signal.Signals) -> None:
    try:
        os.killpg(pid, sig)
    except ProcessLookupError:  # no such group (yet): the process alone
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(pid, sig)
    except PermissionError:
        pass


def kill_job_here(job: dict[str, Any]) -> None:
    """Kill a job's child on this host: by its recorded pid, else found by its command line
    (a worker may die between starting the child and recording its pid)."""
    job_id = str(job["identifier"])
    if job.get("pid"):
        kill_group_if_ours(int(job["pid"]), job_id)
        return
    for proc in Path("/proc").iterdir():
        if proc.name.isdigit():
            kill_group_if_ours(int(proc.name), job_id, leader_only=True)


def kill_group_if_ours(pid: int, job_id: str, leader_only: bool = False) -> None:
    """Kill a previous server's child, only if that pid still runs this job (pids get reused)."""
    if runs_job(pid, job_id):
        with contextlib.suppress(OSError):
            if leader_only and os.getpgid(pid) != pid:
                return  # not the job's child itself (it leads its own process group)
        kill_group(pid)
