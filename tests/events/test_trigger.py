"""The event pipeline on Redis streams: collector → items stream → trigger → jobs → outcome events.

Everything here is real: `redis-server` (Debian's package, started by the test on loopback; the
tests fail when it is missing), `app-package serve` with the `sleep` test process and the real
`tile-classification`, a STAC API (stac-fastapi-static) whose catalog grows during the test, and
the `watch` and `trigger` commands as processes where a crash is part of the test (SIGKILL).
Every message the tests send is validated against the AsyncAPI 3.0 document (asyncapi/).
"""

from __future__ import annotations

import json
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urljoin

import pytest
import redis
import requests
import yaml
from jsonschema import Draft7Validator, FormatChecker
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT7

from app_package.errors import InputError
from app_package.events import cloudevents as ce
from app_package.events.ogc_client import ProcessesClient
from app_package.events.streams import EventBus, StreamPublisher
from app_package.events.trigger import InputMapping, Trigger, TriggerConfig, decode
from app_package.events.watch.watcher import Target, Watcher
from app_package.util.timestamps import now_rfc3339
from tests.conftest import REPO
from tests.support.redisserve import running_redis
from tests.support.server import Server
from tests.support.stac_api import running_stac_api
from tests.support.watchdata import COLLECTION, SAMPLE, GrowingCatalog

ASYNCAPI = REPO / "asyncapi" / "asyncapi.yaml"
CLI = [sys.executable, "-c", "from app_package.cli import main; main()"]
SLEEP = InputMapping("sleep", "data", False, {"steps": 1, "seconds": 0.05})


# ==================================================================== pure parts
def _item(item_id: str = "S2A_X", collection: str | None = "s2") -> dict[str, Any]:
    return {
        "type": "Feature", "stac_version": "1.1.0", "id": item_id, "collection": collection,
        "bbox": [12.5, 52.4, 12.7, 52.5], "geometry": None,
        "properties": {"datetime": "2017-02-16T10:21:01Z"},
        "links": [{"rel": "self", "href": f"http://stac/{item_id}.json"}],
    }  # fmt: skip


def test_event_ids_are_deterministic_and_scoped() -> None:
    a = ce.item_event_id("s2", "A")
    assert a == ce.item_event_id("s2", "A") and re.fullmatch(r"[0-9a-f]{32}", a)
    assert len({a, ce.item_event_id("s2", "B"), ce.item_event_id("other", "A")}) == 3
    out = ce.outcome_event_id("s/g", "sleep", a)
    assert out == ce.outcome_event_id("s/g", "sleep", a)
    others = ("s/g2", "sleep"), ("s2/g", "sleep"), ("s/g", "p")
    assert out not in {ce.outcome_event_id(scope, p, a) for scope, p in others}
    key = ce.idempotency_key("s/g", "sleep", a)
    assert key not in (a, out) and key != ce.idempotency_key("s2/g", "sleep", a)
    assert TriggerConfig(stream="s", group="g").scope == "s/g"
    e1 = ce.item_created(_item(), "http://stac/S2A_X.json", "src", "2026-01-01T00:00:00Z")
    e2 = ce.item_created(_item(), "http://stac/S2A_X.json", "other", "2026-02-01T00:00:00Z")
    # a re-publication is detectable
    assert e1.get_id() == e2.get_id() == ce.item_event_id("s2", "S2A_X")


