"""eurosat-download against a loopback HTTP server serving a small archive of official layout."""

from __future__ import annotations

import hashlib
import json
import socket
import zipfile
from pathlib import Path

import pytest

from app_package.cli import main
from app_package.data.dataset import load_labelled_chips
from app_package.data.download import (
    Checksum,
    download_file,
    eurosat_download,
    parse_checksum,
    zenodo_checksum,
)
from app_package.data.eurosat_stac import SPLIT_PROPERTY
from app_package.eo.bands import EUROSAT_CLASS_NAMES
from app_package.errors import DataError, DownloadError, InputError
from tests.support.datagen import write_eurosat_tree
from tests.support.httpserve import serve_directory

RECORD = "records/7711810/files/EuroSAT_MS.zip"


def _md5(path: Path) -> str:
    return "md5:" + hashlib.md5(path.read_bytes()).hexdigest()


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A web root like Zenodo (archive + records API) plus the three split files."""
    work = tmp_path_factory.mktemp("site")
    write_eurosat_tree(work / "EuroSAT_MS", 3, seed=4)
    root = work / "www"
    archive = root / RECORD
    archive.parent.mkdir(parents=True)
    with zipfile.ZipFile(archive, "w", zipfile.ZIP_STORED) as z:  # stored: realistic size
        for f in sorted((work / "EuroSAT_MS").rglob("*.tif")):
            z.write(f, f.relative_to(work).as_posix())
    api = root / "api" / "records" / "7711810"
    api.parent.mkdir(parents=True)
    api.write_text(json.dumps({"files": [{"key": "EuroSAT_MS.zip", "checksum": _md5(archive)}]}))
    names = [f"{n}_{k}.jpg" for n in EUROSAT_CLASS_NAMES for k in (1, 2, 3)]
    for i, split in enumerate(("train", "val", "test")):
        (root / "splits").mkdir(exist_ok=True)
        (root / "splits" / f"eurosat-{split}.txt").write_text(
            "\n".join(n for j, n in enumerate(names) if j % 3 == i) + "\n"
        )
    return root


def _split_args(site: Path, base: str) -> dict:
    urls = {s: f"{base}splits/eurosat-{s}.txt" for s in ("train", "val", "test")}
    sums = {s: _md5(site / "splits" / f"eurosat-{s}.txt") for s in urls}
    return {"split_urls": urls, "split_checksums": sums}


def test_parse_checksum() -> None:
    assert parse_checksum("MD5:" + "A" * 32) == Checksum("md5", "a" * 32)
    assert parse_checksum("b" * 64) == Checksum("sha256", "b" * 64)
    with pytest.raises(InputError, match="not understood"):
        parse_checksum("md5:xyz")


def test_download_extract_catalog(site: Path, tmp_path: Path) -> None:
    seen: list[float] = []
    with serve_directory(site) as (base, log):
        assert zenodo_checksum(base + RECORD) == parse_checksum(_md5(site / RECORD))
        out = eurosat_download(
            tmp_path / "d",
            url=base + RECORD,
            progress=lambda p, m: seen.append(p),
            **_split_args(site, base),
        )
    assert out == tmp_path / "d" / "stac" / "catalog.json"
    assert (tmp_path / "d" / "downloads" / "EuroSAT_MS.zip").is_file()
    assert not list((tmp_path / "d" / "downloads").glob("*.part"))
    assert any(p.startswith("/api/records/7711810") for p, _ in log.requests)
    assert seen and seen[-1] == pytest.approx(100.0) and seen == sorted(seen)
    d = load_labelled_chips(str(out), bands=["B02"])
    assert len(d.item_ids) == 30
    train = load_labelled_chips(str(out), bands=["B02"], split="train")
    assert sorted(train.item_ids) == sorted(f"{n}_1" for n in EUROSAT_CLASS_NAMES)
    item = json.loads((out.parent / "eurosat-ms" / "Forest_2" / "Forest_2.json").read_text())
    assert item["properties"][SPLIT_PROPERTY] == "val"
    chip = out.parent / "eurosat-ms" / "Forest_2" / "Forest_2.tif"
    assert chip.stat().st_nlink == 2  # hard-linked to the extracted chip, not copied
    # a second run finds the catalog and does nothing
    assert eurosat_download(tmp_path / "d", url="http://127.0.0.1:9/unused") == out


def test_resume_from_partial_file(site: Path, tmp_path: Path) -> None:
    archive = site / RECORD
    full = archive.read_bytes()
    dest = tmp_path / "EuroSAT_MS.zip"
    half = len(full) // 2
    (tmp_path / "EuroSAT_MS.zip.part").write_bytes(full[:half])
    with serve_directory(site) as (base, log):
        download_file(base + RECORD, dest, parse_checksum(_md5(archive)))
    assert dest.read_bytes() == full
    assert log.requests == [(f"/{RECORD}", f"bytes={half}-")]
    assert log.bytes_sent == len(full) - half


def test_checksum_mismatch(site: Path, tmp_path: Path) -> None:
    dest = tmp_path / "EuroSAT_MS.zip"
    wrong = "md5:" + "0" * 32
    with serve_directory(site) as (base, _), pytest.raises(DownloadError) as e:
        download_file(base + RECORD, dest, parse_checksum(wrong))
    assert RECORD in str(e.value) and wrong in str(e.value)
    assert not dest.exists() and not (tmp_path / "EuroSAT_MS.zip.part").exists()
    # through the whole command: nothing extracted, no catalog
    with serve_directory(site) as (base, _), pytest.raises(DownloadError, match="mismatch"):
        eurosat_download(tmp_path / "d", url=base + RECORD, checksum=wrong, split_urls={})
    assert not (tmp_path / "d" / "stac").exists()
    assert not (tmp_path / "d" / "EuroSAT_MS").exists()


def test_unreachable_and_missing(site: Path, tmp_path: Path) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    url = f"http://127.0.0.1:{port}/EuroSAT_MS.zip"
    with pytest.raises(DownloadError, match=f"cannot reach {url}"):
        download_file(url, tmp_path / "x.zip", parse_checksum("a" * 32))
    with serve_directory(site) as (base, _):
        with pytest.raises(DownloadError, match="HTTP 404"):
            download_file(base + "nope.zip", tmp_path / "x.zip", parse_checksum("a" * 32))
        with pytest.raises(InputError, match="no checksum known"):
            eurosat_download(tmp_path / "d", url=base + "other/EuroSAT_MS.zip")


def test_corrupt_archive(tmp_path: Path) -> None:
    www = tmp_path / "www"
    www.mkdir()
    (www / "bad.zip").write_bytes(b"PK\x03\x04 this is not a zip")
    with serve_directory(www) as (base, _), pytest.raises(DataError, match="not a valid zip"):
        eurosat_download(
            tmp_path / "d", url=base + "bad.zip", checksum=_md5(www / "bad.zip"), split_urls={}
        )
    assert not (tmp_path / "d" / "bad").exists()
    assert not list((tmp_path / "d").glob(".bad.tmp-*"))


def test_cli_door(site: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with serve_directory(site) as (base, _):
        with pytest.raises(SystemExit) as e:
            main(["eurosat-download", str(tmp_path / "d"), "--url", base + RECORD,
                  "--split-base-url", base + "splits/", "--no-geoparquet",
                  "--checksum", _md5(site / RECORD)])  # fmt: skip
        # the split files' checksums are torchgeo's, not those of the test's files
        assert e.value.code == 69  # EX_UNAVAILABLE: the download went wrong
        err = capsys.readouterr().err
        assert "checksum mismatch" in err and "(option --checksum)" in err
        with pytest.raises(SystemExit) as e:
            main(["eurosat-download", str(tmp_path / "d"), "--url", base + RECORD,
                  "--no-splits"])  # fmt: skip
        assert e.value.code == 0
    assert (tmp_path / "d" / "stac" / "catalog.json").is_file()
