"""Small models for tests: an untrained network saved as a model folder."""

from __future__ import annotations

from pathlib import Path


def random_model(folder: Path, bands: tuple[str, ...] | None = None) -> Path:
    """An untrained SmallCNN over `bands` (default: all 13, EuroSAT file order)."""
    import torch

    from app_package.eo.bands import EUROSAT_FILE_BAND_ORDER
    from app_package.model.networks import build_model, save_local
    from app_package.model.spec import ModelSpec

    torch.manual_seed(0)
    spec = ModelSpec.for_bands("smallcnn", bands or EUROSAT_FILE_BAND_ORDER)
    save_local(build_model(spec).eval(), spec, folder)
    return folder