def test_item_event_round_trips_and_matches_the_asyncapi_schema() -> None:
    event = ce.item_created(_item(), "http://stac/S2A_X.json", "/w", "2026-11-26T10:00:00Z")
    doc = json.loads(ce.to_json(event))
    assert doc["specversion"] == "1.0" and doc["type"] == ce.ITEM_CREATED
    assert doc["subject"] == "S2A_X" and doc["datacontenttype"] == "application/json"
    assert doc["data"] == {
        "href": "http://stac/S2A_X.json", "collection": "s2", "bbox": [12.5, 52.4, 12.7, 52.5],
        "datetime": "2017-02-16T10:21:01Z",
    }  # fmt: skip
    assert ce.to_dict(ce.parse(ce.to_json(event))) == doc
    assert ce.item_href(event) == "http://stac/S2A_X.json"
    validate_message("itemCreated", doc)
    done = ce.job_completed(
        event.get_id(), scope="s/g", process="sleep", source="/t", time="2026-11-26T10:00:01Z",
        job_id="j", job_url="http://h/jobs/j", catalog="http://h/outputs/j/catalog.json",
        item_href="http://stac/S2A_X.json", subject="S2A_X",
    )  # fmt: skip
    validate_message("jobCompleted", ce.to_dict(done))
    failed = ce.job_failed("entry:1-0", scope="s/g", process="sleep", source="/t",
                           time="2026-11-26T10:00:01+01:00", error="boom")  # fmt: skip
    validate_message("jobFailed", ce.to_dict(failed))
    with pytest.raises(AssertionError, match="is not valid"):
        validate_message("jobCompleted", ce.to_dict(failed))


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (None, "no 'event' field"),
        ("{not json", "not JSON"),
        ("[1]", "JSON object"),
        ('{"specversion": "1.0", "id": "x"}', "Missing required attribute: 'source'"),
        ('{"specversion": "0.3", "id": "x", "source": "s", "type": "t"}', "is not '1.0'"),
        ('{"specversion": "1.0", "id": "x", "source": "s", "type": "t", "time": "yesterday"}',
         "not RFC 3339"),
        ('{"specversion": "1.0", "id": "x", "source": "s", "type": "t", "data": [1]}',
         "data must be a JSON object"),
        ('{"specversion": "1.0", "id": "x", "source": "s", "type": "t", "data_base64": "e30="}',
         "data_base64"),
    ],
)  # fmt: skip
def test_parse_names_the_problem(text: str | None, message: str) -> None:
    with pytest.raises(ce.EventError, match=re.escape(message)):
        ce.parse(text)


def test_decode_an_entry() -> None:
    good = ce.item_created(_item(), "http://stac/S2A_X.json", "/w", "2026-11-26T10:00:00Z")
    d = decode("1-0", {"event": ce.to_json(good)})
    assert (d.identity, d.href, d.error) == (good.get_id(), "http://stac/S2A_X.json", None)
    bad = decode("2-0", {"event": "{oops"})
    assert bad.identity == "entry:2-0" and bad.event is None and "not JSON" in (bad.error or "")
    stamp = "2026-11-26T10:00:00Z"
    no_href = ce.make(good.get_id(), "/w", ce.ITEM_CREATED, stamp, {"collection": "s2"})
    d = decode("3-0", {"event": ce.to_json(no_href)})
    assert d.identity == good.get_id() and d.href is None and "no item href" in (d.error or "")
    other = ce.make("x", "/w", "com.example.other", stamp, {"href": "h"})
    assert "is not 'org.app-package.stac.item.created'" in (decode("4-0", {"event":
        ce.to_json(other)}).error or "")  # fmt: skip


def test_input_mapping() -> None:
    tc = InputMapping.for_process("tile-classification", inputs={"model": "m"})
    assert tc.execute_inputs("http://i.json") == {"model": "m", "product": "http://i.json"}
    wb = InputMapping.for_process("water-bodies", inputs={"aoi": [1, 2, 3, 4]})
    assert wb.execute_inputs("http://i.json") == {"aoi": [1, 2, 3, 4], "items": ["http://i.json"]}
    assert InputMapping.for_process("sleep", "data").execute_inputs("h") == {"data": "h"}
    assert InputMapping.for_process("water-bodies", as_array=False).execute_inputs("h") == {
        "items": "h"
    }
    with pytest.raises(InputError, match="input_name"):
        InputMapping.for_process("sleep")
    with pytest.raises(InputError, match="remove it"):
        InputMapping.for_process("tile-classification", inputs={"product": "x"})


# ==================================================================== the AsyncAPI document
def _asyncapi() -> dict[str, Any]:
    return dict(yaml.safe_load(ASYNCAPI.read_text()))


def _pointer(doc: Any, ref: str) -> Any:
    assert ref.startswith("#/"), f"only local $refs are used: {ref}"
    for part in ref[2:].split("/"):
        part = part.replace("~1", "/").replace("~0", "~")
        assert isinstance(doc, dict) and part in doc, f"$ref {ref} does not resolve"
        doc = doc[part]
    return doc


