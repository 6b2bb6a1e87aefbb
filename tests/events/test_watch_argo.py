"""deploy/argo: the Argo Events / Argo Workflows manifests refer to each other consistently.

No cluster here, so the references are checked by reading the manifests: event source and event
names, sensor dependencies and triggers, WorkflowTemplate names and parameters, service
accounts, volumes, the CWL path/id and the image tags; the `watch` options against the CLI; the
stage-in script is run for real and its output opened as a product and checked against the
CWL workflow's inputs.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import yaml

from app_package import __version__
from tests.conftest import REPO
from tests.support.argo import ARGO, dig, docs, one
from tests.support.httpserve import serve_directory

IMAGE = "ghcr.io/app-package/app-package"


def _walk(node: Any) -> list[Any]:
    out = [node]
    if isinstance(node, dict):
        for v in node.values():
            out.extend(_walk(v))
    elif isinstance(node, list):
        for v in node:
            out.extend(_walk(v))
    return out


def test_kustomization_lists_every_manifest() -> None:
    kust = yaml.safe_load((ARGO / "kustomization.yaml").read_text())
    files = {p.name for p in ARGO.glob("*.yaml")} - {"kustomization.yaml"}
    assert set(kust["resources"]) == files


def test_sensor_references_event_sources_and_templates() -> None:
    sensor = one("Sensor", "app-package")
    deps = {d["name"]: d for d in sensor["spec"]["dependencies"]}
    for dep in deps.values():
        es = one("EventSource", dep["eventSourceName"])
        events = {name for kind in ("webhook", "calendar") for name in es["spec"].get(kind, {})}
        assert dep["eventName"] in events, dep
    one("ServiceAccount", sensor["spec"]["template"]["serviceAccountName"])
    used = set()
    for trigger in sensor["spec"]["triggers"]:
        t = trigger["template"]
        assert t["conditions"] in deps, t["name"]
        used.add(t["conditions"])
        wf = t["argoWorkflow"]["source"]["resource"]
        template = one("WorkflowTemplate", wf["spec"]["workflowTemplateRef"]["name"])
        declared = {p["name"]: p for p in template["spec"]["arguments"]["parameters"]}
        given = [p["name"] for p in wf["spec"].get("arguments", {}).get("parameters", [])]
        assert set(given) <= set(declared), (given, declared)
        required = {n for n, p in declared.items() if "value" not in p}
        assert required <= set(given), f"{t['name']} leaves {required - set(given)} unset"
        for param in t["argoWorkflow"].get("parameters", []):
            assert param["src"]["dependencyName"] in deps
            dig(wf, param["dest"])  # the destination exists in the submitted resource
    assert used == set(deps), "a dependency triggers nothing"


def test_webhook_parameters_extract_the_item(tmp_path: Path) -> None:
    """The sensor's dataKey paths, read the way gjson reads them, on a real webhook event."""
    sensor = one("Sensor", "app-package")
    (trigger,) = [
        t for t in sensor["spec"]["triggers"] if t["template"]["conditions"] == "new-item"
    ]
    item = json.loads((REPO / "app_package" / "sample" / "s2-l1c" / "item.json").read_text())
    item["links"].append({"rel": "self", "href": "https://stac.example/items/x.json"})
    event = {"header": {}, "body": item}  # what an Argo webhook event carries
    values = {}
    for param in trigger["template"]["argoWorkflow"]["parameters"]:
        key = param["src"].get("dataKey")
        if key is None:
            continue
        node: Any = event
        for part in re.findall(r'#\(rel=="[^"]+"\)|[^.]+', key):
            m = re.fullmatch(r'#\(rel=="([^"]+)"\)', part)
            node = next(x for x in node if x.get("rel") == m.group(1)) if m else node[part]
        values[param["dest"]] = node
    assert values["spec.arguments.parameters.0.value"] == "https://stac.example/items/x.json"
    assert values["spec.arguments.parameters.1.value"] == item["id"]
    wf = trigger["template"]["argoWorkflow"]["source"]["resource"]
    names = [p["name"] for p in wf["spec"]["arguments"]["parameters"]]
    assert names[:2] == ["item-url", "item-id"]
    name_param = [p for p in trigger["template"]["argoWorkflow"]["parameters"]
                  if p["dest"] == "metadata.name"]  # fmt: skip
    assert "sha1sum" in name_param[0]["src"]["dataTemplate"]  # one Workflow name per item


def test_workflow_templates_are_self_consistent() -> None:
    for template in (d for d in docs() if d["kind"] == "WorkflowTemplate"):
        spec = template["spec"]
        names = {t["name"] for t in spec["templates"]}
        assert spec["entrypoint"] in names
        one("ServiceAccount", spec["serviceAccountName"])
        declared = {p["name"] for p in spec["arguments"]["parameters"]}
        text = yaml.safe_dump(spec)
        for used in re.findall(r"\{\{workflow\.parameters\.([\w-]+)\}\}", text):
            assert used in declared, f"{template['metadata']['name']}: {used} not declared"
        volumes = {v["name"] for v in spec.get("volumes", [])} | {
            v["metadata"]["name"] for v in spec.get("volumeClaimTemplates", [])
        }
        for node in _walk(spec):
            if isinstance(node, dict) and "template" in node and "name" in node:
                assert node["template"] in names
            if isinstance(node, dict) and "mountPath" in node:
                assert node["name"] in volumes
            if isinstance(node, dict) and "claimName" in node:
                one("PersistentVolumeClaim", node["claimName"])
            if isinstance(node, dict) and "configMapKeyRef" in node:
                ref = node["configMapKeyRef"]
                assert ref["key"] in one("ConfigMap", ref["name"])["data"]


