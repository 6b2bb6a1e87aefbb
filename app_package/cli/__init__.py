"""The `app-package` command line: one subcommand per job, each a thin door onto the library.

Each `_add_*` function declares one subcommand's options and maps them straight onto a library
function's arguments. No logic lives here beyond parsing, progress display and error mapping.
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from app_package import __version__
from app_package.defaults import CHAMPION_URI, MODEL_NAME
from app_package.errors import AppPackageError
from app_package.util.progress import ProgressCallback

logger = logging.getLogger("app_package")

Handler = Callable[[argparse.Namespace], int]


@contextmanager
def progress_bar(desc: str) -> Iterator[ProgressCallback]:
    """A tqdm bar (0–100 %) on stderr, exposed as a ProgressCallback."""
    from tqdm import tqdm

    bar = tqdm(
        total=100, desc=desc, unit="%", bar_format="{l_bar}{bar}| {n:.0f}% [{elapsed}] {postfix}"
    )

    def update(percent: float, message: str) -> None:
        bar.n = max(0.0, min(100.0, percent))
        bar.set_postfix_str(message, refresh=False)
        bar.refresh()

    try:
        yield update
    finally:
        bar.close()


# ---------------------------------------------------------------- eurosat-to-stac / download
def _add_eurosat(sub: Any) -> None:
    p = sub.add_parser(
        "eurosat-to-stac",
        help="turn a EuroSAT folder (<Class>/<Class>_<n>.tif) into a static STAC catalog",
    )
    p.add_argument("src", type=Path, help="EuroSAT folder (class folders at any depth)")
    p.add_argument("dest", type=Path, help="output folder for the catalog (must not exist)")
    p.add_argument(
        "--geoparquet", action="store_true", help="also write the items as stac-geoparquet"
    )
    p.add_argument(
        "--collection-id", default="eurosat-ms", help="collection id (default: eurosat-ms)"
    )
    p.set_defaults(handler=_run_eurosat_to_stac)


def _run_eurosat_to_stac(args: argparse.Namespace) -> int:
    from app_package.data.eurosat_stac import eurosat_to_stac

    with progress_bar("eurosat-to-stac") as progress:
        out = eurosat_to_stac(
            args.src, args.dest, geoparquet=args.geoparquet, collection_id=args.collection_id,
            progress=progress,
        )  # fmt: skip
    print(out)
    return 0


def _add_download(sub: Any) -> None:
    p = sub.add_parser(
        "eurosat-download",
        help="download EuroSAT-MS and the standard split files (verified, resumable), "
        "then build its STAC catalog in DEST/stac",
    )
    p.add_argument("dest", type=Path, help="folder for downloads/, the archive and stac/")
    p.add_argument(
        "--url", default=None,
        help="archive URL (default: the official EuroSAT_MS.zip, Zenodo record 7711810; "
        "'torchgeo' for torchgeo's mirror EuroSATallBands.zip)",
    )  # fmt: skip
    p.add_argument(
        "--checksum", default=None,
        help="md5:<hex> or sha256:<hex> of the archive (default: Zenodo's published md5, "
        "or torchgeo's for its mirror)",
    )  # fmt: skip
    p.add_argument(
        "--split-base-url", default=None,
        help="folder URL holding eurosat-{train,val,test}.txt (default: torchgeo's mirror)",
    )  # fmt: skip
    p.add_argument("--no-splits", action="store_true", help="do not fetch the standard split files")
    p.add_argument(
        "--no-geoparquet", action="store_true", help="skip the stac-geoparquet file of the items"
    )
    p.set_defaults(handler=_run_download)


def _run_download(args: argparse.Namespace) -> int:
    from app_package.data import download as dl

    url = args.url or dl.ZENODO_EUROSAT_MS_URL
    if url == "torchgeo":
        url = dl.TORCHGEO_ARCHIVE_URL
    split_urls: dict[str, str] | None = None
    if args.no_splits:
        split_urls = {}
    elif args.split_base_url:
        base = args.split_base_url.rstrip("/") + "/"
        split_urls = {s: f"{base}eurosat-{s}.txt" for s in ("train", "val", "test")}
    with progress_bar("eurosat-download") as progress:
        out = dl.eurosat_download(
            args.dest, url=url, checksum=args.checksum, split_urls=split_urls,
            geoparquet=not args.no_geoparquet, progress=progress,
        )  # fmt: skip
    print(out)
    return 0


# ---------------------------------------------------------------- stac-merge
def _add_stac_merge(sub: Any) -> None:
    p = sub.add_parser(
        "stac-merge",
        help="copy several STAC catalogs under one parent catalog that links them",
    )
    p.add_argument("output", type=Path, help="output folder (must not exist, or be empty)")
    p.add_argument(
        "catalogs", type=Path, nargs="+", help="catalog folders (each holding catalog.json)"
    )
    p.add_argument("--id", dest="catalog_id", default="merged", help="parent catalog id")
    p.add_argument(
        "--description",
        default="Catalogs merged by app-package stac-merge",
        help="parent catalog description",
    )
    p.add_argument("--title", default=None, help="parent catalog title")
    p.set_defaults(handler=_run_stac_merge)


def _run_stac_merge(args: argparse.Namespace) -> int:
    from app_package.stac.merge import merge_catalogs

    out = merge_catalogs(
        args.catalogs, args.output, catalog_id=args.catalog_id, description=args.description,
        title=args.title,
    )  # fmt: skip
    print(out)
    return 0


# ---------------------------------------------------------------- serve
def _add_serve(sub: Any) -> None:
    p = sub.add_parser(
        "serve",
        help="start the OGC API - Processes server (pygeoapi + uvicorn; jobs in child processes)",
    )
    p.add_argument("--host", default="127.0.0.1", help="address to listen on (default: 127.0.0.1)")
    p.add_argument("--port", type=int, default=5000, help="port to listen on (default: 5000)")
    p.add_argument(
        "--workers", type=int, default=1,
        help="server processes on the port (default: 1); more than 1 needs a PostgreSQL job "
        "store ($APP_PACKAGE_JOB_STORE=postgresql://…)",
    )  # fmt: skip
    p.add_argument(
        "--config", type=Path, default=None,
        help="pygeoapi configuration (default: $APP_PACKAGE_CONFIG or the bundled "
        "pygeoapi-config.yml); data go to $APP_PACKAGE_DATA_DIR (default: ./var)",
    )  # fmt: skip
    p.set_defaults(handler=_run_serve)


def _run_serve(args: argparse.Namespace) -> int:
    from app_package.service.server import serve

    serve(args.host, args.port, args.config, args.workers)
    return 0


# ---------------------------------------------------------------- train / best-model
def _add_train(sub: Any) -> None:
    from app_package.training.config import LR_SCHEDULES, OPTIMIZERS, TrainConfig

    d = TrainConfig(stac="", output=Path())
    p = sub.add_parser(
        "train",
        help="train a classifier on labelled chips from STAC, track it in MLflow, write a STAC "
        "MLM catalog",
    )
    p.add_argument("--stac", required=True, help="training data: STAC catalog/collection or API")
    p.add_argument("--output", required=True, type=Path, help="output folder (must not exist)")
    p.add_argument(
        "--bands",
        default=None,
        help="comma-separated bands, e.g. B02,B03,B04,B08 (default: all 13)",
    )
    p.add_argument("--arch", default=d.arch, help=f"smallcnn or resnet18 (default: {d.arch})")
    p.add_argument("--epochs", type=int, default=d.epochs, help=f"default: {d.epochs}")
    p.add_argument("--batch-size", type=int, default=d.batch_size, help=f"default: {d.batch_size}")
    p.add_argument("--lr", type=float, default=d.lr, help=f"learning rate (default: {d.lr})")
    p.add_argument(
        "--optimizer", default=d.optimizer, choices=OPTIMIZERS, help=f"default: {d.optimizer}"
    )
    p.add_argument(
        "--weight-decay", type=float, default=d.weight_decay, help=f"default: {d.weight_decay}"
    )
    p.add_argument(
        "--lr-schedule",
        default=d.lr_schedule,
        choices=LR_SCHEDULES,
        help=f"default: {d.lr_schedule}",
    )
    p.add_argument(
        "--patience",
        type=int,
        default=d.patience,
        help=f"early-stopping patience in epochs, 0 = off (default: {d.patience})",
    )
    p.add_argument(
        "--samples-per-class",
        type=int,
        default=None,
        help="draw this many chips per class (default: all)",
    )
    p.add_argument(
        "--val-fraction", type=float, default=d.val_fraction, help=f"default: {d.val_fraction}"
    )
    p.add_argument(
        "--test-fraction", type=float, default=d.test_fraction, help=f"default: {d.test_fraction}"
    )
    p.add_argument("--seed", type=int, default=d.seed, help=f"default: {d.seed}")
    p.add_argument("--device", default=d.device, help="auto (CUDA when present), cpu or cuda")
    p.add_argument(
        "--no-augment",
        dest="augment",
        action="store_false",
        help="no random flips/rotations of training chips",
    )
    p.add_argument(
        "--no-refit",
        dest="refit",
        action="store_false",
        help="keep the early-stopping epoch's weights instead of refitting on train + validation "
        "chips for that many epochs",
    )
    p.add_argument(
        "--no-amp",
        dest="amp",
        action="store_false",
        help="train in float32 instead of bf16 autocast",
    )
    p.add_argument(
        "--tracking-uri",
        default=None,
        help="MLflow store (default: $MLFLOW_TRACKING_URI, else sqlite:///mlflow.db)",
    )
    p.add_argument("--experiment", default=d.experiment, help=f"default: {d.experiment}")
    p.add_argument(
        "--model-name",
        default=d.model_name,
        help=f"registered model name (default: {d.model_name})",
    )
    p.set_defaults(handler=_run_train)


def _run_train(args: argparse.Namespace) -> int:
    import json

    from app_package.training.config import TrainConfig
    from app_package.training.train import train

    config = TrainConfig(
        stac=args.stac,
        output=args.output,
        bands=tuple(args.bands.split(",")) if args.bands else None,
        arch=args.arch,
        epochs=args.epochs,
        batch_size=args.batch_size,
        lr=args.lr,
        optimizer=args.optimizer,
        weight_decay=args.weight_decay,
        lr_schedule=args.lr_schedule,
        patience=args.patience,
        samples_per_class=args.samples_per_class,
        val_fraction=args.val_fraction,
        test_fraction=args.test_fraction,
        seed=args.seed,
        device=args.device,
        tracking_uri=args.tracking_uri,
        experiment=args.experiment,
        model_name=args.model_name,
        augment=args.augment,
        amp=args.amp,
        refit=args.refit,
    )
    with progress_bar("train") as progress:
        result = train(config, progress)
    summary = {
        "run_id": result.run_id,
        "model_uri": result.model_uri,
        "is_champion": result.is_champion,
        "test_accuracy": result.test_metrics["accuracy"],
        "test_macro_f1": result.test_metrics["macro_f1"],
        "epochs_run": result.epochs_run,
        "catalog": str(result.catalog),
    }
    print(json.dumps(summary, indent=2))
    return 0


def _add_best_model(sub: Any) -> None:
    p = sub.add_parser(
        "best-model",
        help="print a loadable model URI: <name>@champion, or an experiment's best run by a metric",
    )
    p.add_argument(
        "--tracking-uri",
        default=None,
        help="MLflow store (default: $MLFLOW_TRACKING_URI, else sqlite:///mlflow.db)",
    )
    p.add_argument(
        "--model-name",
        default=MODEL_NAME,
        help="registered model whose champion to return (default: eurosat-classifier)",
    )
    p.add_argument(
        "--experiment", default=None, help="instead, the best finished run of this experiment"
    )
    p.add_argument(
        "--metric",
        default="test_accuracy",
        help="metric ranking runs with --experiment (default: test_accuracy)",
    )
    order = p.add_mutually_exclusive_group()
    order.add_argument(
        "--min",
        dest="ascending",
        action="store_const",
        const=True,
        help="lower is better (default for *loss* metrics)",
    )
    order.add_argument(
        "--max",
        dest="ascending",
        action="store_const",
        const=False,
        help="higher is better (default otherwise)",
    )
    p.set_defaults(handler=_run_best_model)


def _run_best_model(args: argparse.Namespace) -> int:
    from app_package.training.tracking import best_model_uri

    print(
        best_model_uri(
            tracking_uri=args.tracking_uri,
            model_name=args.model_name,
            experiment=args.experiment,
            metric=args.metric,
            ascending=args.ascending,
        )
    )
    return 0


# ---------------------------------------------------------------- classify
def _add_classify(sub: Any) -> None:
    p = sub.add_parser(
        "classify",
        help="classify a Sentinel-2 product chip by chip into a COG class map + STAC catalog",
    )
    p.add_argument(
        "product",
        help="STAC item file or URL, staged-in folder holding catalog.json, or a .SAFE folder",
    )
    p.add_argument(
        "--model", required=True,
        help="models:/name@alias, models:/name/N, runs:/ID/model, a model folder, or a training "
        "output catalog.json",
    )  # fmt: skip
    p.add_argument("--output", required=True, type=Path, help="output folder (must not exist)")
    p.add_argument(
        "--stride", type=int, default=None,
        help="chip step in pixels (default: the chip size; a divisor of it averages overlapping "
        "chips into a finer map)",
    )  # fmt: skip
    p.add_argument("--batch-size", type=int, default=256, help="chips per batch (default 256)")
    p.add_argument("--device", default="auto", help="auto, cpu or cuda (default auto)")
    p.add_argument(
        "--tracking-uri",
        help="MLflow store that models:/ and runs:/ URIs resolve against "
        "(default: $MLFLOW_TRACKING_URI, else sqlite:///mlflow.db)",
    )
    p.set_defaults(handler=_run_classify)


def _run_classify(args: argparse.Namespace) -> int:
    from app_package.inference.classify import classify

    with progress_bar("classify") as progress:
        out = classify(
            args.product, args.model, args.output, stride=args.stride,
            batch_size=args.batch_size, device=args.device, tracking_uri=args.tracking_uri,
            progress=progress,
        )  # fmt: skip
    print(out)
    return 0


# ---------------------------------------------------------------- water-bodies
def _add_water_bodies(sub: Any) -> None:
    p = sub.add_parser(
        "water-bodies",
        help="water masks of Sentinel-2 products (NDWI + Otsu) as COGs + one STAC catalog",
    )
    p.add_argument(
        "items", nargs="+", metavar="ITEM",
        help="STAC item file or URL, staged-in folder holding catalog.json, or a .SAFE folder",
    )  # fmt: skip
    p.add_argument("--output", required=True, type=Path, help="output folder (must not exist)")
    p.add_argument(
        "--aoi", default=None, metavar="MINX,MINY,MAXX,MAXY",
        help="area of interest in --aoi-crs (default: the whole product); write --aoi=-1,2,3,4 "
        "when the first number is negative",
    )  # fmt: skip
    p.add_argument(
        "--aoi-crs", default="EPSG:4326", help="CRS of --aoi (default: EPSG:4326, lon/lat)"
    )
    p.set_defaults(handler=_run_water_bodies)


def _run_water_bodies(args: argparse.Namespace) -> int:
    from app_package.inference.water_bodies import parse_aoi, water_bodies

    aoi = parse_aoi(args.aoi) if args.aoi is not None else None
    with progress_bar("water-bodies") as progress:
        out = water_bodies(
            args.items, args.output, aoi=aoi, aoi_crs=args.aoi_crs, progress=progress
        )
    print(out)
    return 0


# ---------------------------------------------------------------- watch
def _add_watch(sub: Any) -> None:
    p = sub.add_parser(
        "watch",
        help="submit a classification job for every new STAC item (poll a STAC API and/or "
        "take items on a webhook), each exactly once",
    )
    g = p.add_argument_group("what to watch (STAC API search)")
    g.add_argument("--stac-url", help="STAC API landing page to poll (omit for webhook only)")
    g.add_argument("--collection", action="append", default=[], help="collection id (repeatable)")
    g.add_argument(
        "--bbox", type=float, nargs=4, metavar=("W", "S", "E", "N"), help="WGS84 bounding box"
    )
    g.add_argument("--datetime", help="datetime or window, e.g. 2024-01-01/.. (RFC 3339)")
    g.add_argument(
        "--max-cloud-cover", type=float, help="only items with eo:cloud_cover <= this (%%)"
    )
    g.add_argument("--filter", help="a CQL2 filter, as CQL2-text or CQL2-JSON")
    g.add_argument(
        "--max-items", type=int, default=1000, help="items per search at most (default: 1000)"
    )
    g = p.add_argument_group("where to submit (OGC API - Processes)")
    g.add_argument(
        "--endpoint", default="http://localhost:5000",
        help="OGC API - Processes landing page (default: http://localhost:5000, `app-package "
        "serve`)",
    )  # fmt: skip
    g.add_argument(
        "--process", default="tile-classification", help="process id (default: %(default)s)"
    )
    g.add_argument(
        "--model", default=CHAMPION_URI,
        help="the process's model input (default: %(default)s)",
    )  # fmt: skip
    g.add_argument(
        "--input", action="append", default=[], metavar="NAME=VALUE",
        help="another process input (repeatable; VALUE parsed as JSON when it is JSON)",
    )  # fmt: skip
    g = p.add_argument_group("state, bounds and modes")
    g.add_argument(
        "--state", type=Path, default=Path("var/watch.db"),
        help="sqlite file recording every item seen (default: %(default)s)",
    )  # fmt: skip
    g.add_argument(
        "--interval", type=float, default=60.0, help="seconds between searches (default: 60)"
    )
    g.add_argument(
        "--max-in-flight", type=int, default=4,
        help="jobs submitted and not finished at most (default: 4)",
    )  # fmt: skip
    g.add_argument(
        "--max-per-minute", type=float, default=30.0,
        help="submissions per minute at most (default: 30)",
    )  # fmt: skip
    g.add_argument(
        "--max-backoff", type=float, default=300.0,
        help="longest wait between retries when a service is down, seconds (default: 300)",
    )  # fmt: skip
    g.add_argument(
        "--once", action="store_true",
        help="one round (search, follow jobs, submit), then exit: for cron; exit status 75 "
        "when items are left for the next run",
    )  # fmt: skip
    g.add_argument(
        "--listen", metavar="HOST:PORT",
        help="also accept STAC items (or CloudEvents carrying one) POSTed to this address",
    )  # fmt: skip
    g.add_argument(
        "--token-env", default="APP_PACKAGE_WEBHOOK_TOKEN",
        help="environment variable holding a bearer token the webhook requires, if set "
        "(default: %(default)s)",
    )  # fmt: skip
    g = p.add_argument_group("event bus (Redis streams; `app-package trigger` consumes it)")
    g.add_argument(
        "--redis-url", metavar="URL",
        help="publish one CloudEvent per new item to a Redis stream, e.g. redis://127.0.0.1:6379/0",
    )  # fmt: skip
    g.add_argument(
        "--stream", default="s2-items", help="the stream to publish to (default: %(default)s)"
    )
    g.add_argument(
        "--submit", action=argparse.BooleanOptionalAction, default=True,
        help="also submit jobs directly (default); --no-submit only publishes (needs "
        "--redis-url)",
    )  # fmt: skip
    p.set_defaults(handler=_run_watch)


def _parse_inputs(pairs: list[str]) -> dict[str, Any]:
    import json

    from app_package.errors import InputError

    out: dict[str, Any] = {}
    for pair in pairs:
        name, sep, value = pair.partition("=")
        if not sep or not name:
            raise InputError(f"--input {pair!r} must be NAME=VALUE, e.g. --input stride=32")
        try:
            out[name] = json.loads(value)
        except ValueError:
            out[name] = value
    return out


def _run_watch(args: argparse.Namespace) -> int:
    import os
    import signal

    from app_package.errors import InputError
    from app_package.events.streams import StreamPublisher
    from app_package.events.watch.search import Search
    from app_package.events.watch.watcher import Limits, Target, Watcher
    from app_package.events.webhook import WebhookServer, parse_listen

    if not args.stac_url and not args.listen:
        raise InputError("give --stac-url to poll a STAC API, --listen to take items, or both")
    if args.once and args.listen:
        raise InputError("--once and --listen exclude each other (a webhook runs until stopped)")
    for name in ("interval", "max_per_minute", "max_backoff"):
        if getattr(args, name) <= 0:
            raise InputError(f"--{name.replace('_', '-')} must be > 0")
    if args.max_in_flight < 1:
        raise InputError("--max-in-flight must be >= 1")
    search = Search(
        stac_url=args.stac_url,
        collections=tuple(args.collection),
        bbox=tuple(args.bbox) if args.bbox else None,
        datetime=args.datetime,
        max_cloud_cover=args.max_cloud_cover,
        filter=Search.parse_filter(args.filter),
        max_items=args.max_items,
    )
    target = Target(
        endpoint=args.endpoint, process=args.process, model=args.model,
        inputs=_parse_inputs(args.input),
    )  # fmt: skip
    limits = Limits(
        poll_interval_s=args.interval, max_in_flight=args.max_in_flight,
        max_per_minute=args.max_per_minute, backoff_max_s=args.max_backoff,
    )  # fmt: skip
    listen = parse_listen(args.listen) if args.listen else None
    if not args.submit and not args.redis_url:
        raise InputError("--no-submit needs --redis-url: the items would go nowhere")
    publisher = None
    if args.redis_url:
        source = args.stac_url or "/app-package/watch"
        publisher = StreamPublisher(args.redis_url, args.stream, source)
    watcher = Watcher(args.state, target, search, limits, publisher=publisher, submit=args.submit)
    # SIGTERM/SIGINT: finish the request in progress, close the state file, exit 0
    stop_signals = (signal.SIGTERM, signal.SIGINT)
    previous = {s: signal.signal(s, lambda *_: watcher.stop()) for s in stop_signals}
    hook = None
    try:
        if args.once:
            return watcher.run_once()
        if listen is not None:
            host, port = listen
            hook = WebhookServer(watcher, host, port, os.environ.get(args.token_env) or None)
            hook.start()
        watcher.run()
        return 0
    finally:
        if hook is not None:
            hook.stop()
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        watcher.close()


# ---------------------------------------------------------------- trigger
def _add_trigger(sub: Any) -> None:
    p = sub.add_parser(
        "trigger",
        help="run a process for every item event on a Redis stream (consumer group), publish "
        "<stream>.completed / <stream>.failed events; each event exactly once",
    )
    g = p.add_argument_group("events (Redis streams)")
    g.add_argument(
        "--redis-url", default="redis://127.0.0.1:6379/0", help="Redis (default: %(default)s)"
    )
    g.add_argument("--stream", default="s2-items", help="item events (default: %(default)s)")
    g.add_argument(
        "--group", default="app-package-trigger",
        help="consumer group: triggers in one group share the events (default: %(default)s)",
    )  # fmt: skip
    g.add_argument("--consumer", help="this trigger's name in the group (default: host-pid)")
    g.add_argument(
        "--claim-idle", type=float, default=60.0,
        help="claim events left pending this many seconds by a dead trigger (default: 60)",
    )  # fmt: skip
    g = p.add_argument_group("what to run (OGC API - Processes)")
    g.add_argument(
        "--endpoint", default="http://localhost:5000",
        help="OGC API - Processes landing page (default: %(default)s)",
    )  # fmt: skip
    g.add_argument(
        "--process", default="tile-classification", help="process id (default: %(default)s)"
    )
    g.add_argument(
        "--input-name",
        help="the input that takes the item href (default: product for tile-classification, "
        "items for water-bodies)",
    )
    g.add_argument(
        "--input-array", action=argparse.BooleanOptionalAction, default=None,
        help="pass the href as a one-element array (default: true for water-bodies' items)",
    )  # fmt: skip
    g.add_argument(
        "--inputs", default="{}", metavar="JSON",
        help='the other inputs, a JSON object, e.g. \'{"model": "models:/m@champion"}\'',
    )  # fmt: skip
    g.add_argument(
        "--poll", type=float, default=1.0, help="seconds between job status polls (default: 1)"
    )
    g.add_argument(
        "--max-backoff", type=float, default=60.0,
        help="longest wait between retries when a service is down, seconds (default: 60)",
    )  # fmt: skip
    p.set_defaults(handler=_run_trigger)


def _run_trigger(args: argparse.Namespace) -> int:
    import json
    import signal

    from app_package.errors import InputError
    from app_package.events.trigger import InputMapping, Trigger, TriggerConfig

    try:
        inputs = json.loads(args.inputs)
    except ValueError as e:
        raise InputError(f"--inputs {args.inputs!r} is not JSON: {e}") from e
    if not isinstance(inputs, dict):
        raise InputError(f"--inputs must be a JSON object, not {args.inputs!r}")
    for name in ("claim_idle", "poll", "max_backoff"):
        if getattr(args, name) <= 0:
            raise InputError(f"--{name.replace('_', '-')} must be > 0")
    mapping = InputMapping.for_process(args.process, args.input_name, args.input_array, inputs)
    config = TriggerConfig(
        redis_url=args.redis_url, stream=args.stream, group=args.group, endpoint=args.endpoint,
        mapping=mapping, claim_idle_s=args.claim_idle, poll_s=args.poll,
        backoff_max_s=args.max_backoff,
        **({"consumer": args.consumer} if args.consumer else {}),
    )  # fmt: skip
    trigger = Trigger(config)
    stop_signals = (signal.SIGTERM, signal.SIGINT)
    previous = {s: signal.signal(s, lambda *_: trigger.stop()) for s in stop_signals}
    try:
        trigger.run()
        return 0
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        trigger.close()


# ---------------------------------------------------------------- main
def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="app-package",
        description="EuroSAT land-cover classification of Sentinel-2: train, classify, serve.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    parser.add_argument(
        "-v", "--verbose", action="count", default=0, help="more logging (-vv: debug)"
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for add in (
        _add_eurosat,
        _add_download,
        _add_stac_merge,
        _add_serve,
        _add_train,
        _add_best_model,
        _add_classify,
        _add_water_bodies,
        _add_watch,
        _add_trigger,
    ):
        add(sub)
    return parser


def main(argv: list[str] | None = None) -> None:
    parser = build_parser()
    args = parser.parse_args(argv)
    level = logging.WARNING - 10 * min(args.verbose, 2) if args.verbose else logging.INFO
    logging.basicConfig(level=level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    handler: Handler = args.handler
    try:
        code = handler(args)
    except AppPackageError as e:
        print(f"app-package {args.command}: error: {e}", file=sys.stderr)
        code = 2
    except KeyboardInterrupt:
        print(f"app-package {args.command}: interrupted", file=sys.stderr)
        code = 130
    raise SystemExit(code)