def _refs(node: Any) -> Iterator[str]:
    if isinstance(node, dict):
        for k, v in node.items():
            if k == "$ref":
                yield v
            else:
                yield from _refs(v)
    elif isinstance(node, list):
        for v in node:
            yield from _refs(v)


def test_asyncapi_document_is_asyncapi_3() -> None:
    doc = _asyncapi()
    assert doc["asyncapi"] == "3.0.0"
    assert {"title", "version"} <= set(doc["info"])
    for ref in _refs(doc):
        _pointer(doc, ref)
    channels, operations = doc["channels"], doc["operations"]
    assert {c["address"] for c in channels.values()} == {
        "s2-items", "s2-items.completed", "s2-items.failed"
    }  # fmt: skip
    for name, channel in channels.items():
        for message in channel["messages"].values():
            assert message["$ref"].startswith("#/components/messages/"), name
    for name, op in operations.items():
        assert op["action"] in ("send", "receive"), name
        channel_ref = op["channel"]["$ref"]
        assert channel_ref.startswith("#/channels/")
        for m in op["messages"]:  # an operation's messages belong to its channel (3.0 rule)
            assert m["$ref"].startswith(channel_ref + "/messages/"), (name, m)
    actions = {(o["channel"]["$ref"].rsplit("/", 1)[-1], o["action"]) for o in operations.values()}
    assert actions == {("items", "send"), ("items", "receive"), ("completed", "send"),
                       ("failed", "send")}  # fmt: skip
    for name, message in doc["components"]["messages"].items():
        Draft7Validator.check_schema(message["payload"])
        assert message["contentType"] == "application/cloudevents+json", name
    for schema in doc["components"]["schemas"].values():
        Draft7Validator.check_schema(schema)


_VALIDATORS: dict[str, Draft7Validator] = {}


def validate_message(message: str, doc: dict[str, Any]) -> None:
    """Validate one CloudEvent against components.messages.<message>.payload."""
    if message not in _VALIDATORS:
        registry: Registry[Any] = Registry().with_resource(
            "urn:asyncapi", Resource.from_contents(_asyncapi(), default_specification=DRAFT7)
        )
        _VALIDATORS[message] = Draft7Validator(
            {"$ref": f"urn:asyncapi#/components/messages/{message}/payload"},
            registry=registry, format_checker=FormatChecker(),
        )  # fmt: skip
    errors = [f"{list(e.path)}: {e.message}" for e in _VALIDATORS[message].iter_errors(doc)]
    assert not errors, f"{message} is not valid: {errors[:5]}: {json.dumps(doc)[:500]}"


def validate_streams(r: Any, stream: str, items_too: bool = True) -> int:
    """Every message on the three channels of `stream` against its AsyncAPI payload schema."""
    count = 0
    channels = [(f"{stream}.completed", "jobCompleted"), (f"{stream}.failed", "jobFailed")]
    for name, message in ([(stream, "itemCreated")] if items_too else []) + channels:
        for _, fields in r.xrange(name):
            assert set(fields) == {"event"}, fields
            validate_message(message, json.loads(fields["event"]))
            count += 1
    return count


# ==================================================================== Redis
@pytest.fixture(scope="module")
def redis_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    with running_redis(tmp_path_factory.mktemp("redis")) as url:
        yield url


@pytest.fixture()
def r(redis_url: str) -> Iterator[Any]:
    client = redis.Redis.from_url(redis_url, decode_responses=True)
    client.flushdb()
    yield client
    client.close()


def _events(r: Any, stream: str) -> list[dict[str, Any]]:
    return [json.loads(f["event"]) for _, f in r.xrange(stream)]


