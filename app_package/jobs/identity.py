"""Which server worker runs a job, and whether that worker is still alive (`/proc`, heartbeats)."""

from __future__ import annotations

import os
import socket
from dataclasses import dataclass
from pathlib import Path
from typing import Any


@dataclass(frozen=True)
class Owner:
    """The server worker that runs a job: host, boot, pid and the pid's start time.

    The start time tells a live worker from a later process that got the same pid; the boot id
    tells a reboot. Workers on other hosts are judged by their heartbeat only.
    """

    host: str
    boot: str
    pid: int
    start: str

    def __str__(self) -> str:
        return f"{self.host}/{self.boot}/{self.pid}/{self.start}"

    @classmethod
    def parse(cls, text: str) -> Owner | None:
        parts = text.rsplit("/", 3)
        if len(parts) != 4 or not parts[2].isdigit():
            return None
        return cls(parts[0], parts[1], int(parts[2]), parts[3])

    @classmethod
    def me(cls) -> Owner:
        pid = os.getpid()
        return cls(socket.gethostname(), _boot_id(), pid, _start_time(pid))

    def alive_here(self) -> bool:
        """Whether this worker process still exists (call only on its own host and boot)."""
        return _start_time(self.pid) == self.start


def _boot_id() -> str:
    try:
        return Path("/proc/sys/kernel/random/boot_id").read_text().strip()
    except OSError:
        return "unknown-boot"


def _start_time(pid: int) -> str:
    """A process's start time in clock ticks since boot ('' if there is no such process)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(") ", 1)[1].split()
    except (OSError, IndexError):
        return ""
    return "" if fields[0] == "Z" else fields[19]


def orphan_reason(
    job: dict[str, Any], heartbeat_age: float, me: Owner, stale_after: float
) -> str | None:
    """Why a `running` job has no live worker any more, or None while it has one."""
    owner = Owner.parse(str(job.get("owner") or ""))
    if owner is None:
        return "no server worker is recorded as running it"
    if owner == me:
        return None  # ours: the supervisor reaps its own children
    if owner.host == me.host and owner.boot != me.boot:
        return f"host {owner.host} rebooted"
    if owner.host == me.host and owner.boot == me.boot:
        return None if owner.alive_here() else f"its server worker (pid {owner.pid}) is gone"
    if heartbeat_age > stale_after:
        return f"no heartbeat from its server worker {owner} for {heartbeat_age:.0f} s"
    return None


def on_this_host(owner: Owner | None, me: Owner) -> bool:
    """Whether `owner` runs on this host, in this boot."""
    return owner is not None and owner.host == me.host and owner.boot == me.boot


# every job's process names itself so (as `ps` shows it): how a job's process is found again
# after a restart, whatever module path started it
JOB_TITLE = "app-package-job"


def job_title(job_id: str) -> str:
    """The process title of the job's process (`app-package-job <id>`)."""
    return f"{JOB_TITLE} {job_id}"


def alive(pid: int) -> bool:
    """Whether `pid` is a live process (a zombie is not)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        return Path(f"/proc/{pid}/stat").read_text().split(") ")[1][0] != "Z"
    except (OSError, IndexError):
        return True


def runs_job(pid: int, job_id: str) -> bool:
    """Whether `pid` is a live process running `job_id` (its title names the job)."""
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return False
    title = cmdline.replace(b"\x00", b" ").strip()
    return title == job_title(job_id).encode() and alive(pid)
