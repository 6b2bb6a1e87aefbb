"""Checks of settings records, each raising an InputError that names the field."""

from __future__ import annotations

from app_package.errors import InputError


def require_positive(owner: object, *names: str) -> None:
    """InputError naming the first of `names` (fields of the dataclass `owner`) that is ≤ 0."""
    for name in names:
        value = getattr(owner, name)
        if not value > 0:
            raise InputError(f"{name} must be > 0, not {value!r}", field=name)