def test_publish_once_and_finish_once(redis_url: str, r: Any) -> None:
    bus = EventBus(redis_url)
    try:
        event = ce.item_created(_item(), "http://stac/S2A_X.json", "/w", now_rfc3339())
        first = bus.publish_once("s", event)
        assert first and bus.publish_once("s", event) is None
        assert [i for i, _ in bus.events("s")] == [first]
        r.xgroup_create("s", "g", id="0")
        ((_, [(entry, _)]),) = r.xreadgroup("g", "c", {"s": ">"})
        out = ce.job_failed(
            event.get_id(),
            scope="s/g",
            process="p",
            source="/t",
            time=now_rfc3339(),
            error="boom",
        )
        assert bus.finish("s:trigger:g:x", "s.failed", out, "s", "g", entry)
        assert bus.finish("s:trigger:g:x", "s.failed", out, "s", "g", entry) is None
        assert len(r.xrange("s.failed")) == 1
        assert r.xpending("s", "g")["pending"] == 0
        assert r.hget("s:trigger:g:x", "outcome") == out.get_id()
        assert 0 < r.ttl("s:trigger:g:x") <= 30 * 24 * 3600
    finally:
        bus.close()


def test_watcher_publishes_each_item_once(redis_url: str, r: Any, tmp_path: Path) -> None:
    """Publish only (no endpoint needed): each item once, across restarts and two watchers."""

    def watcher(state: str) -> Watcher:
        publisher = StreamPublisher(redis_url, "items", source="/tests")
        return Watcher(tmp_path / state, Target(), publisher=publisher, submit=False)

    w = watcher("a.db")
    try:
        assert w.accept(_item("A"), "webhook")[0] == "new"
        assert w.accept(_item("B"), "webhook")[0] == "new"
        assert w.accept(_item("A"), "webhook")[0] == "known"
        assert w.run_once() == 0
        assert w.store.counts() == {"published": 2}
    finally:
        w.close()
    again = watcher("a.db")  # restarted: nothing new
    other = watcher("b.db")  # another watcher, its own state: the Redis guard stops repeats
    try:
        assert again.run_once() == 0 and again.accept(_item("A"), "webhook")[0] == "known"
        assert other.accept(_item("A"), "webhook")[0] == "new"
        assert other.run_once() == 0
        assert other.store.rows()[0]["published"] == "repeat"
    finally:
        again.close()
        other.close()
    events = _events(r, "items")
    assert [e["subject"] for e in events] == ["A", "B"]
    assert [e["id"] for e in events] == [ce.item_event_id("s2", i) for i in ("A", "B")]
    assert validate_streams(r, "items") == 2
    with pytest.raises(InputError, match="not submitting needs a publisher"):
        Watcher(tmp_path / "c.db", Target(), submit=False)


def test_redis_down_is_retried(tmp_path: Path) -> None:
    """The collector keeps the item pending (exit 75 with --once) while Redis is unreachable."""
    from tests.support.server import free_port

    w = Watcher(
        tmp_path / "w.db", Target(), submit=False,
        publisher=StreamPublisher(f"redis://127.0.0.1:{free_port()}/0", "items"),
    )  # fmt: skip
    try:
        w.accept(_item("A"), "webhook")
        assert w.run_once() == 75
        assert w.store.counts() == {"pending": 1}
    finally:
        w.close()


# ==================================================================== live: server, STAC API
def random_model(folder: Path) -> Path:
    from tests.support.models import random_model as build

    return build(folder)


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return random_model(tmp_path_factory.mktemp("model") / "smallcnn")


@pytest.fixture(scope="module")
def ogc(tmp_path_factory: pytest.TempPathFactory, model_dir: Path) -> Iterator[Server]:
    """`app-package serve` with `sleep`, `tile-classification` (and `water-bodies` when it is
    configured); items on the loopback STAC API (127.0.0.1) are allowed by name."""
    srv = Server(
        tmp_path_factory.mktemp("events-server") / "var", max_jobs=2,
        extra_env={"APP_PACKAGE_ALLOWED_HOSTS": "127.0.0.1",
                   "APP_PACKAGE_DATA_ROOTS": f"{model_dir}:{SAMPLE}"},
    ).start()  # fmt: skip
    yield srv
    srv.stop()


def _job_ids(srv: Server) -> set[str]:
    r = srv.get("/jobs?limit=1000")
    assert r.status_code == 200, r.text
    return {j["jobID"] for j in r.json()["jobs"]}


def _wait(cond: Callable[[], Any], timeout: float, what: str) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        got = cond()
        if got:
            return got
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        time.sleep(0.1)


