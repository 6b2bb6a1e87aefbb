"""The OGC API – Processes server: its endpoints (`app`), OGC rules (`ogc`, `execute`, `hrefs`),
configuration and OpenAPI, and `serve` (`server`)."""
