"""A job's results as OGC API – Processes answers them (18-062r2 §7.11, `results.yaml`): pure.

The processes have one output: `catalog`, the job's output STAC catalog (map-evaluation's is
`report`, its JSON report). `response: raw` (the default) answers the document itself;
`response: document` a results document mapping the output id to a qualified value
(`{"value": <catalog>, "mediaType": "application/json"}`: the processes' `outputTransmission`
is `value` first, and a client gets the whole catalog in one request) or, when the request
asked for `transmissionMode: reference`, to a link to it. Raw with reference answers 204 with
the link in a `Link` header.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

CATALOG_OUTPUT = "catalog"
TITLES = {CATALOG_OUTPUT: "the job's output STAC catalog", "report": "the job's report"}
JSON = "application/json"


@dataclass(frozen=True)
class Answer:
    """What to send: a status, a JSON body (or none) and headers."""

    status: int
    body: Any = None
    headers: dict[str, str] = field(default_factory=dict)


def results_answer(
    catalog: dict[str, Any],
    url: str,
    response: str,
    transmission: dict[str, str],
    output_id: str = CATALOG_OUTPUT,
) -> Answer:
    """The answer to a successful job's results, as its execute request asked (`output_id`:
    the process's one output)."""
    reference = transmission.get(output_id, "value") == "reference"
    if response == "document":
        value: dict[str, Any] = (
            {"href": url, "type": JSON, "rel": "related", "title": TITLES.get(output_id, output_id)}
            if reference
            else {"value": catalog, "mediaType": JSON}
        )
        return Answer(200, {output_id: value})
    if reference:
        return Answer(204, None, {"Link": f'<{url}>; rel="{output_id}"; type="{JSON}"'})
    return Answer(200, catalog)
