"""Running a job as its CWL application package on an existing CWL runner (cwltool or Toil).

With `manager.engine: cwltool|toil` ($APP_PACKAGE_ENGINE), a process whose configuration names
its package (`cwl: cwl/tile-classification.cwl#tile-classification`) runs as that package: the
job child builds the CWL job order from the OGC inputs (a STAC file or folder becomes a staged-in
`Directory` holding a `catalog.json`), runs the runner, reports each workflow step's start and
end as progress (parsed from the runner's log), and moves the output `Directory` (a STAC
catalog) into the job's output folder. Dismissing kills the runner and everything it started.

Toil runs its jobs on the batch system `manager.toil_batch_system` ($APP_PACKAGE_TOIL_BATCH_SYSTEM):
`single_machine` (this host) or `slurm` (`sbatch` on the cluster that $SLURM_CONF names; the job's
output folder must then be on a file system the cluster's nodes share). Each Slurm job carries the
comment `app-package-job:<job id>`; dismissing cancels those (`scancel`) besides killing the runner.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import re
import shutil
import signal
import subprocess
import sys
from collections import deque
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from app_package.defaults import CONFIG_DIR
from app_package.errors import AppPackageError, InputError
from app_package.jobs.cwl_local import local_copy
from app_package.util.outputs import atomic_dir
from app_package.util.progress import ProgressCallback

logger = logging.getLogger(__name__)

ENGINES = ("local", "cwltool", "toil")
TOIL_BATCH_SYSTEMS = ("single_machine", "slurm")  # the ones a dismiss knows how to stop
SLURM_COMMENT = "app-package-job:{job_id}"  # how a dismiss finds a job's Slurm jobs

# cwltool: "[step classify] start" / "[step classify] completed success"; Toil (INFO): "Issued job
# 'CWLJob' tile-classification.0.classify kind-…" (a step's end is only logged at DEBUG)
_START = re.compile(r"\[step (?P<step>[\w.-]+)\] start|Issued job '[^']*' (?P<toil>[\w.-]+) kind-")
_END = re.compile(
    r"\[step (?P<step>[\w.-]+)\] completed (?P<how>\w+)|Job ended: '[^']*' (?P<toil>[\w.-]+) kind-"
)
_CLI_ERROR = re.compile(r"app-package [\w-]+: error: (.*)")


class RunnerError(AppPackageError):
    """The CWL runner failed; the message carries the end of its log."""


def check_engine(engine: str) -> str:
    if engine not in ENGINES:
        raise InputError(
            f"manager.engine {engine!r} (APP_PACKAGE_ENGINE) is not one of {', '.join(ENGINES)}"
        )
    return engine


def check_batch_system(batch_system: str) -> str:
    if batch_system not in TOIL_BATCH_SYSTEMS:
        raise InputError(
            f"manager.toil_batch_system {batch_system!r} (APP_PACKAGE_TOIL_BATCH_SYSTEM) is not "
            f"one of {', '.join(TOIL_BATCH_SYSTEMS)}"
        )
    return batch_system


# ---------------------------------------------------------------- pure parts
def package_ref(ref: str, base: Path = CONFIG_DIR) -> tuple[Path, str]:
    """`path#entry` of a CWL package (relative paths against the folder of the default
    configuration, which holds the bundled `cwl/`)."""
    path, _, entry = ref.partition("#")
    if not entry:
        raise InputError(f"cwl {ref!r}: name the workflow too, e.g. cwl/x.cwl#x")
    p = Path(path)
    return (p if p.is_absolute() else base / p), entry


def workflow_inputs(document: dict[str, Any], entry: str) -> dict[str, str]:
    """The entry workflow's inputs and their CWL types (as written, e.g. `Directory[]`)."""
    for proc in document.get("$graph", [document]):
        if proc.get("id") == entry:
            inputs = proc.get("inputs", {})
            if isinstance(inputs, list):
                inputs = {i["id"]: i for i in inputs}
            return {
                k: type_name(v if isinstance(v, str) else v.get("type")) for k, v in inputs.items()
            }
    raise InputError(f"CWL package has no entry {entry!r}")


