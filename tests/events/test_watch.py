"""`app-package watch`: state, filters, CloudEvents, and the watcher against real loopback servers.

The servers are real: stac-fastapi-static serving a catalog that grows during the test, and
`app-package serve` with the `sleep` test process (tests/server-config.yml) standing in for the
classification so that these tests take seconds. The end-to-end run with the real
`tile-classification` process is in tests/events/test_watch_live.py.
"""

from __future__ import annotations

import json
import sqlite3
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from app_package.errors import EX_TEMPFAIL, InputError, ServiceError
from app_package.events.ogc_client import ProcessesClient
from app_package.events.watch.search import Search
from app_package.events.watch.state import StateStore
from app_package.events.watch.watcher import Limits, Target, Watcher, item_key
from app_package.events.webhook import WebhookServer, item_from_request, parse_listen
from tests.support.httpserve import Receiver
from tests.support.server import Server
from tests.support.stac_api import running_stac_api
from tests.support.watch import jobs_for, sleep_target
from tests.support.watchdata import COLLECTION, GrowingCatalog

FAST = Limits(poll_interval_s=0.5, max_per_minute=600, backoff_base_s=0.2, backoff_max_s=1.0)


# ==================================================================== pure parts
def test_item_key_is_deterministic_and_scoped() -> None:
    k = item_key("tile-classification", "s2", "A")
    assert k == item_key("tile-classification", "s2", "A")
    assert len(k) == 32
    assert k != item_key("tile-classification", "s2", "B")
    assert k != item_key("tile-classification", "other", "A")
    assert k != item_key("eurosat-training", "s2", "A")


def test_filter_text_and_json_give_the_same_cql2() -> None:
    text = Search.parse_filter("platform = 'sentinel-2a'")
    js = Search.parse_filter('{"op": "=", "args": [{"property": "platform"}, "sentinel-2a"]}')
    assert text == js
    s = Search(max_cloud_cover=20, filter=text)
    assert s.cql2() == {
        "op": "and",
        "args": [{"op": "<=", "args": [{"property": "eo:cloud_cover"}, 20]}, text],
    }
    assert Search().cql2() is None
    with pytest.raises(InputError, match="not valid CQL2"):
        Search.parse_filter("platform = = 3")


def test_pushed_items_meet_the_same_criteria() -> None:
    item = {
        "type": "Feature", "stac_version": "1.1.0", "id": "x", "collection": "s2",
        "bbox": [12.5, 52.4, 12.7, 52.5],
        "properties": {"datetime": "2017-02-16T10:21:01Z", "eo:cloud_cover": 10,
                       "platform": "sentinel-2a"},
        "geometry": None, "links": [],
    }  # fmt: skip
    assert (
        Search(collections=("s2",), bbox=(12, 52, 13, 53), max_cloud_cover=20).matches(item) is None
    )
    assert "collection" in (Search(collections=("other",)).matches(item) or "")
    assert "bbox" in (Search(bbox=(0, 0, 1, 1)).matches(item) or "")
    item3d = dict(item, bbox=[12.5, 52.4, 0, 12.7, 52.5, 100])
    assert Search(bbox=(12.6, 52.45, 13, 53)).matches(item3d) is None
    assert "bbox" in (Search(bbox=(12.8, 52.45, 13, 53)).matches(item3d) or "")
    assert "outside" in (Search(datetime="2018-01-01/..").matches(item) or "")
    assert Search(datetime="../2017-03-01").matches(item) is None
    assert "filter" in (Search(max_cloud_cover=5).matches(item) or "")
    f = Search.parse_filter("platform = 'sentinel-2b'")
    assert "filter" in (Search(filter=f).matches(item) or "")


