"""`eurosat-download`: fetch EuroSAT-MS and the standard split files, verify, extract, catalog.

Every file is checked against a checksum before it is used. Downloads go to `<name>.part` and
resume with an HTTP Range request; a finished, verified file is renamed into place, so an
interrupted run can simply be started again. The archive is extracted into a temporary folder that
is renamed when complete, and the STAC catalog is written the same way.

Layout of DEST:

    DEST/downloads/EuroSAT_MS.zip, eurosat-{train,val,test}.txt
    DEST/EuroSAT_MS/...                 the extracted archive
    DEST/stac/catalog.json              `eurosat-to-stac` of it, with `eurosat:split` on items
"""

from __future__ import annotations

import hashlib
import logging
import re
import shutil
import tempfile
import zipfile
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Final
from urllib.parse import urlparse

from app_package.data.eurosat_stac import SPLITS, eurosat_to_stac, read_split_files
from app_package.errors import DataError, DownloadError, InputError
from app_package.util.progress import ProgressCallback, no_progress, scaled

if TYPE_CHECKING:
    import requests

logger = logging.getLogger(__name__)

# The official multispectral release (Zenodo record 7711810); its md5 is read from Zenodo's
# records API at download time (`zenodo_checksum`), unless a checksum is given.
ZENODO_EUROSAT_MS_URL: Final = "https://zenodo.org/records/7711810/files/EuroSAT_MS.zip"
# torchgeo's mirror of the same chips (classes nested deeper); md5 from torchgeo `EuroSAT.md5`.
TORCHGEO_BASE_URL: Final = (
    "https://hf.co/datasets/torchgeo/eurosat/resolve/1ce6f1bfb56db63fd91b6ecc466ea67f2509774c/"
)
TORCHGEO_ARCHIVE_URL: Final = TORCHGEO_BASE_URL + "EuroSATallBands.zip"
TORCHGEO_ARCHIVE_MD5: Final = "md5:5ac12b3b2557aa56e1826e981e8e200e"
# Standard 60/20/20 split files (Neumann et al. 2019) beside torchgeo's mirror; md5s from
# torchgeo `EuroSAT.split_md5s`.
SPLIT_MD5: Final[dict[str, str]] = {
    "train": "md5:908f142e73d6acdf3f482c5e80d851b1",
    "val": "md5:95de90f2aa998f70a3b2416bfe0687b4",
    "test": "md5:7ae5ab94471417b6e315763121e67c5f",
}
HTTP_TIMEOUT_S: Final = 60.0
CHUNK: Final = 1 << 20


@dataclass(frozen=True)
class Checksum:
    """An expected digest: algorithm (md5 or sha256) and lowercase hex."""

    algorithm: str
    hexdigest: str

    def __str__(self) -> str:
        return f"{self.algorithm}:{self.hexdigest}"


def parse_checksum(text: str) -> Checksum:
    """`md5:<hex>`, `sha256:<hex>`, or bare hex (32 digits: md5, 64: sha256)."""
    value = text.strip().lower()
    algo, _, digest = value.rpartition(":")
    if not algo:
        algo = {32: "md5", 64: "sha256"}.get(len(digest), "")
    size = {"md5": 32, "sha256": 64}.get(algo)
    if size is None or not re.fullmatch(rf"[0-9a-f]{{{size}}}", digest):
        raise InputError(
            f"checksum {text!r} not understood: give md5:<32 hex digits> or sha256:<64 hex digits>"
        )
    return Checksum(algo, digest)


def file_digest(path: Path, algorithm: str) -> str:
    h = hashlib.new(algorithm)
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(CHUNK), b""):
            h.update(block)
    return h.hexdigest()


def _get(
    url: str, headers: Mapping[str, str] | None = None, stream: bool = False
) -> requests.Response:
    import requests

    try:
        return requests.get(url, headers=dict(headers or {}), stream=stream, timeout=HTTP_TIMEOUT_S)
    except requests.RequestException as e:
        raise DownloadError(
            f"cannot reach {url}: {e} — check the URL and your network, or use a mirror's url",
            field="url",
        ) from e


