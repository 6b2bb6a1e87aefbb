"""deploy/argo: the Redis-stream EventSource, the water-bodies Sensor and WorkflowTemplate.

No cluster here, so the manifests are checked by reading them (as
tests/events/test_watch_argo.py does for the webhook path): names and references, the sensor's
filter and parameter templates evaluated on a real item-created CloudEvent, the CLI options
against the real parser; and the WorkflowTemplate's command is run for real on the bundled
Sentinel-2 item.
"""

from __future__ import annotations

import hashlib
import json
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

from app_package.events import cloudevents as ce
from app_package.util.timestamps import now_rfc3339
from tests.conftest import REPO
from tests.support.argo import dig, one

SAMPLE_ITEM = REPO / "app_package" / "sample" / "s2-l1c" / "item.json"


def _event() -> dict[str, Any]:
    """What the collector publishes for the sample item, as Argo's redisStream event carries it."""
    item = json.loads(SAMPLE_ITEM.read_text())
    item["collection"] = "sentinel-2-l1c"
    event = ce.item_created(item, "https://stac.example/items/x.json", "/w", now_rfc3339())
    return {"stream": "s2-items", "message_id": "1-0", "values": {"event": ce.to_json(event)}}


def _render(template: str, event: dict[str, Any]) -> str:
    """Evaluate the sensor's dataTemplates, which all read `(.Input.values.event | fromJson)`,
    then a dotted path, then optional `| sha1sum` and `| trunc N` (sprig)."""
    m = re.fullmatch(
        r"(?P<pre>[^{]*)\{\{ \(\.Input\.values\.event \| fromJson\)\.(?P<path>[\w.]+)"
        r"(?P<pipes>(?: \| [\w ]+)*) \}\}(?P<post>.*)",
        template,
    )
    assert m, f"unexpected dataTemplate {template!r}"
    value: Any = json.loads(event["values"]["event"])
    for part in m["path"].split("."):
        value = value[part]
    text = str(value)
    for pipe in filter(None, (p.strip() for p in m["pipes"].split("|"))):
        name, *args = pipe.split()
        if name == "sha1sum":
            text = hashlib.sha1(text.encode()).hexdigest()
        elif name == "trunc":
            text = text[: int(args[0])]
        else:
            raise AssertionError(f"unsupported function {name} in {template!r}")
    return m["pre"] + text + m["post"]


def test_event_source_reads_the_collectors_stream() -> None:
    from app_package.cli import build_parser

    es = one("EventSource", "app-package-redis")
    (name, source), *more = es["spec"]["redisStream"].items()
    assert not more
    watch = _subcommand(build_parser(), "watch")
    default_stream = next(a.default for a in watch._actions if a.dest == "stream")
    assert source["streams"] == [default_stream]
    trigger = _subcommand(build_parser(), "trigger")
    trigger_group = next(a.default for a in trigger._actions if a.dest == "group")
    assert source["consumerGroup"] != trigger_group  # its own group: it takes no trigger's events
    host, port = source["hostAddress"].split(":")
    service = one("Service", host.split(".")[0])
    assert int(port) in {p["port"] for p in service["spec"]["ports"]}
    one("Deployment", service["spec"]["selector"]["app"])
    assert name == "s2-items"


def _subcommand(parser: Any, name: str) -> Any:
    sub = next(a for a in parser._actions if a.dest == "command")
    return sub.choices[name]


def test_sensor_references_and_filter() -> None:
    sensor = one("Sensor", "app-package-water-bodies")
    one("ServiceAccount", sensor["spec"]["template"]["serviceAccountName"])
    (dep,) = sensor["spec"]["dependencies"]
    es = one("EventSource", dep["eventSourceName"])
    assert dep["eventName"] in es["spec"]["redisStream"]
    (flt,) = dep["filters"]["data"]
    assert flt["path"] == "values.event" and flt["type"] == "string"
    event = _event()
    assert re.search(flt["value"][0], event["values"]["event"])
    outcome = ce.job_completed(
        "x", scope="s2-items/g", process="water-bodies", source="/t", time=now_rfc3339(),
        job_id="j", job_url="http://h/jobs/j", catalog="http://h/c.json", item_href="h",
        subject=None,
    )  # fmt: skip
    assert not re.search(flt["value"][0], ce.to_json(outcome))  # outcomes trigger nothing
    (trigger,) = sensor["spec"]["triggers"]
    t = trigger["template"]
    assert t["conditions"] == dep["name"]
    wf = t["argoWorkflow"]["source"]["resource"]
    template = one("WorkflowTemplate", wf["spec"]["workflowTemplateRef"]["name"])
    declared = {p["name"]: p for p in template["spec"]["arguments"]["parameters"]}
    given = [p["name"] for p in wf["spec"]["arguments"]["parameters"]]
    assert set(given) <= set(declared)
    assert {n for n, p in declared.items() if "value" not in p} <= set(given)
    for param in t["argoWorkflow"]["parameters"]:
        assert param["src"]["dependencyName"] == dep["name"]
        dig(wf, param["dest"])


def test_sensor_parameters_extract_the_event() -> None:
    sensor = one("Sensor", "app-package-water-bodies")
    (trigger,) = sensor["spec"]["triggers"]
    event = _event()
    cloud = json.loads(event["values"]["event"])
    values = {
        p["dest"]: _render(p["src"]["dataTemplate"], event)
        for p in trigger["template"]["argoWorkflow"]["parameters"]
    }
    wf = trigger["template"]["argoWorkflow"]["source"]["resource"]
    names = [p["name"] for p in wf["spec"]["arguments"]["parameters"]]
    assert names == ["item-url", "item-id", "event-id"]
    assert values["spec.arguments.parameters.0.value"] == "https://stac.example/items/x.json"
    assert values["spec.arguments.parameters.1.value"] == cloud["subject"]
    assert values["spec.arguments.parameters.2.value"] == cloud["id"]
    name = values["metadata.name"]  # one Workflow per event id: a repeat is refused
    assert name == "water-bodies-" + hashlib.sha1(cloud["id"].encode()).hexdigest()[:20]
    assert re.fullmatch(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?", name) and len(name) <= 63


def test_water_bodies_template_runs_the_real_command(tmp_path: Path) -> None:
    """The template's command, rendered for the sample item, is the real CLI and writes the
    catalog where the template's output parameter says."""
    from app_package.cli import build_parser

    template = one("WorkflowTemplate", "water-bodies")
    (step,) = [t for t in template["spec"]["templates"] if "container" in t]
    container = step["container"]
    assert container["command"] == ["app-package", "water-bodies"]
    options = {o for a in _subcommand(build_parser(), "water-bodies")._actions
               for o in a.option_strings}  # fmt: skip
    used = [a for a in container["args"] if a.startswith("--")]
    assert used and set(used) <= options, set(used) - options
    mount = container["volumeMounts"][0]["mountPath"]
    params = {"item-url": str(SAMPLE_ITEM), "item-id": "x", "event-id": "e" * 32}

    def render(text: str) -> str:
        for k, v in params.items():
            text = text.replace(f"{{{{workflow.parameters.{k}}}}}", v)
        assert "{{" not in text, text
        return text.replace(mount, str(tmp_path), 1)

    args = [render(a) for a in container["args"]]
    proc = subprocess.run(
        [sys.executable, "-c", "from app_package.cli import main; main()", "water-bodies", *args],
        cwd=REPO, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-2000:]
    (out,) = step["outputs"]["parameters"]
    catalog = json.loads(Path(render(out["value"])).read_text())
    assert catalog["type"] == "Catalog"