def type_name(cwl_type: Any) -> str:
    """A CWL type in its short form: `File`, `Directory[]`, `enum?` (a list with "null" is
    optional: `T?`; records, enums and arrays written out are named by their kind)."""
    if isinstance(cwl_type, list):
        others = [t for t in cwl_type if t != "null"]
        name = type_name(others[0]) if len(others) == 1 else "union"
        return name + "?" if "null" in cwl_type and not name.endswith("?") else name
    if isinstance(cwl_type, dict):
        if cwl_type.get("type") == "array":
            return type_name(cwl_type.get("items")) + "[]"
        return str(cwl_type.get("type"))
    return str(cwl_type)


def workflow_steps(document: dict[str, Any], entry: str) -> list[str]:
    for proc in document.get("$graph", [document]):
        if proc.get("id") == entry:
            steps = proc.get("steps", {})
            return list(steps) if isinstance(steps, dict) else [s["id"] for s in steps]
    return []


def job_order(
    types: dict[str, str], inputs: dict[str, Any], extra: dict[str, Any], stage: Any
) -> dict[str, Any]:
    """A CWL job order: OGC inputs by name; `Directory` inputs through `stage(name, href)`."""
    order: dict[str, Any] = {}
    for name, value in {**extra, **inputs}.items():
        cwl_type = types.get(name)
        if cwl_type is None or value is None:
            continue  # the package does not take it (the server's own settings)
        if cwl_type.startswith("Directory"):
            values = value if isinstance(value, list) else [value]
            dirs = [stage(f"{name}-{i}", str(v)) for i, v in enumerate(values)]
            order[name] = dirs if cwl_type.rstrip("?").endswith("[]") else dirs[0]
        else:
            order[name] = value
    missing = [n for n, t in types.items() if not t.endswith("?") and n not in order]
    if missing:
        raise InputError(
            f"input(s) {', '.join(missing)} required: the job runs as a CWL package, which has "
            "no default for them"
        )
    return order


def step_event(line: str) -> tuple[str, str] | None:
    """('start'|'end', step) from one line of a runner's log, else None."""
    for kind, pattern in (("end", _END), ("start", _START)):
        if m := pattern.search(line):
            return kind, (m.group("step") or m.group("toil")).rsplit(".", 1)[-1]
    return None


def runner_argv(
    engine: str, package: Path, entry: str, work: Path, batch_system: str = "single_machine"
) -> list[str]:
    """The runner's command line (the job order file goes last); `batch_system` is Toil's."""
    bin_dir = Path(sys.executable).parent
    ref = f"{package}#{entry}"
    if engine == "cwltool":
        return [
            str(bin_dir / "cwltool"),
            "--no-container",
            "--outdir",
            str(work / "out"),
            "--tmpdir-prefix",
            f"{work}/tmp/",
            ref,
        ]
    if engine == "toil":
        # single_machine shares this host with the server: at most 2 cores for one job
        cores = ["--maxCores", "2"] if batch_system == "single_machine" else []
        return [
            str(bin_dir / "toil-cwl-runner"),
            "--batchSystem",
            check_batch_system(batch_system),
            *cores,
            "--retryCount",
            "0",
            "--jobStore",
            f"file:{work / 'jobstore'}",
            "--outdir",
            str(work / "out"),
            "--workDir",
            str(work),
            "--no-container",
            "--logLevel",
            "INFO",
            ref,
        ]
    raise InputError(f"engine {engine!r} does not run CWL")


def slurm_env(comment: str, env: dict[str, str]) -> dict[str, str]:
    """Toil's settings for Slurm: every `sbatch` also gets `--comment=<comment>` (after any
    $TOIL_SLURM_ARGS the deployment sets, e.g. a partition or account)."""
    args = env.get("TOIL_SLURM_ARGS", "").strip()
    return {"TOIL_SLURM_ARGS": f"{args} --comment={comment}".strip()}


def commented_jobs(squeue_output: str, comment: str) -> list[str]:
    """Slurm job ids from `squeue -h -o '%i %k'` whose comment is `comment`."""
    rows = (line.split(None, 1) for line in squeue_output.splitlines())
    return [row[0] for row in rows if len(row) == 2 and row[1].strip() == comment]


