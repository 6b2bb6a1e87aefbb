"""The command line as a door: exit statuses that say what happened, the option behind an
error named by the CLI (the library names the input), and -v / -vv changing the log level."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from app_package.cli import build_parser, option_for
from app_package.errors import EX_DATAERR, EX_UNAVAILABLE, EX_USAGE


def _run(*argv: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", "from app_package.cli import main; main()", *argv],
        cwd=cwd, capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip


def _catalog(folder: Path) -> Path:
    folder.mkdir(parents=True)
    (folder / "catalog.json").write_text(
        '{"type": "Catalog", "stac_version": "1.1.0", "id": "a", "description": "a", "links": []}'
    )
    return folder


def test_exit_statuses_say_what_happened(tmp_path: Path) -> None:
    usage = _run("train", "--stac", "x", "--output", str(tmp_path / "o"), "--epochs", "0",
                 cwd=tmp_path)  # fmt: skip
    assert usage.returncode == EX_USAGE == 2, usage.stderr
    missing = _run("stac-merge", str(tmp_path / "out"), str(tmp_path / "nope"), cwd=tmp_path)
    assert missing.returncode == EX_DATAERR == 65, missing.stderr
    assert "does not exist" in missing.stderr
    down = _run("best-model", "--tracking-uri", "http://127.0.0.1:9", cwd=tmp_path)
    assert down.returncode == EX_UNAVAILABLE == 69, down.stderr
    assert "unreachable" in down.stderr and "(option --tracking-uri)" in down.stderr
    argparse_usage = _run("classify", cwd=tmp_path)  # missing required options: argparse's 2
    assert argparse_usage.returncode == 2


def test_library_messages_name_inputs_and_the_cli_adds_its_option(tmp_path: Path) -> None:
    r = _run("stac-merge", str(tmp_path / "out"), str(_catalog(tmp_path / "a")), "--id", "",
             cwd=tmp_path)  # fmt: skip
    assert r.returncode == EX_USAGE
    message = r.stderr.split("error: ", 1)[1]
    assert "parent catalog id is empty" in message and message.rstrip().endswith("(option --id)")
    args = build_parser().parse_args(["watch", "--stac-url", "http://x"])
    assert option_for(args, "poll_interval_s") == "--interval"
    assert option_for(args, "redis_url") == "--redis-url"
    assert option_for(args, "checksum") is None  # not an option of `watch`
    assert option_for(args, None) is None


@pytest.mark.parametrize(
    ("flags", "shown", "hidden"),
    [
        ((), (), ("INFO", "DEBUG")),
        (("-v",), ("INFO",), ("DEBUG",)),
        (("-vv",), ("INFO", "DEBUG"), ()),
    ],
)
def test_verbosity_changes_the_log_level(
    tmp_path: Path, flags: tuple[str, ...], shown: tuple[str, ...], hidden: tuple[str, ...]
) -> None:
    a, b = _catalog(tmp_path / "a"), _catalog(tmp_path / "b")
    r = _run(*flags, "stac-merge", str(tmp_path / "out"), str(a), str(b), cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    for level in shown:
        assert f" {level} app_package." in r.stderr, r.stderr
    for level in hidden:
        assert f" {level} app_package." not in r.stderr, r.stderr
