"""The installed package works without a checkout: the wheel carries the default server
configuration, the CWL packages and the bundled sample, and `app-package serve` from a fresh
venv outside the repository runs a job (what the Docker image's `pip install .` gets)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import sysconfig
import time
import zipfile
from pathlib import Path
from urllib.parse import urljoin

import requests

from tests.conftest import REPO
from tests.support.procs import stop
from tests.support.server import free_port

# what a build needs from the checkout (the folder links under app_package/config included)
SOURCES = ("pyproject.toml", "README.md", "pygeoapi-config.yml", "cwl", "app_package", "processes")


def _build_wheel(tmp: Path) -> Path:
    src = tmp / "src"
    src.mkdir()
    for name in SOURCES:
        path = REPO / name
        if path.is_dir():
            shutil.copytree(path, src / name, symlinks=True,
                            ignore=shutil.ignore_patterns("__pycache__", "*.egg-info"))  # fmt: skip
        else:
            shutil.copy2(path, src / name)
    out = tmp / "dist"
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation",
         "-w", str(out), str(src)],
        check=True, capture_output=True, timeout=300,
    )  # fmt: skip
    (wheel,) = out.glob("*.whl")
    return wheel


def test_the_wheel_serves_and_runs_a_job_without_a_checkout(tmp_path: Path) -> None:
    wheel = _build_wheel(tmp_path)
    names = set(zipfile.ZipFile(wheel).namelist())
    for needed in ("app_package/config/pygeoapi-config.yml",
                   "app_package/config/cwl/tile-classification.cwl",
                   "app_package/sample/s2-l1c/item.json", "processes/water_bodies.py"):  # fmt: skip
        assert needed in names, needed
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    py = venv / "bin" / "python"
    subprocess.run(
        [sys.executable, "-m", "pip", "--python", str(py), "install", "-q", "--no-deps",
         str(wheel)],
        check=True, capture_output=True, timeout=300,
    )  # fmt: skip
    # the dependencies come from this venv's site-packages as a plain path: its .pth files
    # (the editable install of the checkout among them) are not processed there
    site = Path(sysconfig.get_paths(vars={"base": str(venv)})["purelib"])
    (site / "deps.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    run = tmp_path / "run"  # an empty working folder, nowhere near the checkout
    run.mkdir()
    where = subprocess.run(
        [str(py), "-c", "import app_package, processes; print(app_package.__file__); "
         "print(processes.__file__)"],
        cwd=run, capture_output=True, text=True, check=True,
    ).stdout.split()  # fmt: skip
    assert all(Path(w).is_relative_to(venv) for w in where), where
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("APP_PACKAGE_", "PYGEOAPI_"))}
    env.update(APP_PACKAGE_DATA_DIR=str(run / "var"), PYTHONPATH="")
    log = (run / "serve.log").open("w")
    proc = subprocess.Popen(
        [str(venv / "bin" / "app-package"), "serve", "--port", str(port)],
        cwd=run, env=env, stdout=log, stderr=subprocess.STDOUT,
    )  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 90
        while True:
            assert proc.poll() is None, (run / "serve.log").read_text()[-3000:]
            try:
                if requests.get(f"{url}/conformance", timeout=2).status_code == 200:
                    break
            except requests.ConnectionError:
                pass
            assert time.monotonic() < deadline, (run / "serve.log").read_text()[-3000:]
            time.sleep(0.3)
        r = requests.post(f"{url}/processes/water-bodies/execution", json={"inputs": {}},
                          headers={"Prefer": "wait=120"}, timeout=180)  # fmt: skip
        assert r.status_code == 200, r.text
        catalog = r.json()
        assert catalog["type"] == "Catalog"
        (link,) = [lk for lk in catalog["links"] if lk["rel"] == "item"]
        item = requests.get(link["href"], timeout=10).json()
        assert item["properties"]["water:fraction"] > 0  # the bundled sample, from the wheel
        mask = requests.get(urljoin(link["href"], item["assets"]["water"]["href"]), timeout=10)
        assert mask.status_code == 200 and mask.content[:4] in (b"II*\x00", b"MM\x00*")
    finally:
        stop(proc)
        log.close()
