"""Event-driven jobs: CloudEvents (`cloudevents`), Redis streams (`streams`), the OGC client
(`ogc_client`), the trigger, the webhook and the watcher (`watch/`)."""