# ---------------------------------------------------------------- I/O
def stage_in(href: str, stage_dir: Path) -> dict[str, str]:
    """A STAC file or folder as a staged-in CWL `Directory` holding a `catalog.json`."""
    path = Path(href.removeprefix("file://"))
    if path.is_dir() and (path / "catalog.json").is_file():
        return {"class": "Directory", "location": path.as_uri()}
    if path.name == "catalog.json" and path.is_file():
        return {"class": "Directory", "location": path.parent.as_uri()}
    if not path.is_file():
        raise InputError(f"{href}: not a STAC file or a folder holding catalog.json")
    stage_dir.mkdir(parents=True)
    catalog = {
        "type": "Catalog",
        "stac_version": "1.1.0",
        "id": stage_dir.name,
        "description": f"staged-in {path.name}",
        "links": [
            {"rel": "root", "href": "./catalog.json", "type": "application/json"},
            {"rel": "item", "href": str(path.resolve()), "type": "application/geo+json"},
        ],
    }
    (stage_dir / "catalog.json").write_text(json.dumps(catalog))
    return {"class": "Directory", "location": stage_dir.as_uri()}


def _descendants(pid: int) -> list[int]:
    children: dict[int, list[int]] = {}
    for proc in Path("/proc").iterdir():
        if proc.name.isdigit():
            with contextlib.suppress(OSError, IndexError, ValueError):
                ppid = int((proc / "stat").read_text().rsplit(") ", 1)[1].split()[1])
                children.setdefault(ppid, []).append(int(proc.name))
    out, todo = [], [pid]
    while todo:
        for c in children.get(todo.pop(), []):
            out.append(c)
            todo.append(c)
    return out


def _kill_tree(runner: subprocess.Popen[str], pids: Iterable[int]) -> None:
    """Stop the runner's session and everything it started (Toil puts jobs in new sessions)."""
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(runner.pid, signal.SIGTERM)
    with contextlib.suppress(subprocess.TimeoutExpired):
        runner.wait(timeout=1)
    for pid in [runner.pid, *pids]:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(pid, signal.SIGKILL)


def cancel_slurm_jobs(comment: str, env: dict[str, str]) -> list[str]:
    """`scancel` the queued and running Slurm jobs that carry `comment`; their ids."""
    try:
        listed = subprocess.run(
            ["squeue", "-h", "-o", "%i %k"],
            env=env, capture_output=True, text=True, timeout=10, check=True,
        )  # fmt: skip
        ids = commented_jobs(listed.stdout, comment)
        if ids:
            subprocess.run(["scancel", *ids], env=env, capture_output=True, timeout=10, check=True)
    except (OSError, subprocess.SubprocessError) as e:
        logger.error("Slurm jobs %s not cancelled: %s", comment, e)
        return []
    return ids


def runner_work(output: Path) -> Path:
    """The runner's working folder beside a job's output folder (removed with partial outputs);
    every process a runner starts names it on its command line or runs in it."""
    return output.parent / f".{output.name}.tmp-cwl"


def _processes_in(work: Path) -> list[int]:
    """Live processes whose command line names `work` or whose working folder is in it."""
    mark = str(work)
    pids = []
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit() or int(proc.name) == os.getpid():
            continue
        with contextlib.suppress(OSError):
            if mark.encode() in (proc / "cmdline").read_bytes() or os.readlink(
                proc / "cwd"
            ).startswith(mark):
                pids.append(int(proc.name))
    return pids


def stop_leftovers(spec: dict[str, Any]) -> list[int]:
    """What a CWL job's runner left running when the job's process died without stopping it
    (a crash, SIGKILL): the runner has its own session, so killing the job's process group
    misses it. Kills those processes on this host and cancels the job's Slurm jobs; their pids."""
    if spec.get("engine") not in ("cwltool", "toil") or not spec.get("output"):
        return []
    output = Path(spec["output"])
    pids = _processes_in(runner_work(output))
    for pid in pids:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(pid, signal.SIGKILL)
    if spec.get("engine") == "toil" and spec.get("toil_batch_system") == "slurm":
        cancel_slurm_jobs(SLURM_COMMENT.format(job_id=output.name), dict(os.environ))
    if pids:
        logger.warning("job %s: killed %d processes its runner left", output.name, len(pids))
    return pids