def _outcomes(r: Any, stream: str) -> list[dict[str, Any]]:
    return _events(r, f"{stream}.completed") + _events(r, f"{stream}.failed")


def _publish(r: Any, stream: str, event: ce.CloudEvent | str) -> None:
    text = event if isinstance(event, str) else ce.to_json(event)
    r.xadd(stream, {"event": text})


def _sleep_event(href: str, name: str) -> ce.CloudEvent:
    item = _item(name)
    return ce.item_created(item, href, "/tests", now_rfc3339())


class _Running:
    """In-process triggers, each in a thread; stopped and closed on exit."""

    def __init__(self, *configs: TriggerConfig) -> None:
        self.triggers = [Trigger(c) for c in configs]
        self.threads = [threading.Thread(target=t.run, daemon=True) for t in self.triggers]

    def __enter__(self) -> list[Trigger]:
        for t in self.threads:
            t.start()
        return self.triggers

    def __exit__(self, *exc: object) -> None:
        for t in self.triggers:
            t.stop()
        for th in self.threads:
            th.join(timeout=30)
        for t in self.triggers:
            t.close()


def _config(redis_url: str, ogc: Server, stream: str, **kw: Any) -> TriggerConfig:
    defaults: dict[str, Any] = {"group": "g", "mapping": SLEEP, "claim_idle_s": 2.0,
                                "poll_s": 0.1, "block_s": 0.2, "backoff_max_s": 1.0}  # fmt: skip
    return TriggerConfig(redis_url=redis_url, stream=stream, endpoint=ogc.url,
                         **{**defaults, **kw})  # fmt: skip


def test_collector_trigger_classification_end_to_end(
    redis_url: str, r: Any, ogc: Server, model_dir: Path, tmp_path: Path
) -> None:
    """STAC API → `watch --no-submit` → items stream → `trigger` (tile-classification) →
    completed events whose catalogs resolve over HTTP; every message matches the AsyncAPI."""
    catalog = GrowingCatalog(tmp_path / "stac")
    catalog.add("S2A_T33UUU_A", 10)
    catalog.add("S2A_T33UUU_CLOUDY", 90, day=17)  # filtered out by the collector
    before = _job_ids(ogc)
    trigger = [*CLI, "trigger", "--redis-url", redis_url, "--stream", "s2",
               "--endpoint", ogc.url, "--process", "tile-classification",
               "--inputs", json.dumps({"model": str(model_dir)}), "--poll", "0.2"]  # fmt: skip
    with (tmp_path / "trigger.log").open("wb") as log:  # it waits for events meanwhile
        proc = subprocess.Popen(trigger, cwd=REPO, stdout=log, stderr=subprocess.STDOUT)
    try:
        with running_stac_api(catalog.catalog_json) as stac:
            watch = [*CLI, "watch", "--once", "--no-submit", "--redis-url", redis_url,
                     "--stream", "s2", "--stac-url", stac, "--collection", COLLECTION,
                     "--max-cloud-cover", "50", "--state", str(tmp_path / "watch.db")]  # fmt: skip
            done = subprocess.run(watch, cwd=REPO, capture_output=True, text=True, timeout=120)
            assert done.returncode == 0, done.stderr[-2000:]
            items = _events(r, "s2")
            assert [e["subject"] for e in items] == ["S2A_T33UUU_A"]
            assert all(e["source"] == stac for e in items)
            _wait(lambda: _outcomes(r, "s2"), 180, "the outcome")
            item_url = catalog.url_of(stac, "S2A_T33UUU_A")
    finally:
        proc.send_signal(signal.SIGTERM)
        code = proc.wait(timeout=30)
    text = (tmp_path / "trigger.log").read_text()
    assert code == 0, text[-3000:]
    completed = _events(r, "s2.completed")
    assert not _events(r, "s2.failed"), text[-3000:]
    assert [e["subject"] for e in completed] == ["S2A_T33UUU_A"]
    assert r.xpending("s2", "app-package-trigger")["pending"] == 0
    (event,) = completed
    docs = _catalog_items(event["data"]["catalog"])
    assert [d["id"] for d in docs] == ["s2a_t33uuu_a-landcover"]
    assert event["data"]["item_href"] == item_url
    assert event["data"]["job_url"] == f"{ogc.url}/jobs/{event['data']['job_id']}"
    assert len(_job_ids(ogc) - before) == 1
    assert validate_streams(r, "s2") == 2


