"""The README's first curl examples, run as written (only the host and the job id filled in),
in order, against a fresh server with the default configuration: classification works before
any training (the shipped model is registered on the empty registry), then training, its
status and results, a results document, the filtered job list and the health check."""

from __future__ import annotations

import re
import shlex
import subprocess
import time
from pathlib import Path

import pytest

from tests.conftest import REPO
from tests.support.server import Server

README = REPO / "README.md"
DOCUMENTED_URL = "http://127.0.0.1:5000"


def readme_commands() -> list[str]:
    """The curl commands of the README's first `bash` block after 'Try it', one string each."""
    text = README.read_text()
    start = text.index("```bash", text.index("Try it"))
    block = text[start + len("```bash") : text.index("```", start + 7)]
    commands, current = [], ""
    for raw in block.splitlines():
        line = raw.strip()
        if not line or (line.startswith("#") and not current):
            continue
        if not current and not line.startswith("curl "):
            continue
        if line.endswith("\\"):
            current += line[:-1] + " "
            continue
        current += line
        commands.append(shlex.join(shlex.split(current, comments=True)))  # comments dropped
        current = ""
    return commands


@pytest.mark.slow  # a real classification and a real training run: ~1 min on 2 cores
def test_readme_curl_examples_run_in_order_on_a_fresh_server(tmp_path: Path) -> None:
    commands = readme_commands()
    assert commands[0].startswith("curl -s") and "tile-classification" in commands[0]
    assert len(commands) == 7
    srv = Server(tmp_path / "var", config=REPO / "pygeoapi-config.yml").start()
    job_id = ""
    try:
        for command in commands:
            if "<jobID>" in command:
                assert job_id, command
                if "/results" in command:
                    srv.wait(job_id, ("successful",), timeout=300)
                command = command.replace("<jobID>", job_id)
            argv = shlex.split(command.replace(DOCUMENTED_URL, srv.url))
            done = subprocess.run(
                [*argv, "-w", "\n%{http_code}"], capture_output=True, text=True, timeout=300
            )
            assert done.returncode == 0, (command, done.stderr)
            body, _, code = done.stdout.rpartition("\n")
            assert code in ("200", "201"), (command, code, body[-2000:])
            found = re.search(r"^location: \S+/jobs/(\S+)\s*$", body, re.I | re.M)
            if found:
                job_id = found.group(1)
            if "tile-classification" in command:
                assert '"type": "Catalog"' in body or '"type":"Catalog"' in body, body[-2000:]
            if "/health" in command:
                assert '"status":"pass"' in body.replace(" ", ""), body
            time.sleep(0.1)
    finally:
        srv.stop()
