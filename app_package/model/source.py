"""Loading a classifier and its ModelSpec from wherever training left it.

Accepted: an MLflow URI (`models:/name@alias`, `models:/name/3`, `runs:/<id>/model`), a local
model folder (`model.pt` + `model.json`) or either file, an MLflow model folder (`MLmodel`), and the
training output's STAC catalog.json or MLM item (assets `model` and `model-spec`).

Each reference also gives the model's ONNX file (`ModelRef.onnx_path`, for `runtime="onnx"`) and,
where it is known, its STAC MLM item (`ModelRef.item_href`): the item itself for a STAC reference,
the run tag `app_package.stac_item` that training records for an MLflow model.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from app_package.errors import (
    AppPackageError,
    InputError,
    ModelError,
    NotFoundError,
    TrackingError,
)
from app_package.model.onnx import ONNX_ARTIFACT_TYPE
from app_package.model.spec import ONNX_FILE, SPEC_FILE, WEIGHTS_FILE, ModelSpec
from app_package.stac.io import items, resolve_href
from app_package.util.redact import redact

if TYPE_CHECKING:
    from torch import nn

    from app_package.model.onnx import OnnxNetwork

logger = logging.getLogger(__name__)

RUNTIMES: tuple[str, ...] = ("torch", "onnx")
# the run tag training sets to the absolute path of the MLM item it wrote (the final path)
STAC_ITEM_TAG = "app_package.stac_item"
ONNX_ARTIFACT = f"extra_files/{ONNX_FILE}"  # where log_model puts it inside an MLflow model


@dataclass(frozen=True)
class LoadedModel:
    """A network in eval mode, its spec, and how to cite it (URI and version)."""

    module: nn.Module
    spec: ModelSpec
    uri: str
    version: str | None = None


@dataclass(frozen=True)
class ModelRef:
    """A model found and its spec read, its weights not loaded yet (`load()`).

    Inference learns the bands it must read from the spec alone, so it can start decoding
    while torch is imported and the weights load.
    """

    spec: ModelSpec
    uri: str
    version: str | None
    loader: Callable[[], nn.Module]
    onnx_locator: Callable[[], Path] | None = None  # the local ONNX file, fetched if need be
    item_href: str | None = None  # where the model's STAC MLM item can be read, when known

    def load(self) -> LoadedModel:
        return LoadedModel(self.loader(), self.spec, self.uri, self.version)

    def onnx_path(self) -> Path:
        """The model's ONNX file on this machine (downloaded for an MLflow model); ModelError
        naming the model and the fix when it has none (models saved before ONNX export)."""
        from app_package.model.onnx import missing_onnx

        if self.onnx_locator is None:
            raise missing_onnx(self.uri, "no ONNX file is recorded for it")
        return self.onnx_locator()

    def load_onnx(self) -> OnnxNetwork:
        from app_package.model.onnx import OnnxNetwork

        return OnnxNetwork(self.onnx_path(), self.uri)

    def loader_for(self, runtime: str = "torch") -> Callable[[], nn.Module | OnnxNetwork]:
        """What loads the network for `runtime`: "torch" (the PyTorch module) or "onnx" (the
        ONNX file, run by ONNX Runtime on the CPU; located now, loaded when called)."""
        check_runtime(runtime)
        if runtime == "torch":
            return self.loader
        from app_package.model.onnx import OnnxNetwork

        path = self.onnx_path()  # found (or fetched) now: a missing file fails before any work
        return lambda: OnnxNetwork(path, self.uri)


def check_runtime(runtime: str) -> str:
    if runtime not in RUNTIMES:
        raise InputError(
            f"unknown runtime {runtime!r}: choose one of {', '.join(RUNTIMES)}", field="runtime"
        )
    return runtime


def load_model(uri: str, *, tracking_uri: str | None = None) -> tuple[nn.Module, ModelSpec]:
    """The network (eval mode, CPU) and its spec for a model URI or path.

    `tracking_uri` is the MLflow store that `models:/` and `runs:/` URIs resolve against
    (default: $MLFLOW_TRACKING_URI, else the local sqlite store, as for training).
    """
    m = load_model_info(uri, tracking_uri=tracking_uri)
    return m.module, m.spec


def load_model_info(uri: str, *, tracking_uri: str | None = None) -> LoadedModel:
    """Like `load_model`, also returning the URI and version to record in outputs."""
    return resolve_model(uri, tracking_uri=tracking_uri).load()


def resolve_model(uri: str, *, tracking_uri: str | None = None) -> ModelRef:
    """Find the model and read its spec; errors about the reference are raised here."""
    uri = str(uri)
    if uri.startswith(("models:/", "runs:/", "models:", "runs:")):
        return _resolve_mlflow(uri, tracking_uri)
    p = Path(uri)
    if not p.exists():
        raise NotFoundError(
            f"model {uri} not found: give models:/name@alias, models:/name/<version>, "
            "runs:/<run_id>/model, a folder with model.pt and model.json, or a training "
            "output catalog.json"
        )
    if p.is_dir():
        if (p / SPEC_FILE).is_file():
            return _resolve_local(p / WEIGHTS_FILE, p / SPEC_FILE, item_href=_folder_item(p))
        if (p / "MLmodel").is_file():
            return _resolve_mlflow(str(p.resolve()))
        if (p / "catalog.json").is_file():
            return _resolve_stac(p / "catalog.json")
        raise ModelError(f"{p} holds no model.json, MLmodel or catalog.json: not a model folder")
    if p.name == SPEC_FILE or p.name == WEIGHTS_FILE:
        return _resolve_local(p.parent / WEIGHTS_FILE, p.parent / SPEC_FILE)
    if p.suffix == ".pt":
        return _resolve_local(p, p.with_suffix(".json"))
    if p.suffix == ".json":
        return _resolve_stac(p)
    raise ModelError(f"cannot tell what kind of model {p} is: expected model.pt/model.json/.json")


def _folder_item(folder: Path) -> str | None:
    """The MLM item a training output's item folder holds (`<id>/<id>.json`), else None."""
    item = folder / f"{folder.name}.json"
    if item.name == SPEC_FILE or not item.is_file():
        return None
    try:
        is_item = json.loads(item.read_text()).get("type") == "Feature"
    except (OSError, ValueError, AttributeError):
        return None
    return str(item.resolve()) if is_item else None