def _catalog_items(url: str) -> list[dict[str, Any]]:
    """The items a STAC catalog links, fetched over HTTP (relative links resolved)."""
    cat = requests.get(url, timeout=10).json()
    assert cat["type"] == "Catalog"
    hrefs = [urljoin(url, lk["href"]) for lk in cat["links"] if lk["rel"] in ("item", "child")]
    docs = [requests.get(h, timeout=10).json() for h in hrefs]
    for href, doc in zip(hrefs, docs, strict=True):
        for asset in doc.get("assets", {}).values():
            with requests.get(urljoin(href, asset["href"]), timeout=10, stream=True) as got:
                assert got.status_code == 200, asset["href"]
    return docs


def test_trigger_killed_mid_job_resumes_the_same_job(
    redis_url: str, r: Any, ogc: Server, tmp_path: Path
) -> None:
    """SIGKILL a trigger while it follows a job; a new trigger claims the event after the idle
    time and follows that job: one job and one completed event per item."""
    names = ("K1", "K2")
    events = [_sleep_event(f"{ogc.url}/processes?{n}", n) for n in names]
    for e in events:
        _publish(r, "k", e)
    before = _job_ids(ogc)
    slow = json.dumps({"steps": 5, "seconds": 0.2})

    def start(consumer: str) -> subprocess.Popen[bytes]:
        cmd = [*CLI, "trigger", "--redis-url", redis_url, "--stream", "k", "--group", "g",
               "--consumer", consumer, "--endpoint", ogc.url, "--process", "sleep",
               "--input-name", "data", "--inputs", slow, "--claim-idle", "1",
               "--poll", "0.1"]  # fmt: skip
        with (tmp_path / f"{consumer}.log").open("wb") as log:
            return subprocess.Popen(cmd, cwd=REPO, stdout=log, stderr=subprocess.STDOUT)

    first = start("t1")
    try:
        state = f"k:trigger:g:{events[0].get_id()}"
        _wait(lambda: r.hget(state, "job_url"), 60, "the first job to be submitted")
    finally:
        first.send_signal(signal.SIGKILL)
        first.wait(timeout=10)
    job_url = r.hget(state, "job_url")
    assert not _outcomes(r, "k")  # killed mid-job: nothing published yet
    assert r.xpending("k", "g")["pending"] == 1
    second = start("t2")
    try:
        _wait(lambda: len(_outcomes(r, "k")) >= 2, 90, "both outcomes")
        time.sleep(0.5)  # anything more would be a duplicate
    finally:
        second.send_signal(signal.SIGTERM)
        assert second.wait(timeout=30) == 0
    completed = _events(r, "k.completed")
    assert sorted(e["subject"] for e in completed) == list(names)
    assert not _events(r, "k.failed")
    (k1,) = [e for e in completed if e["subject"] == "K1"]
    assert k1["data"]["job_url"] == job_url  # the same job, followed by the new trigger
    assert len(_job_ids(ogc) - before) == 2  # one job per item
    log2 = (tmp_path / "t2.log").read_text()
    assert f"event {events[0].get_id()}: submitted" not in log2, log2[-2000:]
    assert r.xpending("k", "g")["pending"] == 0
    assert validate_streams(r, "k") == 4


def test_resubmission_after_a_crash_reuses_the_job(redis_url: str, r: Any, ogc: Server) -> None:
    """A trigger died after the server accepted the execute request but before it recorded the
    job: the retry carries the same Idempotency-Key and the server answers with that job."""
    event = _sleep_event(f"{ogc.url}/processes?R", "R")
    _publish(r, "re", event)
    client = ProcessesClient(ogc.url)
    try:
        key = ce.idempotency_key("re/g", "sleep", event.get_id())
        lost = client.execute_async("sleep", SLEEP.execute_inputs(ce.data_of(event)["href"]),
                                    idempotency_key=key)  # fmt: skip
    finally:
        client.close()
    before = _job_ids(ogc)
    with _Running(_config(redis_url, ogc, "re")) as (t,):
        _wait(lambda: t.handled, 30, "the event")
    (done,) = _events(r, "re.completed")
    assert done["data"]["job_id"] == lost.job_id
    assert _job_ids(ogc) == before


