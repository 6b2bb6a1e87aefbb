"""stac-check (STAC best practices) run offline: its schema validation against the schemas the
package ships, since stac-check's own would fetch every schema over the network."""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any

from app_package.stac.validation import stac_validator_schema_map
from tests.conftest import SCHEMAS


def stac_check_messages(ref: str | Path) -> dict[str, Any]:
    """stac-check's best-practice findings for a STAC file or URL (which must validate)."""
    with warnings.catch_warnings():
        # stac_validator 4.1 warns on import that it was renamed stac_valid (same module)
        warnings.filterwarnings(
            "ignore", message=".*stac_validator.*deprecated", category=DeprecationWarning
        )
        from stac_check.lint import Linter
        from stac_validator.validate import StacValidate

    schema_map = stac_validator_schema_map(SCHEMAS)

    class OfflineLinter(Linter):
        def validate_file(self, file: str | dict) -> dict[str, Any]:
            v = StacValidate(str(file), schema_map=schema_map)
            v.run()
            return dict(v.message[0])

    lint = OfflineLinter(str(ref))
    assert lint.valid_stac, lint.message
    return dict(lint.create_best_practices_dict())