def zenodo_checksum(url: str) -> Checksum | None:
    """The checksum Zenodo publishes for a `.../records/<id>/files/<name>` URL (None otherwise)."""
    parsed = urlparse(url)
    m = re.fullmatch(r"/records/(\d+)/files/([^/]+?)(/content)?", parsed.path)
    if not m:
        return None
    api = f"{parsed.scheme}://{parsed.netloc}/api/records/{m.group(1)}"
    r = _get(api)
    if r.status_code != 200:
        raise DownloadError(
            f"cannot read the checksum of {url} from {api} (HTTP {r.status_code}): "
            "give its checksum (md5:<hex>) yourself",
            field="checksum",
        )
    for f in r.json().get("files", []):
        if f.get("key") == m.group(2) and f.get("checksum"):
            return parse_checksum(str(f["checksum"]))
    raise DownloadError(
        f"{api} lists no checksum for {m.group(2)}: give its checksum (md5:<hex>)",
        field="checksum",
    )


def download_file(
    url: str, dest: Path, checksum: Checksum, *, progress: ProgressCallback = no_progress
) -> Path:
    """Download `url` to `dest`, resuming `dest.part` with a Range request, verifying `checksum`.

    A `dest` already present with the right checksum is kept. On a checksum mismatch the partial
    file is deleted (so the next run starts clean) and DownloadError names URL and both digests.
    """
    dest = Path(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    if dest.is_file():
        if file_digest(dest, checksum.algorithm) == checksum.hexdigest:
            logger.info("%s already downloaded and verified", dest)
            progress(100.0, f"{dest.name} already there")
            return dest
        logger.warning("%s does not match %s: downloading again", dest, checksum)
        dest.unlink()
    part = dest.with_name(dest.name + ".part")
    start = part.stat().st_size if part.is_file() else 0
    headers = {"Range": f"bytes={start}-"} if start else {}
    r = _get(url, headers, stream=True)
    with r:
        if r.status_code == 416 and start:  # the part file already holds everything
            total = start
        elif r.status_code in (200, 206):
            if r.status_code == 200 and start:
                logger.info("%s ignored the Range request: downloading from the start", url)
                start = 0
            length = r.headers.get("Content-Length")
            total = start + int(length) if length is not None else 0
            done = start
            with open(part, "ab" if start else "wb") as f:
                for block in r.iter_content(CHUNK):
                    f.write(block)
                    done += len(block)
                    if total:
                        progress(
                            100.0 * done / total, f"{dest.name} {done >> 20}/{total >> 20} MiB"
                        )
        else:
            raise DownloadError(
                f"{url} answered HTTP {r.status_code}: check the URL or use a mirror's url",
                field="url",
            )
    got = file_digest(part, checksum.algorithm)
    if got != checksum.hexdigest:
        part.unlink()
        raise DownloadError(
            f"checksum mismatch for {url}: expected {checksum}, got {checksum.algorithm}:{got}; "
            "the partial file was deleted — run again, or check that url and checksum belong "
            "together",
            field="checksum",
        )
    part.rename(dest)
    progress(100.0, f"{dest.name} verified")
    return dest


def extract_zip(archive: Path, dest: Path) -> Path:
    """Extract `archive` into `dest` (must not exist) via a temporary sibling; refuses zip-slip."""
    if dest.exists():
        raise InputError(f"{dest} already exists: remove it to extract {archive} again")
    tmp = Path(tempfile.mkdtemp(prefix=f".{dest.name}.tmp-", dir=dest.parent))
    try:
        with zipfile.ZipFile(archive) as z:
            root = tmp.resolve()
            for name in z.namelist():
                target = (tmp / name).resolve()
                if root not in target.parents and target != root:
                    raise DataError(f"{archive}: member {name!r} would be written outside {dest}")
            z.extractall(tmp)
    except zipfile.BadZipFile as e:
        shutil.rmtree(tmp, ignore_errors=True)
        raise DataError(
            f"{archive} is not a valid zip archive ({e}): delete it and download again"
        ) from e
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    tmp.rename(dest)
    return dest


# names that stand for a known archive URL
ARCHIVE_ALIASES: Final = {"zenodo": ZENODO_EUROSAT_MS_URL, "torchgeo": TORCHGEO_ARCHIVE_URL}


def archive_url(url: str | None) -> str:
    """The archive URL an `url` setting names: an alias (`zenodo`, the default; `torchgeo`) or
    itself."""
    return ARCHIVE_ALIASES.get(url or "zenodo", url or ZENODO_EUROSAT_MS_URL)


def split_urls_under(base_url: str) -> dict[str, str]:
    """The standard split files (`eurosat-{train,val,test}.txt`) in a folder URL."""
    base = base_url.rstrip("/") + "/"
    return {s: f"{base}eurosat-{s}.txt" for s in SPLITS}


def eurosat_download(
    dest: Path,
    *,
    url: str | None = None,
    checksum: str | None = None,
    split_urls: Mapping[str, str] | None = None,
    split_checksums: Mapping[str, str] | None = None,
    geoparquet: bool = True,
    collection_id: str = "eurosat-ms",
    progress: ProgressCallback = no_progress,
) -> Path:
    """Download, verify and extract EuroSAT-MS into `dest`, then build `dest/stac/catalog.json`.

    `url` is the archive's URL or an alias (`archive_url`; default: the official Zenodo archive).
    `checksum` defaults to torchgeo's md5 for its mirror URL and to Zenodo's published md5 for a
    Zenodo record URL; any other URL needs one. `split_urls` (split → URL, default torchgeo's
    mirror; `{}` for none) are verified against `split_checksums` (default torchgeo's md5s).
    Returns the catalog path; an existing catalog is returned as is.
    """
    dest = Path(dest)
    url = archive_url(url)
    catalog = dest / "stac" / "catalog.json"
    if catalog.is_file():
        logger.info("%s already exists: nothing to do", catalog)
        progress(100.0, "catalog already built")
        return catalog
    if checksum is not None:
        expected = parse_checksum(checksum)
    elif url == TORCHGEO_ARCHIVE_URL:
        expected = parse_checksum(TORCHGEO_ARCHIVE_MD5)
    else:
        found = zenodo_checksum(url)
        if found is None:
            raise InputError(
                f"no checksum known for {url}: give its checksum, md5:<hex> or sha256:<hex>",
                field="checksum",
            )
        expected = found
    if split_urls is None:
        split_urls = {s: f"{TORCHGEO_BASE_URL}eurosat-{s}.txt" for s in SPLITS}
    split_sums = dict(SPLIT_MD5) if split_checksums is None else dict(split_checksums)
    unknown = [s for s in split_urls if s not in SPLITS]
    if unknown:
        raise InputError(f"unknown split(s) {', '.join(unknown)}: use {', '.join(SPLITS)}")

    downloads = dest / "downloads"
    name = Path(urlparse(url).path).name or "EuroSAT_MS.zip"
    archive = download_file(url, downloads / name, expected, progress=scaled(progress, 0, 75))
    for i, (split, split_url) in enumerate(split_urls.items()):
        if split not in split_sums:
            raise InputError(f"no checksum for the {split} split file: pass one for {split_url}")
        download_file(
            split_url,
            downloads / f"eurosat-{split}.txt",
            parse_checksum(split_sums[split]),
            progress=scaled(progress, 75 + i, 76 + i),
        )
    extracted = dest / Path(name).stem
    if not extracted.is_dir():
        progress(78.0, f"extracting {archive.name}")
        extract_zip(archive, extracted)
    splits = read_split_files(downloads)
    progress(80.0, "building the STAC catalog")
    eurosat_to_stac(
        extracted,
        dest / "stac",
        geoparquet=geoparquet,
        collection_id=collection_id,
        splits=splits or None,
        link_chips=True,  # the extracted folder is ours and never rewritten
        progress=scaled(progress, 80, 100),
    )
    return catalog
