"""Event-driven classification (`search`: what to watch; `state`: the sqlite record of every item;
`watcher`: the loop): new STAC items become OGC API – Processes jobs, each exactly once.

A `Watcher` polls a STAC API search (collections, bbox, datetime window, cloud-cover limit, any
CQL2 filter) and/or accepts items pushed to its webhook (`app_package.events.webhook`); every new
item is submitted as an async execute request (`tile-classification` by default) to an OGC API –
Processes endpoint.

Exactly once, across restarts. Every item gets a deterministic key (process, collection, item
id). The key is first recorded in sqlite as `pending` (INSERT OR IGNORE: only one claimant ever
wins, whether poller or webhook, in this process or another). A pending row is leased, its
attempt counted and committed, *then* the request is sent with the key as its
`Idempotency-Key` header; the job id is recorded (`submitted`) after the answer. A crash between
"sent" and "recorded" leaves the row `pending`; once its lease expires it is sent again with the
same key, and a server that honours the header (ours does) answers with the job the first
request created — no second job. An endpoint that ignores the header could run such an item
twice; that window is one request's round trip. Items are never submitted again once
`submitted`; the job's outcome is followed (`successful` / `failed` / `dismissed`).

Bounds: at most `max_in_flight` jobs submitted and not yet finished, at most `max_per_minute`
submissions. An unreachable endpoint or STAC API (connection error, timeout, 5xx, 429) is retried
with exponential backoff, forever in loop mode: nothing is lost, items wait as `pending`. A 4xx
answer to an execute request marks the item `rejected` (retrying cannot fix it).

Event bus. With a `publisher` (`--redis-url`), every new item is also — or, with `submit=False`
(`--no-submit`), only — published as one CloudEvent to a Redis stream, for `app-package trigger`
or any other consumer. The event (its id derived from the item's collection and id) is built
when the item is first seen and stored in its row; it is published once (`EventBus.publish_once`
keeps a repeat of the same event id off the stream, so a crash between publishing and recording
publishes nothing twice), and retried with backoff while Redis is down.
"""