def test_failures_and_bad_input_end_in_one_failed_event_each(
    redis_url: str, r: Any, ogc: Server
) -> None:
    """No href, an href outside the allowed roots (the server's 400), malformed JSON, not a
    CloudEvent, a failing job: one failed event each, all acknowledged; the trigger goes on."""
    good = _sleep_event(f"{ogc.url}/processes?ok", "OK")
    no_href = ce.make(ce.item_event_id("s2", "NOHREF"), "/tests", ce.ITEM_CREATED,
                            now_rfc3339(), {"collection": "s2"}, subject="NOHREF")  # fmt: skip
    outside = _sleep_event("file:///etc/passwd", "OUTSIDE")
    entries: list[ce.CloudEvent | str] = [no_href, outside, "{not json", "{}", good, outside]
    for e in entries:
        _publish(r, "bad", e)
    before = _job_ids(ogc)
    with _Running(_config(redis_url, ogc, "bad")) as (t,):
        _wait(lambda: len(t.handled) >= len(entries), 30, "every entry")
        time.sleep(0.3)
    failed = _events(r, "bad.failed")
    (completed,) = _events(r, "bad.completed")
    assert completed["subject"] == "OK"
    assert len(failed) == 4, failed  # the repeated OUTSIDE event: no second outcome
    errors = {e["data"]["source_event"]: e["data"]["error"] for e in failed}
    assert "no item href" in errors[no_href.get_id()]
    assert "HTTP 400" in errors[outside.get_id()] and "/etc/passwd" in errors[outside.get_id()]
    malformed = [v for k, v in errors.items() if k.startswith("entry:")]
    assert len(malformed) == 2
    assert any("not JSON" in m for m in malformed)
    assert any("not a CloudEvent" in m for m in malformed)
    assert [o for _, o in t.handled].count("duplicate") == 1
    assert r.xpending("bad", "g")["pending"] == 0
    assert len(_job_ids(ogc) - before) == 1  # only the good event made a job
    assert validate_streams(r, "bad", items_too=False) == 5

    # a job that fails: one failed event with the job's message and id
    event = _sleep_event(f"{ogc.url}/processes?F", "F")
    _publish(r, "fail", event)
    mapping = InputMapping("sleep", "data", False, {"steps": 1, "fail": "the product is cloudy"})
    with _Running(_config(redis_url, ogc, "fail", mapping=mapping)) as (t,):
        _wait(lambda: t.handled, 30, "the failing job")
    (f,) = _events(r, "fail.failed")
    assert not _events(r, "fail.completed")
    assert "the product is cloudy" in f["data"]["error"] and f["data"]["job_id"]
    assert ogc.status(f["data"]["job_id"])["status"] == "failed"
    assert validate_streams(r, "fail") == 2


def test_two_triggers_share_a_group_without_duplicates(redis_url: str, r: Any, ogc: Server) -> None:
    events = [_sleep_event(f"{ogc.url}/processes?S{i}", f"S{i}") for i in range(4)]
    for e in events:
        _publish(r, "share", e)
    before = _job_ids(ogc)
    mapping = InputMapping("sleep", "data", False, {"steps": 2, "seconds": 0.1})
    configs = [_config(redis_url, ogc, "share", consumer=c, mapping=mapping) for c in ("a", "b")]
    with _Running(*configs) as (a, b):
        _wait(lambda: len(_events(r, "share.completed")) >= 4, 60, "four outcomes")
        time.sleep(0.3)
    completed = _events(r, "share.completed")
    assert sorted(e["subject"] for e in completed) == [f"S{i}" for i in range(4)]
    assert len({e["data"]["job_id"] for e in completed}) == 4
    assert a.handled and b.handled, (a.handled, b.handled)  # both took a share
    assert not {i for i, _ in a.handled} & {i for i, _ in b.handled}
    assert len(_job_ids(ogc) - before) == 4
    assert validate_streams(r, "share") == 8


