"""Unit tests of app_package.service.ogc: RFC 7240 Prefer parsing, execution mode, href policy."""

from __future__ import annotations

from pathlib import Path

import pytest

from app_package.service.hrefs import HrefPolicy
from app_package.service.ogc import INVALID_INPUT, OGCError, choose_mode, parse_prefer


@pytest.mark.parametrize(
    ("headers", "expected"),
    [
        (["respond-async"], {"respond-async": ""}),
        (["Respond-Async, wait=10"], {"respond-async": "", "wait": "10"}),
        (["wait=5; foo=bar", "respond-async"], {"wait": "5", "respond-async": ""}),
        (['return="minimal"'], {"return": "minimal"}),
        (["wait=1, wait=9"], {"wait": "1"}),  # the first occurrence wins (RFC 7240 §2)
        (['foo="a,b", respond-async'], {"foo": "a,b", "respond-async": ""}),
        ([" , ,"], {}),
        ([], {}),
    ],
)
def test_parse_prefer(headers: list[str], expected: dict[str, str]) -> None:
    assert parse_prefer(headers) == expected


def test_choose_mode() -> None:
    both = ["sync-execute", "async-execute"]
    assert choose_mode(both, {"respond-async": ""}) == "async"
    assert choose_mode(both, {}) == "sync"
    assert choose_mode(["async-execute"], {}) == "async"
    assert choose_mode(["sync-execute"], {"respond-async": ""}) == "sync"


def test_href_policy_paths(tmp_path: Path) -> None:
    root = tmp_path / "data"
    (root / "sub").mkdir(parents=True)
    (root / "sub" / "a.json").write_text("{}")
    (root / "escape").symlink_to("/etc")
    policy = HrefPolicy(data_roots=(root.resolve(),))
    assert policy.check("x", str(root / "sub" / "a.json"))
    assert policy.check("x", (root / "sub" / "a.json").as_uri())
    for bad in (
        "/etc/passwd",
        str(root / "sub" / ".." / ".." / "other"),
        str(root / "escape" / "passwd"),  # a symlink out of the root
        "file://remotehost/share/x",
        "ftp://example.com/x",
    ):
        with pytest.raises(OGCError) as e:
            policy.check("x", bad)
        assert e.value.status == 400 and e.value.type == INVALID_INPUT
        assert "input 'x'" in e.value.detail


def test_a_refusal_names_the_data_roots_by_role_not_by_path(tmp_path: Path) -> None:
    """The server's folders are not told to clients: roots are named by what they are."""
    sample, outputs = tmp_path / "sample", tmp_path / "outputs"
    policy = HrefPolicy.from_config({}, {"the bundled sample": sample, "the job outputs": outputs})
    with pytest.raises(OGCError) as e:
        policy.check("product", "/etc/passwd")
    assert "(the bundled sample, the job outputs)" in e.value.detail
    assert str(tmp_path) not in e.value.detail
    configured = HrefPolicy.from_config({"data_roots": f"{sample}:{outputs}"})
    with pytest.raises(OGCError) as e:
        configured.check("product", "/etc/passwd")
    assert "data root 2 of APP_PACKAGE_DATA_ROOTS" in e.value.detail
    assert str(tmp_path) not in e.value.detail and "/etc/passwd" in e.value.detail


def test_href_policy_hosts() -> None:
    policy = HrefPolicy()
    for bad in ("http://127.0.0.1/", "http://10.1.2.3/", "http://[::1]:8080/", "http://0.0.0.0/",
                "http://169.254.169.254/", "http://localhost/", "https:///nohost"):  # fmt: skip
        with pytest.raises(OGCError):
            policy.check_url("cb", bad)
    assert HrefPolicy(allowed_hosts=frozenset({"localhost"})).check_url("cb", "http://localhost/")
    assert HrefPolicy(allow_private=True).check_url("cb", "http://10.1.2.3/x")
    assert policy.check("m", "models:/eurosat-classifier/1")