def test_cloudevents_structured_binary_and_bare() -> None:
    item = {"type": "Feature", "stac_version": "1.1.0", "id": "i", "properties": {}}
    bare = item_from_request({}, json.dumps(item).encode())
    structured = item_from_request(
        {}, json.dumps({"specversion": "1.0", "id": "e1", "source": "s", "type": "t",
                        "data": item}).encode()
    )  # fmt: skip
    import base64

    b64 = item_from_request(
        {}, json.dumps({"specversion": "1.0", "id": "e1", "source": "s", "type": "t",
                        "data_base64": base64.b64encode(json.dumps(item).encode()).decode()
                        }).encode()
    )  # fmt: skip
    binary_headers = {"ce-specversion": "1.0", "ce-id": "e2", "ce-source": "s", "ce-type": "t",
                      "Content-Type": "application/json"}  # fmt: skip
    binary = item_from_request(binary_headers, json.dumps(item).encode())
    assert bare == structured == b64 == binary == item
    with pytest.raises(InputError, match="Missing required attribute: 'source'"):
        item_from_request({"ce-specversion": "1.0", "ce-id": "e3", "ce-type": "t"}, b"{}")
    for body in (b"not json", b"[]", json.dumps({"specversion": "1.0", "data": {"a": 1}}).encode()):
        with pytest.raises(InputError):
            item_from_request({}, body)
    assert parse_listen("127.0.0.1:8080") == ("127.0.0.1", 8080)
    assert parse_listen(":9") == ("127.0.0.1", 9)
    with pytest.raises(InputError, match="HOST:PORT"):
        parse_listen("8080x")


def test_state_claims_once_across_restarts(tmp_path: Path) -> None:
    db = tmp_path / "w.db"
    store = StateStore(db)
    assert store.claim("k1", "A", "s2", "http://x/A.json", "poll")
    assert not store.claim("k1", "A", "s2", "http://x/A.json", "webhook")
    assert store.lease("k1", time.time(), 60) == 1
    assert store.lease("k1", time.time(), 60) is None  # leased: nobody else sends it
    store.close()
    again = StateStore(db)  # a restarted watcher
    assert not again.claim("k1", "A", "s2", "http://x/A.json", "poll")
    row = again.get("k1")
    assert row is not None and row["state"] == "pending" and row["attempts"] == 1
    assert again.due(time.time()) == []  # lease not expired
    assert [r["key"] for r in again.due(time.time() + 61)] == ["k1"]
    again.submitted("k1", "job-1", "http://e/jobs/job-1", "accepted")
    assert again.due(time.time() + 61) == []
    assert again.counts() == {"submitted": 1}
    again.close()


def test_endpoint_unreachable_is_retryable() -> None:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    client = ProcessesClient(f"http://127.0.0.1:{port}", timeout=2)
    with pytest.raises(ServiceError, match="unreachable") as e:
        client.execute_async("p", {})
    assert e.value.retryable