def run_package(
    engine: str,
    ref: str,
    inputs: dict[str, Any],
    extra: dict[str, Any],
    output: Path,
    progress: ProgressCallback,
    batch_system: str = "single_machine",
) -> Path:
    """Run a job's CWL package with `engine` (Toil on `batch_system`); the output catalog lands
    in `output`, whose name is the job's id."""
    import yaml

    package, entry = package_ref(ref)
    document = yaml.safe_load(package.read_text())
    steps = workflow_steps(document, entry)
    work = runner_work(output)  # removed with the job's partial outputs
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    try:
        order = job_order(
            workflow_inputs(document, entry),
            inputs,
            extra,
            lambda name, href: stage_in(href, work / "stage" / name),
        )
        (work / "job.json").write_text(json.dumps(order))
        local = local_copy(package, work / "package")  # the container a hint: --no-container
        argv = [*runner_argv(engine, local, entry, work, batch_system), str(work / "job.json")]
        env = dict(
            os.environ,
            PATH=f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}",
            HOME=str(work),
        )
        comment = None
        if engine == "toil" and batch_system == "slurm":
            comment = SLURM_COMMENT.format(job_id=output.name)
            env.update(slurm_env(comment, env))
        progress(1, f"{engine}: starting {package.name}#{entry}")
        stdout = run_runner(argv, work, env, steps, progress, engine, comment)
        produced = next(
            (
                v
                for v in json.loads(stdout or "{}").values()
                if isinstance(v, dict) and v.get("class") == "Directory"
            ),
            None,
        )
        if produced is None:
            raise RunnerError(f"{engine} produced no output Directory: {stdout[-500:]}")
        with atomic_dir(output) as tmp:
            shutil.rmtree(tmp)
            shutil.move(produced["path"], tmp)
        if not (output / "catalog.json").is_file():
            raise RunnerError(f"{engine}: the package's output has no catalog.json")
        return output / "catalog.json"
    finally:
        shutil.rmtree(work, ignore_errors=True)


def run_runner(
    argv: list[str],
    work: Path,
    env: dict[str, str],
    steps: list[str],
    progress: ProgressCallback,
    engine: str,
    slurm_comment: str | None = None,
) -> str:
    """Run the runner, turning its log into progress; its stdout (the output object). Stopped
    early, it kills the runner's tree and cancels the Slurm jobs carrying `slurm_comment`."""
    out = (work / "stdout.json").open("w+")
    runner = subprocess.Popen(
        argv,
        cwd=work,
        env=env,
        stdout=out,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,  # its own session: a dismiss kills it and all it started
    )
    previous = signal.getsignal(signal.SIGTERM)

    def stop() -> None:
        pids = _descendants(runner.pid)
        if slurm_comment:  # before and after the runner goes: it may be submitting more
            cancel_slurm_jobs(slurm_comment, env)
        _kill_tree(runner, pids)
        if slurm_comment:
            cancel_slurm_jobs(slurm_comment, env)

    def on_term(signum: int, frame: Any) -> None:
        stop()
        raise SystemExit(143)

    signal.signal(signal.SIGTERM, on_term)
    tail: deque[str] = deque(maxlen=40)
    started: set[str] = set()
    done: set[str] = set()
    try:
        assert runner.stderr is not None
        for line in runner.stderr:
            tail.append(line.rstrip())
            event = step_event(line)
            if event is None or (steps and event[1] not in steps):
                continue
            kind, step = event
            (done if kind == "end" else started).add(step)
            # a runner that logs only starts (Toil): the steps before the latest one are done
            pct = 5 + 90 * max(len(done), len(started) - 1) / max(1, len(steps))
            progress(pct, f"{engine}: step {step} {'done' if kind == 'end' else 'running'}")
        code = runner.wait()
    finally:
        signal.signal(signal.SIGTERM, previous)
        if runner.poll() is None:
            stop()
        out.seek(0)
        stdout = out.read()
        out.close()
    if code != 0:
        for line in reversed(tail):  # the CLI's own message: the request's fault (400)
            if m := _CLI_ERROR.search(line):
                raise InputError(m.group(1))
        log = "\n".join(tail)
        raise RunnerError(f"{engine} failed (exit {code}); the end of its log:\n{log}")
    return stdout
