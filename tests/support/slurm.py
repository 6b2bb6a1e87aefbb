"""A throwaway one-node Slurm cluster for tests: a private munge daemon, `slurmctld` and `slurmd`
on free loopback ports, all in one temporary folder, configured without cgroups.

Debian's packages provide it (`apt-get install slurm-wlm munge`; `.ci/run` installs them). Clients
(sbatch, squeue, Toil, the server) find the cluster through `SLURM_CONF` (`SlurmCluster.env`).
"""

from __future__ import annotations

import getpass
import os
import shutil
import subprocess
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from tests.support.server import free_port

BINARIES = ("munged", "mungekey", "slurmctld", "slurmd", "sbatch", "squeue", "sinfo", "scancel")
INSTALL_HINT = "install them to run the Slurm tests: apt-get install slurm-wlm munge (.ci/run does)"
START_TIMEOUT_S = 60.0


class SlurmMissing(RuntimeError):
    """Slurm or munge is not installed here."""


def missing_binaries() -> list[str]:
    return [b for b in BINARIES if shutil.which(b) is None and not Path("/usr/sbin", b).exists()]


def _which(name: str) -> str:
    return shutil.which(name) or str(Path("/usr/sbin", name))


def machine() -> tuple[int, int]:
    """(CPUs, MiB of memory) slurmd may offer: all cores, 90 % of the memory."""
    mem_kib = next(
        int(line.split()[1])
        for line in Path("/proc/meminfo").read_text().splitlines()
        if line.startswith("MemTotal:")
    )
    return os.cpu_count() or 1, int(mem_kib / 1024 * 0.9)


def slurm_conf(root: Path, ctld_port: int, slurmd_port: int, cpus: int, mem_mib: int) -> str:
    """slurm.conf of a one-node cluster on loopback whose state, logs and sockets live in `root`."""
    user = getpass.getuser()
    return f"""\
ClusterName=apptest
SlurmctldHost=localhost(127.0.0.1)
SlurmctldPort={ctld_port}
SlurmdPort={slurmd_port}
SlurmUser={user}
SlurmdUser={user}
AuthType=auth/munge
AuthInfo=socket={root / "munge.sock"}
CredType=cred/munge
StateSaveLocation={root / "state"}
SlurmdSpoolDir={root / "spool"}
SlurmctldPidFile={root / "slurmctld.pid"}
SlurmdPidFile={root / "slurmd.pid"}
SlurmctldLogFile={root / "slurmctld.log"}
SlurmdLogFile={root / "slurmd.log"}
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
JobCompType=jobcomp/filetxt
JobCompLoc={root / "jobcomp.txt"}
SwitchType=switch/none
MpiDefault=none
SelectType=select/cons_tres
SelectTypeParameters=CR_CPU_Memory
SchedulerType=sched/backfill
ReturnToService=2
MinJobAge=600
NodeName=localhost NodeAddr=127.0.0.1 CPUs={cpus} RealMemory={mem_mib} State=UNKNOWN
PartitionName=main Nodes=ALL Default=YES MaxTime=INFINITE State=UP
"""


class SlurmCluster:
    """munged, slurmctld and slurmd as child processes of the test session."""

    def __init__(self) -> None:
        if missing := missing_binaries():
            raise SlurmMissing(f"{', '.join(missing)} not found: {INSTALL_HINT}")
        # munged wants every folder above its socket searchable by all: not pytest's 0700 ones
        self.root = Path(tempfile.mkdtemp(prefix="app-package-slurm-"))
        self.root.chmod(0o755)
        self.conf = self.root / "slurm.conf"
        self.procs: list[subprocess.Popen[bytes]] = []

    @property
    def env(self) -> dict[str, str]:
        """What a Slurm client needs to find this cluster."""
        return {"SLURM_CONF": str(self.conf)}

    def start(self) -> SlurmCluster:
        for sub in ("state", "spool"):
            (self.root / sub).mkdir()
        key = self.root / "munge.key"
        subprocess.run([_which("mungekey"), "--create", f"--keyfile={key}"], check=True)
        key.chmod(0o600)
        self._spawn(
            _which("munged"), "--foreground", f"--socket={self.root / 'munge.sock'}",
            f"--key-file={key}", f"--pid-file={self.root / 'munged.pid'}",
            f"--log-file={self.root / 'munged.log'}", f"--seed-file={self.root / 'munged.seed'}",
        )  # fmt: skip
        self._wait(lambda: (self.root / "munge.sock").exists(), "munged")
        cpus, mem = machine()
        self.conf.write_text(slurm_conf(self.root, free_port(), free_port(), cpus, mem))
        self._spawn(_which("slurmctld"), "-D", "-f", str(self.conf))
        self._spawn(_which("slurmd"), "-D", "-N", "localhost", "-f", str(self.conf))
        self._wait(lambda: self.sinfo() == "idle", "slurmd (node idle in sinfo)")
        return self

    def _spawn(self, *argv: str) -> None:
        name = Path(argv[0]).name
        log = (self.root / f"{name}.out").open("ab")
        env = {**os.environ, **self.env}
        self.procs.append(subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, env=env))
        log.close()

    def _wait(self, ready: Callable[[], bool], what: str) -> None:
        deadline = time.monotonic() + START_TIMEOUT_S
        while not ready():
            dead = [p for p in self.procs if p.poll() is not None]
            if dead or time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"{what} did not start: {self.logs()}")
            time.sleep(0.2)

    def run(self, *argv: str) -> str:
        """A Slurm client command against this cluster; its stdout."""
        r = subprocess.run(
            argv, env={**os.environ, **self.env}, capture_output=True, text=True, timeout=30,
            check=False,
        )  # fmt: skip
        if r.returncode:
            raise RuntimeError(f"{' '.join(argv)} failed ({r.returncode}): {r.stderr}")
        return r.stdout

    def sinfo(self) -> str:
        """The node's state ("idle", "mixed", …); "" while the controller does not answer."""
        try:
            return self.run("sinfo", "-h", "-N", "-o", "%t").strip()
        except (RuntimeError, subprocess.TimeoutExpired):
            return ""

    def jobs(self, states: str = "all") -> list[dict[str, str]]:
        """Jobs the controller knows (finished ones for MinJobAge): id, name, comment, state."""
        out = self.run("squeue", "-h", "-t", states, "-o", "%i|%j|%k|%T")
        keys = ("id", "name", "comment", "state")
        return [dict(zip(keys, line.split("|"), strict=True)) for line in out.splitlines()]

    def logs(self) -> str:
        return "\n".join(
            f"--- {p.name}\n{p.read_text(errors='replace')[-3000:]}"
            for p in sorted(self.root.glob("*.log")) + sorted(self.root.glob("*.out"))
        )

    def stop(self) -> None:
        """Cancel what still runs (job steps outlive slurmd), stop the daemons, remove it all."""
        if self.procs and self.sinfo():
            self.run("scancel", "--user", getpass.getuser())
            deadline = time.monotonic() + 20
            while self.jobs("PD,R,CG") and time.monotonic() < deadline:
                time.sleep(0.2)
        for proc in reversed(self.procs):
            if proc.poll() is None:
                proc.terminate()
                try:
                    proc.wait(timeout=20)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait()
        self.procs.clear()
        shutil.rmtree(self.root, ignore_errors=True)