def _read_spec(path: Path) -> ModelSpec:
    if not path.is_file():
        raise ModelError(f"model metadata {path} not found: a model needs its {SPEC_FILE}")
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError) as e:
        raise ModelError(f"cannot read model metadata {path}: {e}") from e
    return ModelSpec.from_dict(data)


def _resolve_local(
    weights: Path,
    spec_path: Path,
    uri: str = "",
    version: str = "",
    *,
    onnx: Path | None = None,
    item_href: str | None = None,
) -> ModelRef:
    """A model on disk; its ONNX file is `onnx`, else `model.onnx` beside the weights."""
    spec = _read_spec(spec_path)
    if not weights.is_file():
        raise ModelError(f"model weights {weights} not found")

    def load() -> nn.Module:
        from app_package.model.networks import load_local

        return load_local(weights, spec)

    uri = uri or str(weights.resolve())
    onnx_file = onnx if onnx is not None else weights.with_suffix(".onnx")

    def locate_onnx() -> Path:
        from app_package.model.onnx import missing_onnx

        if not onnx_file.is_file():
            raise missing_onnx(uri, f"{onnx_file} does not exist")
        return onnx_file

    version = version or (str(spec.extra["version"]) if spec.extra.get("version") else "")
    return ModelRef(spec, uri, version or None, load, locate_onnx, item_href)


def _resolve_stac(path: Path) -> ModelRef:
    """Training output: catalog.json -> the item with assets `model` / `model-spec`."""
    for item, item_href in items(str(path.resolve())):
        assets: dict[str, Any] = item.get("assets") or {}
        model_asset = assets.get("model") or next(
            (
                a
                for a in assets.values()
                if "mlm:model" in (a.get("roles") or [])
                and a.get("mlm:artifact_type") != ONNX_ARTIFACT_TYPE
            ),
            None,
        )
        spec_asset = assets.get("model-spec")
        if model_asset and spec_asset:
            weights = Path(resolve_href(model_asset["href"], item_href))
            spec_path = Path(resolve_href(spec_asset["href"], item_href))
            version = str(item.get("properties", {}).get("version") or "")
            onnx_asset = next(
                (a for a in assets.values() if a.get("mlm:artifact_type") == ONNX_ARTIFACT_TYPE),
                None,
            )
            if onnx_asset is not None:
                onnx = Path(resolve_href(onnx_asset["href"], item_href))
                return _resolve_local(
                    weights, spec_path, item_href, version, onnx=onnx, item_href=item_href
                )
            ref = _resolve_local(weights, spec_path, item_href, version, item_href=item_href)
            return replace(ref, onnx_locator=None)  # the item lists no ONNX asset
    raise ModelError(
        f"{path} holds no STAC item with a 'model' asset (roles mlm:model) and a 'model-spec' "
        "asset: point at the training output's catalog.json or its item"
    )


