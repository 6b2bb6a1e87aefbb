"""`watch` and `trigger`: the event-driven jobs (new STAC items, Redis streams)."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from app_package.defaults import CHAMPION_URI, CLASSIFICATION_PROCESS
from app_package.errors import InputError


def _add_endpoint(group: Any) -> None:
    """Where jobs are run: an OGC API – Processes endpoint and one of its processes."""
    group.add_argument(
        "--endpoint",
        default="http://localhost:5000",
        help="OGC API - Processes landing page (default: %(default)s, `app-package serve`)",
    )
    group.add_argument(
        "--process", default=CLASSIFICATION_PROCESS, help="process id (default: %(default)s)"
    )


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
    _add_endpoint(g)
    g.add_argument(
        "--model",
        default=CHAMPION_URI,
        help="the process's model input (default: %(default)s)",
    )
    g.add_argument(
        "--input",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="another process input (repeatable; VALUE parsed as JSON when it is JSON)",
    )
    g = p.add_argument_group("state, bounds and modes")
    g.add_argument(
        "--state",
        type=Path,
        default=Path("var/watch.db"),
        help="sqlite file recording every item seen (default: %(default)s)",
    )
    g.add_argument(
        "--interval", type=float, default=60.0, help="seconds between searches (default: 60)"
    )
    g.add_argument(
        "--max-in-flight",
        type=int,
        default=4,
        help="jobs submitted and not finished at most (default: 4)",
    )
    g.add_argument(
        "--max-per-minute",
        type=float,
        default=30.0,
        help="submissions per minute at most (default: 30)",
    )
    g.add_argument(
        "--max-backoff",
        type=float,
        default=300.0,
        help="longest wait between retries when a service is down, seconds (default: 300)",
    )
    g.add_argument(
        "--once",
        action="store_true",
        help="one round (search, follow jobs, submit), then exit: for cron; exit status 75 "
        "when items are left for the next run",
    )
    g.add_argument(
        "--listen",
        metavar="HOST:PORT",
        help="also accept STAC items (or CloudEvents carrying one) POSTed to this address",
    )
    g.add_argument(
        "--token-env",
        default="APP_PACKAGE_WEBHOOK_TOKEN",
        help="environment variable holding a bearer token the webhook requires, if set "
        "(default: %(default)s)",
    )
    g = p.add_argument_group("event bus (Redis streams; `app-package trigger` consumes it)")
    g.add_argument(
        "--redis-url",
        metavar="URL",
        help="publish one CloudEvent per new item to a Redis stream, e.g. redis://127.0.0.1:6379/0",
    )
    g.add_argument(
        "--stream", default="s2-items", help="the stream to publish to (default: %(default)s)"
    )
    g.add_argument(
        "--submit",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="also submit jobs directly (default); --no-submit only publishes (needs --redis-url)",
    )
    p.set_defaults(handler=_run_watch)


def _parse_inputs(pairs: list[str]) -> dict[str, Any]:
    import json

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

    from app_package.events.streams import StreamPublisher
    from app_package.events.watch.search import Search
    from app_package.events.watch.watcher import Limits, Target, Watcher
    from app_package.events.webhook import WebhookServer, parse_listen

    if not args.stac_url and not args.listen:
        raise InputError("give --stac-url to poll a STAC API, --listen to take items, or both")
    if args.once and args.listen:
        raise InputError("--once and --listen exclude each other (a webhook runs until stopped)")
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
        endpoint=args.endpoint,
        process=args.process,
        model=args.model,
        inputs=_parse_inputs(args.input),
    )
    limits = Limits(
        poll_interval_s=args.interval,
        max_in_flight=args.max_in_flight,
        max_per_minute=args.max_per_minute,
        backoff_max_s=args.max_backoff,
    )
    listen = parse_listen(args.listen) if args.listen else None
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
        "--group",
        default="app-package-trigger",
        help="consumer group: triggers in one group share the events (default: %(default)s)",
    )
    g.add_argument("--consumer", help="this trigger's name in the group (default: host-pid)")
    g.add_argument(
        "--claim-idle",
        type=float,
        default=60.0,
        help="claim events left pending this many seconds by a dead trigger (default: 60)",
    )
    g = p.add_argument_group("what to run (OGC API - Processes)")
    _add_endpoint(g)
    g.add_argument(
        "--input-name",
        help="the input that takes the item href (default: product for tile-classification, "
        "items for water-bodies)",
    )
    g.add_argument(
        "--input-array",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="pass the href as a one-element array (default: true for water-bodies' items)",
    )
    g.add_argument(
        "--inputs",
        default="{}",
        metavar="JSON",
        help='the other inputs, a JSON object, e.g. \'{"model": "models:/m@champion"}\'',
    )
    g.add_argument(
        "--poll", type=float, default=1.0, help="seconds between job status polls (default: 1)"
    )
    g.add_argument(
        "--max-backoff",
        type=float,
        default=60.0,
        help="longest wait between retries when a service is down, seconds (default: 60)",
    )
    p.set_defaults(handler=_run_trigger)


def _run_trigger(args: argparse.Namespace) -> int:
    import json
    import signal

    from app_package.events.trigger import InputMapping, Trigger, TriggerConfig

    try:
        inputs = json.loads(args.inputs)
    except ValueError as e:
        raise InputError(f"--inputs {args.inputs!r} is not JSON: {e}") from e
    if not isinstance(inputs, dict):
        raise InputError(f"--inputs must be a JSON object, not {args.inputs!r}")
    mapping = InputMapping.for_process(args.process, args.input_name, args.input_array, inputs)
    config = TriggerConfig(
        redis_url=args.redis_url,
        stream=args.stream,
        group=args.group,
        endpoint=args.endpoint,
        mapping=mapping,
        claim_idle_s=args.claim_idle,
        poll_s=args.poll,
        backoff_max_s=args.max_backoff,
        **({"consumer": args.consumer} if args.consumer else {}),
    )
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


def register(sub: Any) -> None:
    _add_watch(sub)
    _add_trigger(sub)