def test_water_bodies_end_to_end_and_its_bad_input(
    redis_url: str, r: Any, ogc: Server, tmp_path: Path
) -> None:
    """Items pushed to the collector (webhook path) → `water-bodies` jobs: a water mask for the
    real L1C item; an item without green/NIR and an AOI that misses the item end in one failed
    event each, naming the problem, with nothing in the outputs."""
    from tests.support.httpserve import serve_directory

    if "water-bodies" not in {p["id"] for p in ogc.get("/processes").json()["processes"]}:
        pytest.fail("the water-bodies process is not configured in tests/server-config.yml")
    catalog = GrowingCatalog(tmp_path / "stac")
    good = catalog.add("S2A_T33UUU_W", 10)
    nobands = catalog.add("S2A_T33UUU_NOBANDS", 10, day=18)
    path = catalog.root / COLLECTION / nobands["id"] / f"{nobands['id']}.json"
    doc = json.loads(path.read_text())
    for band in ("B03", "B08"):
        del doc["assets"][band]
    path.write_text(json.dumps(doc))
    outputs = ogc.data_dir / "outputs"
    before = _job_ids(ogc)
    with serve_directory(catalog.root) as (base, _):
        publisher = StreamPublisher(redis_url, "wb", source="/tests/webhook")
        w = Watcher(tmp_path / "w.db", Target(), publisher=publisher, submit=False)
        try:
            for item in (good, nobands):
                href = f"{base}{COLLECTION}/{item['id']}/{item['id']}.json"
                item["links"].append({"rel": "self", "href": href})
                assert w.accept(item, "webhook")[0] == "new"
            assert w.run_once() == 0
        finally:
            w.close()
        r.xadd("wb-aoi", {"event": r.xrange("wb")[0][1]["event"]})  # the good item again
        wb = InputMapping.for_process("water-bodies")
        miss = InputMapping.for_process("water-bodies", inputs={"aoi": {"bbox": [0, 0, 1, 1]}})
        configs = (_config(redis_url, ogc, "wb", mapping=wb),
                   _config(redis_url, ogc, "wb-aoi", mapping=miss))  # fmt: skip
        with _Running(*configs) as (t, t_aoi):
            _wait(lambda: len(t.handled) == 2 and t_aoi.handled, 120, "three outcomes")
        (done,) = _events(r, "wb.completed")
        assert done["subject"] == "S2A_T33UUU_W"
        (item,) = _catalog_items(done["data"]["catalog"])
        assert any(a["href"].endswith(".tif") for a in item["assets"].values())
        (no_bands,) = _events(r, "wb.failed")
        assert no_bands["subject"] == "S2A_T33UUU_NOBANDS"
        assert "B03" in no_bands["data"]["error"] and "B08" in no_bands["data"]["error"]
        (aoi,) = _events(r, "wb-aoi.failed")
        assert "does not overlap" in aoi["data"]["error"], aoi
        assert not _events(r, "wb-aoi.completed")
        for failed in (no_bands, aoi):
            job_id = failed["data"]["job_id"]
            assert job_id is None or not (outputs / job_id).exists()
        assert len(_job_ids(ogc) - before) == 3  # one job per item event and group
    assert validate_streams(r, "wb") == 4
    assert validate_streams(r, "wb-aoi") == 2


def test_collector_publishes_and_submits(
    redis_url: str, r: Any, ogc: Server, tmp_path: Path
) -> None:
    """`--submit` with `--redis-url`: each new item is both published and submitted, once."""
    from tests.support.watch import sleep_target

    item = _item("BOTH")
    item["links"] = [{"rel": "self", "href": f"{ogc.url}/processes?BOTH"}]
    w = Watcher(tmp_path / "w.db", sleep_target(ogc), publisher=StreamPublisher(redis_url, "both"))
    try:
        assert w.accept(item, "webhook")[0] == "new"
        assert w.run_once() == 0
        (row,) = w.store.rows()
        assert row["state"] == "submitted" and row["published"] and row["job_id"]
        assert w.run_once() == 0 and len(w.store.rows()) == 1
    finally:
        w.close()
    (event,) = _events(r, "both")
    assert event["data"]["href"] == f"{ogc.url}/processes?BOTH"
    assert validate_streams(r, "both") == 1