def _resolve_mlflow(uri: str, tracking_uri: str | None = None) -> ModelRef:
    try:
        import mlflow
        import mlflow.pytorch
        from mlflow.exceptions import MlflowException
    except ImportError as e:  # pragma: no cover - mlflow is a dependency
        raise ModelError(f"MLflow is needed to load {uri}: {e}") from e
    from app_package.training.tracking import (
        SPEC_METADATA_KEY,
        global_tracking_uri,
        resolve_tracking_uri,
    )

    store = resolve_tracking_uri(tracking_uri)

    def failed(e: Exception) -> AppPackageError:
        if isinstance(e, MlflowException):
            return ModelError(
                f"cannot load model {uri!r} from the MLflow store {redact(store)}: {e.message} "
                "(name a model registered there: models:/<name>@<alias>, models:/<name>/<n>, "
                "runs:/<id>/model; or the MLflow store that registered it)",
                field="tracking_uri",
            )
        return TrackingError(f"cannot reach the MLflow store for {uri}: {e}")

    try:
        with global_tracking_uri(store):
            info = mlflow.models.get_model_info(uri)
            version = _registry_version(uri)
    except (MlflowException, OSError) as e:
        raise failed(e) from e
    meta = info.metadata or {}
    if SPEC_METADATA_KEY not in meta:
        raise ModelError(
            f"MLflow model {uri} has no '{SPEC_METADATA_KEY}' metadata: log it with "
            "metadata={'app_package_spec': spec.to_dict()} so inference knows its bands"
        )
    spec = ModelSpec.from_dict(meta[SPEC_METADATA_KEY])

    def load() -> nn.Module:
        try:
            with global_tracking_uri(store):
                module = mlflow.pytorch.load_model(uri, map_location="cpu")
        except (MlflowException, OSError) as e:
            raise failed(e) from e
        return _eager(module, spec, uri)

    extra = (info.flavors.get("pytorch") or {}).get("extra_files") or []
    has_onnx = any(str(e.get("path", "")) == ONNX_ARTIFACT for e in extra)

    def locate_onnx() -> Path:
        """Download `extra_files/model.onnx` of the MLflow model (a local store: its path)."""
        from app_package.model.onnx import missing_onnx

        if not has_onnx:
            raise missing_onnx(uri, f"the MLflow model has no {ONNX_ARTIFACT}")
        if Path(uri).is_dir():  # an MLflow model folder
            return Path(uri) / ONNX_ARTIFACT
        # registry and runs:/ URIs take a sub-path; a logged model's own URI (models:/m-…)
        # does not, its artifact location does
        bases = [uri.rstrip("/"), str(info.artifact_path).rstrip("/")]
        error: Exception | None = None
        for base in bases:
            try:
                with global_tracking_uri(store):
                    return Path(
                        mlflow.artifacts.download_artifacts(artifact_uri=f"{base}/{ONNX_ARTIFACT}")
                    )
            except (MlflowException, OSError) as e:
                error = e
        assert error is not None
        raise failed(error) from error

    return ModelRef(spec, uri, version, load, locate_onnx, _run_tag(store, info.run_id))


def _run_tag(store: str, run_id: str | None, tag: str = STAC_ITEM_TAG) -> str | None:
    """A tag of the run that logged the model (the MLM item's path), or None."""
    if not run_id:
        return None
    try:
        from mlflow import MlflowClient

        value = MlflowClient(tracking_uri=store).get_run(run_id).data.tags.get(tag)
    except Exception as e:  # the model is usable without it: the item link is informative
        logger.warning("cannot read tag %s of MLflow run %s: %s", tag, run_id, e)
        return None
    return str(value) if value else None


def _eager(module: nn.Module, spec: ModelSpec, uri: str) -> nn.Module:
    """An eager network for MLflow's pt2 (torch.export) models, which fix the batch size and
    refuse eval()/channels_last: the same weights loaded into `build_model(spec)`."""
    import torch

    from app_package.model.networks import build_model

    if not isinstance(module, torch.fx.GraphModule):
        return module.eval()
    try:
        eager = build_model(spec)
        eager.load_state_dict(module.state_dict())
    except Exception as e:  # a custom architecture: keep the exported graph as it is
        logger.warning("using %s as an exported graph (%s): batch sizes may be fixed", uri, e)
        return module
    return eager.eval()


def _registry_version(uri: str) -> str | None:
    """The registered version behind models:/name@alias or models:/name/N, else None."""
    if not uri.startswith("models:/"):
        return None
    ref = uri.removeprefix("models:/")
    try:
        from mlflow import MlflowClient

        if "@" in ref:
            name, alias = ref.split("@", 1)
            return str(MlflowClient().get_model_version_by_alias(name, alias).version)
        name, _, ver = ref.partition("/")
        return ver if ver.isdigit() else None
    except Exception as e:  # the model loaded already: the version is only informative
        logger.warning("cannot resolve the registry version of %s: %s", uri, e)
        return None