def test_image_tags_and_cwl_reference_match_the_package() -> None:
    images = [
        n["image"]
        for d in docs()
        for n in _walk(d)
        if isinstance(n, dict) and isinstance(n.get("image"), str)
    ]
    ours = [i for i in images if i.startswith(IMAGE + ":")]
    assert ours and all(i == f"{IMAGE}:{__version__}" for i in ours), ours
    cwl_text = (REPO / "cwl" / "tile-classification.cwl").read_text()
    assert f"dockerPull: {IMAGE}:{__version__}" in cwl_text
    assert f'org.opencontainers.image.version="{__version__}"' in (REPO / "Dockerfile").read_text()
    referenced = set()
    for template in (d for d in docs() if d["kind"] == "WorkflowTemplate"):
        params = {p["name"]: p.get("value") for p in template["spec"]["arguments"]["parameters"]}
        if "cwl" not in params:
            continue
        m = re.fullmatch(r"https://raw\.githubusercontent\.com/[^/]+/[^/]+/v([^/]+)/(.+)#(.+)",
                         params["cwl"])  # fmt: skip
        assert m, params["cwl"]
        tag, path, entry = m.groups()
        assert tag == __version__
        cwl = yaml.safe_load((REPO / path).read_text())
        assert cwl["s:softwareVersion"] == __version__
        workflows = [g["id"] for g in cwl["$graph"] if g["class"] == "Workflow"]
        assert workflows == [entry], f"{path}: one Workflow per package, the entry point"
        (calrissian,) = [t["container"] for t in template["spec"]["templates"]
                         if t.get("container", {}).get("command") == ["calrissian"]]  # fmt: skip
        assert calrissian["args"][-2:] == ["{{workflow.parameters.cwl}}",
                                           "/calrissian/input/params.json"]  # fmt: skip
        assert "--usage-report" in calrissian["args"]
        referenced.add(path)
    assert referenced == {"cwl/tile-classification.cwl", "cwl/eurosat-training-sweep.cwl"}


def optional(cwl_type: Any) -> bool:
    """A CWL input type that admits null: `T?`, or a list holding "null"."""
    if isinstance(cwl_type, list):
        return "null" in cwl_type
    return str(cwl_type).endswith("?")


def run_stage_in(
    template_name: str, package: str, env: dict[str, str], wdir: Path
) -> dict[str, Any]:
    """Run a WorkflowTemplate's stage-in script; its job order, checked against the package's
    one Workflow (no unknown input, every required one given)."""
    template = one("WorkflowTemplate", template_name)
    (stage,) = [t for t in template["spec"]["templates"] if t["name"] == "stage-in"]
    cwl = yaml.safe_load((REPO / "cwl" / package).read_text())
    (wf,) = [g for g in cwl["$graph"] if g["class"] == "Workflow"]
    proc = subprocess.run(
        [sys.executable, "-c", stage["script"]["source"]], env={**os.environ, **env,
         "WDIR": str(wdir)}, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    params: dict[str, Any] = json.loads((wdir / "input" / "params.json").read_text())
    assert set(params) <= set(wf["inputs"])
    required = {k for k, v in wf["inputs"].items() if not optional(v["type"])}
    assert required <= set(params)
    return params


def test_stage_in_writes_what_the_cwl_and_classify_accept(tmp_path: Path) -> None:
    """Run the stage-in script; its params match the CWL inputs, its catalog opens as a product."""
    from app_package.eo.sentinel2 import open_product

    sample = REPO / "app_package" / "sample" / "s2-l1c"
    with serve_directory(sample) as (base, _):
        env = {"ITEM_URL": base + "item.json", "MODEL": "models:/m@champion",
               "TRACKING_URI": "http://mlflow:5000"}  # fmt: skip
        params = run_stage_in(
            "tile-classification-calrissian", "tile-classification.cwl", env, tmp_path
        )
        folder = Path(params["product"][0]["path"])
        product = open_product(folder)
        assert len(product.bands) == 13
        assert product.bands["B8A"].href.startswith(base)


def test_sweep_stage_in_writes_what_the_cwl_and_train_accept(tmp_path: Path) -> None:
    """Run the sweep's stage-in script; its params match the CWL inputs and its catalog leads to
    the labelled chips over HTTP."""
    from app_package.data.dataset import list_items

    with serve_directory(REPO / "app_package" / "sample" / "eurosat") as (base, _):
        env = {"STAC_URL": base + "catalog.json", "LR": "[0.001, 0.01]", "BATCH_SIZE": "[32]",
               "ARCH": '["smallcnn"]', "EPOCHS": "2"}  # fmt: skip
        params = run_stage_in(
            "eurosat-training-sweep-calrissian", "eurosat-training-sweep.cwl", env, tmp_path
        )
        assert params["lr"] == [0.001, 0.01] and params["arch"] == ["smallcnn"]
        items, _ = list_items(str(Path(params["stac"]["path"]) / "catalog.json"))
        assert len(items) == 40  # the bundled sample's chips, read over HTTP


def test_watch_template_uses_real_cli_options() -> None:
    from app_package.cli import build_parser

    parser = build_parser()
    sub = next(a for a in parser._actions if a.dest == "command")
    watch = sub.choices["watch"]  # type: ignore[index]
    options = {o for a in watch._actions for o in a.option_strings}
    template = one("WorkflowTemplate", "stac-watch-once")
    (container,) = [t["container"] for t in template["spec"]["templates"] if "container" in t]
    assert container["command"][:2] == ["app-package", "watch"]
    used = [a for a in container["command"][2:] + container["args"] if a.startswith("--")]
    assert used and set(used) <= options, set(used) - options
    assert "--once" in used and "--state" in used
