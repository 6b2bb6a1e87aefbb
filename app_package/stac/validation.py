"""Offline STAC validation: STAC core schemas bundled in pystac, extension schemas from a folder.

`schema_root` is a folder laid out by URL (default: `BUNDLED_SCHEMAS`, the released schemas of
the extensions this package writes, shipped with it): the schema
`https://stac-extensions.github.io/<ext>/<ver>/schema.json` is read from
`<schema_root>/stac-extensions.github.io/<ext>/<ver>/schema.json`. Nothing
is fetched over the network: a schema that is neither bundled nor under `schema_root` is an error
naming the URL, so a test can never pass by silently skipping an extension.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pystac
from pystac.stac_object import STACObjectType
from pystac.validation.stac_validator import GetSchemaError, JsonSchemaSTACValidator

from app_package.defaults import SCHEMAS_DIR
from app_package.errors import DataError, NotFoundError
from app_package.stac.io import walk

logger = logging.getLogger(__name__)

BUNDLED_SCHEMAS = SCHEMAS_DIR


class OfflineSTACValidator(JsonSchemaSTACValidator):
    """pystac's JSON-schema validator that reads extension schemas from a local folder only."""

    def __init__(self, schema_root: Path = BUNDLED_SCHEMAS) -> None:
        super().__init__()
        self._registry: Any = None
        self._validators: dict[str, Any] = {}
        self.schema_root = Path(schema_root)
        if not self.schema_root.is_dir():
            raise NotFoundError(
                f"schema folder {self.schema_root} does not exist: pass the folder holding "
                "stac-extensions.github.io/<ext>/<version>/schema.json"
            )
        for f in self.schema_root.rglob("schema.json"):
            rel = f.relative_to(self.schema_root).as_posix()
            self.schema_cache[f"https://{rel}"] = json.loads(f.read_text())

    @property
    def registry(self) -> Any:
        """One registry for all validations (pystac rebuilds it for every object)."""
        if self._registry is None:
            self._registry = super().registry
        return self._registry

    def _validate_from_uri(
        self,
        stac_dict: dict[str, Any],
        stac_object_type: STACObjectType,
        schema_uri: str,
        href: str | None = None,
    ) -> None:
        """As pystac's, but each schema is checked and compiled once, not once per object."""
        import jsonschema.exceptions
        import jsonschema.validators

        validator = self._validators.get(schema_uri)
        if validator is None:
            schema = self._get_schema(schema_uri)
            cls = jsonschema.validators.validator_for(schema)
            cls.check_schema(schema)
            validator = cls(schema, registry=self.registry)
            self._validators[schema_uri] = validator
        errors = list(validator.iter_errors(stac_dict))
        if errors:
            msg = f"Validation failed for {stac_object_type} "
            if href is not None:
                msg += f"at {href} "
            if stac_dict.get("id") is not None:
                msg += f"with ID {stac_dict['id']} "
            msg += f"against schema at {schema_uri}"
            best = jsonschema.exceptions.best_match(errors)
            if best:
                msg += "\n" + str(best)
            raise pystac.STACValidationError(msg, source=errors) from best

    def _get_schema(self, schema_uri: str) -> dict[str, Any]:
        uri = schema_uri.split("#", 1)[0]
        if uri in self.schema_cache:
            return self.schema_cache[uri]
        raise GetSchemaError(
            schema_uri,
            NotFoundError(
                f"schema {uri} is not available offline: add it under {self.schema_root} "
                "(path = URL without https://) or drop that extension"
            ),
        )


def validate_stac(
    obj: pystac.STACObject | dict[str, Any] | str | Path, schema_root: Path = BUNDLED_SCHEMAS
) -> list[str]:
    """Validate one STAC object (pystac object, dict or JSON file) offline; returns schemas used.

    Raises DataError naming the object and the first schema violation.
    """
    validator = OfflineSTACValidator(schema_root)
    href: str | None = None
    if isinstance(obj, str | Path):
        href = str(obj)
        d = json.loads(Path(obj).read_text())
    elif isinstance(obj, pystac.STACObject):
        href = obj.get_self_href()
        d = obj.to_dict(include_self_link=False, transform_hrefs=False)
    else:
        d = obj
    name = href or d.get("id", "<STAC object>")
    try:
        return pystac.validation.validate_dict(d, href=href, validator=validator)
    except pystac.STACValidationError as e:
        raise DataError(f"STAC validation failed for {name}: {e}") from e
    except GetSchemaError as e:
        raise DataError(f"cannot validate {name}: {e}") from e


def validate_catalog(catalog_json: str | Path, schema_root: Path = BUNDLED_SCHEMAS) -> int:
    """Validate a saved catalog/collection and every child and item below it; returns the count.

    Validates the JSON files as written (pystac would migrate extension versions on reading).
    """
    validator = OfflineSTACValidator(schema_root)
    count = 0
    for doc, path in _walk(Path(catalog_json)):  # each file read once
        try:
            pystac.validation.validate_dict(doc, href=path, validator=validator)
        except pystac.STACValidationError as e:
            raise DataError(f"STAC validation failed for {path}: {e}") from e
        except GetSchemaError as e:
            raise DataError(f"cannot validate {path}: {e}") from e
        count += 1
    return count


def walk_json(root: Path) -> list[Path]:
    """Local STAC JSON files reachable from `root` through `child` and `item` links."""
    return [Path(href) for _, href in _walk(root)]


def _walk(root: Path) -> Iterator[tuple[dict[str, Any], str]]:
    if not root.is_file():
        raise NotFoundError(f"STAC file {root} does not exist")
    yield from walk(str(root.resolve()))


def stac_validator_schema_map(schema_root: Path = BUNDLED_SCHEMAS) -> dict[str, str]:
    """A `schema_map` for stac-validator (`StacValidate(..., schema_map=...)`): keeps it offline.

    Maps STAC core 1.1.0 and GeoJSON schema URLs to the copies bundled in pystac, the JSON Schema
    draft-07 meta-schema to jsonschema-specifications' copy, and extension URLs to `schema_root`.
    """
    import jsonschema_specifications

    bundled = Path(pystac.validation.__file__).parent / "jsonschemas"
    out: dict[str, str] = {}
    core = bundled / "stac-spec" / "v1.1.0"
    for f in core.glob("*.json"):
        spec = f"{f.stem}-spec" if f.stem in ("item", "catalog", "collection") else "item-spec"
        out[f"https://schemas.stacspec.org/v1.1.0/{spec}/json-schema/{f.name}"] = str(f)
    for f in (bundled / "geojson").glob("*.json"):
        out[f"https://geojson.org/schema/{f.name}"] = str(f)
    meta = (
        Path(jsonschema_specifications.__file__).parent / "schemas" / "draft7" / "metaschema.json"
    )
    out["http://json-schema.org/draft-07/schema"] = str(meta)
    out["http://json-schema.org/draft-07/schema#"] = str(meta)
    for f in Path(schema_root).rglob("schema.json"):
        out[f"https://{f.relative_to(schema_root).as_posix()}"] = str(f)
    return out