# ==================================================================== live servers
@pytest.fixture(scope="module")
def ogc(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """`app-package serve` with the `sleep` process; host 127.0.0.1 allowed by name (test items,
    callbacks), every other private or loopback name refused."""
    srv = Server(
        tmp_path_factory.mktemp("watch-server") / "var",
        extra_env={"APP_PACKAGE_ALLOWED_HOSTS": "127.0.0.1"},
    ).start()
    yield srv
    srv.stop()


@pytest.fixture()
def catalog(tmp_path: Path) -> GrowingCatalog:
    return GrowingCatalog(tmp_path / "stac")


def test_idempotency_key_returns_the_first_job(ogc: Server) -> None:
    client = ProcessesClient(ogc.url)
    a = client.execute_async("sleep", {"steps": 1}, idempotency_key="key-abc")
    b = client.execute_async("sleep", {"steps": 1}, idempotency_key="key-abc")
    c = client.execute_async("sleep", {"steps": 1}, idempotency_key="key-other")
    assert a.job_id == b.job_id != c.job_id
    assert a.url == f"{ogc.url}/jobs/{a.job_id}"
    assert client.wait(a.url, timeout=60, poll=0.1)["status"] == "successful"
    assert len(jobs_for(ogc, {"key-abc"})) == 1
    with pytest.raises(ServiceError, match="HTTP 400") as e:
        client.execute_async("sleep", {"steps": "x"})
    assert not e.value.retryable
    with pytest.raises(ServiceError, match="HTTP 404"):
        client.status(f"{ogc.url}/jobs/no-such-job")


def test_poll_submits_new_items_once_and_nothing_after_restart(
    ogc: Server, catalog: GrowingCatalog, tmp_path: Path
) -> None:
    catalog.add("S2-A", 10)
    catalog.add("S2-CLOUDY", 90)
    state = tmp_path / "watch.db"
    with running_stac_api(catalog.catalog_json) as stac:
        search = Search(stac_url=stac, collections=(COLLECTION,), max_cloud_cover=50,
                        datetime="2017-01-01/2017-12-31", bbox=(12, 52, 13, 53))  # fmt: skip
        w = Watcher(state, sleep_target(ogc), search, FAST)
        assert w.run_once() == 0
        rows = w.store.rows()
        assert [(r["item_id"], r["state"]) for r in rows] == [("S2-A", "submitted")]
        assert rows[0]["href"] == catalog.url_of(stac, "S2-A")
        catalog.add("S2-B", 5, day=17)  # published between two rounds
        assert w.run_once() == 0
        w.close()
        w = Watcher(state, sleep_target(ogc), search, FAST)  # restart: nothing again
        for _ in range(40):
            w.run_once()
            if w.store.counts() == {"successful": 2}:
                break
            time.sleep(0.2)
        assert w.store.counts() == {"successful": 2}
        w.close()
    keys = {item_key("sleep", COLLECTION, i) for i in ("S2-A", "S2-B", "S2-CLOUDY")}
    jobs = jobs_for(ogc, keys)
    assert len(jobs) == 2
    assert all(j["status"] == "successful" for j in jobs)


@pytest.mark.slow
def test_endpoint_down_then_back_loses_nothing(catalog: GrowingCatalog, tmp_path: Path) -> None:
    srv = Server(tmp_path / "var", extra_env={"APP_PACKAGE_ALLOWED_HOSTS": "127.0.0.1"})
    catalog.add("S2-DOWN-1", 1)
    catalog.add("S2-DOWN-2", 2)
    with running_stac_api(catalog.catalog_json) as stac:
        search = Search(stac_url=stac, collections=(COLLECTION,))
        w = Watcher(tmp_path / "watch.db", sleep_target(srv), search, FAST)
        try:
            assert w.run_once() == EX_TEMPFAIL  # the endpoint is not running
            assert w.store.counts() == {"pending": 2}
            assert "unreachable" in (w.store.rows()[0]["error"] or "")
            srv.start()
            runner = threading.Thread(target=w.run)
            runner.start()
            try:
                deadline = time.monotonic() + 60
                while w.store.counts() != {"successful": 2} and time.monotonic() < deadline:
                    time.sleep(0.2)
            finally:
                w.stop()
                runner.join(timeout=30)
            assert not runner.is_alive()
            assert w.store.counts() == {"successful": 2}
            jobs = jobs_for(srv)
            assert len(jobs) == 2
            assert {r["job_id"] for r in w.store.rows()} == {j["identifier"] for j in jobs}
        finally:
            w.close()
            srv.stop()


def test_crash_between_submit_and_record_makes_no_second_job(
    ogc: Server, catalog: GrowingCatalog, tmp_path: Path
) -> None:
    """The request reached the server but the watcher died before recording the job id."""
    item = catalog.add("S2-CRASH", 3)
    with running_stac_api(catalog.catalog_json) as stac:
        href = catalog.url_of(stac, "S2-CRASH")
        key = item_key("sleep", COLLECTION, item["id"])
        target = sleep_target(ogc)
        first = ProcessesClient(ogc.url).execute_async(
            "sleep", target.execute_inputs(href), idempotency_key=key
        )
        store = StateStore(tmp_path / "watch.db")  # the crashed watcher's state: leased, pending
        store.claim(key, item["id"], COLLECTION, href, "poll")
        store.lease(key, time.time() - 1000, 1)  # its lease has long expired
        store.close()
        w = Watcher(tmp_path / "watch.db", target, Search(stac_url=stac), FAST)
        assert w.run_once() == 0
        row = w.store.get(key)
        w.close()
    assert row is not None and row["job_id"] == first.job_id and row["attempts"] == 2
    assert len(jobs_for(ogc, {key})) == 1


def test_webhook_takes_items_and_cloudevents(
    ogc: Server, catalog: GrowingCatalog, tmp_path: Path
) -> None:
    item = catalog.write_item("S2-HOOK", 4)  # not listed in the collection: only pushed
    with running_stac_api(catalog.catalog_json) as stac:
        item["links"].append({"rel": "self", "href": catalog.url_of(stac, "S2-HOOK")})
        search = Search(collections=(COLLECTION,), max_cloud_cover=50)
        w = Watcher(tmp_path / "watch.db", sleep_target(ogc), search, FAST)
        hook = WebhookServer(w, "127.0.0.1", 0, token="s3cret")
        hook.start()
        runner = threading.Thread(target=w.run)
        runner.start()
        auth = {"Authorization": "Bearer s3cret"}
        try:
            assert requests.post(hook.url, json=item, timeout=10).status_code == 401
            event = {"specversion": "1.0", "id": "ev-1", "source": "test", "type": "stac.item",
                     "datacontenttype": "application/json", "data": item}  # fmt: skip
            r = requests.post(hook.url + "/items", json=event, headers=auth, timeout=10)
            assert r.status_code == 202, r.text
            assert r.json()["outcome"] == "new"
            binary = {"ce-specversion": "1.0", "ce-id": "ev-2", "ce-source": "test",
                      "ce-type": "stac.item"}  # fmt: skip
            again = requests.post(hook.url, json=item, headers={**auth, **binary}, timeout=10)
            assert again.status_code == 200 and again.json()["outcome"] == "known"
            cloudy = dict(item, id="S2-HOOK-CLOUDY",
                          properties={**item["properties"], "eo:cloud_cover": 99})  # fmt: skip
            r = requests.post(hook.url, json=cloudy, headers=auth, timeout=10)
            assert r.json()["outcome"] == "ignored" and "filter" in r.json()["reason"]
            bad = requests.post(hook.url, data=b"{", headers=auth, timeout=10)
            assert bad.status_code == 400 and "not JSON" in bad.json()["error"]
            deadline = time.monotonic() + 60
            while w.store.counts() != {"successful": 1} and time.monotonic() < deadline:
                time.sleep(0.2)
            health = requests.get(hook.url + "/healthz", timeout=10).json()
            assert health["items"] == {"successful": 1}
        finally:
            w.stop()
            runner.join(timeout=30)
            hook.stop()
            w.close()
    assert len(jobs_for(ogc, {item_key("sleep", COLLECTION, "S2-HOOK")})) == 1


def test_concurrency_and_rate_are_bounded(
    ogc: Server, catalog: GrowingCatalog, tmp_path: Path
) -> None:
    for i in range(3):
        catalog.add(f"S2-BOUND-{i}", i)
    with running_stac_api(catalog.catalog_json) as stac:
        target = Target(**{**sleep_target(ogc).__dict__, "inputs": {"steps": 1, "seconds": 3}})
        limits = Limits(max_in_flight=1, max_per_minute=600, poll_interval_s=60)
        w = Watcher(tmp_path / "watch.db", target, Search(stac_url=stac), limits)
        w.run_once()
        assert w.store.counts() == {"submitted": 1, "pending": 2}  # one in flight at most
        w.close()
        slow = Limits(max_in_flight=10, max_per_minute=120)  # one submission per 0.5 s
        w = Watcher(tmp_path / "watch.db", target, Search(stac_url=stac), slow)
        t0 = time.monotonic()
        w.run_once()
        elapsed = time.monotonic() - t0
        assert w.store.counts().get("pending", 0) == 0
        assert elapsed >= 0.45, elapsed  # two submissions, 0.5 s apart
        w.close()


def test_cli_refuses_bad_options(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from app_package.cli import main

    for argv, message in (
        ([], "--stac-url"),
        (["--listen", "x:1", "--once", "--stac-url", "http://x"], "exclude"),
        (["--stac-url", "http://x", "--filter", "a = = b"], "CQL2"),
        (["--stac-url", "http://x", "--input", "novalue"], "NAME=VALUE"),
        (["--stac-url", "http://x", "--max-in-flight", "0"], "max-in-flight"),
    ):
        with pytest.raises(SystemExit) as e:
            main(["watch", "--state", str(tmp_path / "w.db"), *argv])
        assert e.value.code == 2
        assert message in capsys.readouterr().err


def test_state_file_is_plain_sqlite(tmp_path: Path) -> None:
    store = StateStore(tmp_path / "w.db")
    store.claim("k", "A", None, "http://x", "poll")
    store.close()
    with sqlite3.connect(tmp_path / "w.db") as db:
        assert db.execute("SELECT item_id, state FROM items").fetchall() == [("A", "pending")]


# ==================================================================== callbacks (subscriber)
@pytest.fixture()
def receiver() -> Iterator[Receiver]:
    r = Receiver()
    yield r
    r.close()


def test_failed_jobs_call_failed_uri_and_only_allowed_hosts(
    ogc: Server, receiver: Receiver
) -> None:
    base = f"http://127.0.0.1:{receiver.port}"
    sub = {"successUri": base + "/ok", "failedUri": base + "/failed"}
    job = ogc.submit_with("sleep", {"steps": 1, "fail": "no good"}, subscriber=sub)
    ogc.wait(job, ("failed",))
    (path, doc), *_ = receiver.wait(1)
    assert path == "/failed" and doc["jobID"] == job and doc["status"] == "failed"
    assert doc["message"] == "no good"
    # only the host named in APP_PACKAGE_ALLOWED_HOSTS: other loopback names stay refused
    for url in (f"http://localhost:{receiver.port}/x", f"http://127.0.0.2:{receiver.port}/x",
                "http://169.254.169.254/latest/meta-data/"):  # fmt: skip
        r = ogc.execute("sleep", {"steps": 1}, subscriber={"successUri": url})
        assert r.status_code == 400, (url, r.text)
        assert "non-public address" in r.json()["detail"]


def test_callbacks_are_checked_again_when_sent(receiver: Receiver) -> None:
    """A host that passed at submission but resolves to a refused address later gets nothing."""
    from app_package.jobs.callbacks import post_callback
    from app_package.service.hrefs import HrefPolicy

    url = f"http://127.0.0.1:{receiver.port}/hook"
    post_callback(url, {"status": "successful"}, HrefPolicy())  # default policy: loopback refused
    post_callback(url, {"status": "failed"}, HrefPolicy(allowed_hosts=frozenset({"127.0.0.1"})))
    received = receiver.wait(1)
    time.sleep(0.3)
    assert [doc["status"] for _, doc in receiver.received] == ["failed"], received


def test_stac_api_down_is_retried_with_backoff(tmp_path: Path) -> None:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    limits = Limits(backoff_base_s=1.0, backoff_max_s=30.0, poll_interval_s=60.0)
    w = Watcher(tmp_path / "w.db", Target(), Search(stac_url=f"http://127.0.0.1:{port}"), limits)
    try:
        assert w.run_once() == EX_TEMPFAIL
        delays = []
        for _ in range(3):
            w.next_poll = 0.0  # the wait has passed
            t = time.time()
            report = w.cycle()
            assert "unavailable" in report.errors[0]
            delays.append(w.next_poll - t)
        assert 1.5 < delays[0] < 2.5 and 3.5 < delays[1] < 4.5 and 7 < delays[2] < 9, delays
        assert w.store.counts() == {}
    finally:
        w.close()
