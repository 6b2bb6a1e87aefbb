"""Radiometric shifts of Sentinel-2 chips: what season, atmosphere and processing level do to the
digital numbers, as a per-chip, per-band affine change `DN' = gain · DN + offset`.

Used twice: drawn at random during training (`radiometric_jitter`, the augmentation; its
`strength` is a training option) and as fixed, named scenarios applied to test chips
(`SHIFT_SCENARIOS`, what the benchmark measures robustness on). Pure numpy, no torch.

What the shifts stand for (DN scale of L1C before baseline 04.00, reflectance × 10,000):
- brightness: sun elevation and illumination scale every band together (a February scene at
  52° N has the sun ~25° high against ~60° in summer: about half the light);
- per-band gain: phenology and sensor/processing differences scale bands independently;
- path radiance (haze): an additive term, largest in the blue and falling with wavelength
  (Rayleigh and aerosol scattering, roughly λ^-2); the real February L1C subset's mean blue is
  ~1,480 DN where EuroSAT Forest chips average ~830 (../shared/docs/domain.md);
- L1C ↔ L2A: atmospheric correction removes that path radiance, so L2A (bottom of atmosphere)
  is darker in the visible than L1C (top of atmosphere): the same additive term, negative.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

import numpy as np

from app_package.eo.bands import BANDS_BY_NAME

# At strength 1 (the default): the spread of each random term.
BRIGHTNESS_LOG_SD: Final[float] = 0.3  # all bands × exp(N(0, 0.3)): ×0.55 … ×1.8 at 2 SD
# bands that change together with season and vegetation state: each group × exp(N(0, 0.15))
BAND_GROUPS: Final[tuple[tuple[str, ...], ...]] = (
    ("B01", "B02", "B03", "B04"),  # visible
    ("B05", "B06", "B07", "B08", "B8A", "B09"),  # red edge and near infrared
    ("B10", "B11", "B12"),  # short-wave infrared
)
GROUP_GAIN_LOG_SD: Final[tuple[float, ...]] = (0.15, 0.3, 0.15)  # visible, red edge/NIR, SWIR
BAND_GAIN_LOG_SD: Final[float] = 0.05  # each band × exp(N(0, 0.05)) on top
HAZE_BLUE_DN: Final[tuple[float, float]] = (-300.0, 900.0)  # additive DN at 0.49 µm, uniform
HAZE_EXPONENT: Final[float] = 2.0  # path radiance ∝ λ^-2, scaled to 1 at B02's wavelength
BLUE_UM: Final[float] = BANDS_BY_NAME["B02"].center_wavelength_um


def haze_shape(bands: tuple[str, ...]) -> np.ndarray:
    """Path radiance per band relative to blue (B02 = 1): (λ_blue / λ)^2."""
    wl = np.array([BANDS_BY_NAME[b].center_wavelength_um for b in bands], dtype=np.float64)
    return (BLUE_UM / wl) ** HAZE_EXPONENT


@dataclass(frozen=True)
class Shift:
    """A fixed radiometric change: every band × `brightness` × its own gain, then + `haze_blue_dn`
    · haze_shape (negative: path radiance removed, as by atmospheric correction)."""

    name: str
    description: str
    brightness: float = 1.0
    haze_blue_dn: float = 0.0
    band_gains: tuple[tuple[str, float], ...] = ()  # (band, gain) where it differs from 1

    def affine(self, bands: tuple[str, ...]) -> tuple[np.ndarray, np.ndarray]:
        """Per-band (gain, offset) of this shift for chips with `bands` in that order."""
        g = dict(self.band_gains)
        gain = np.array([self.brightness * g.get(b, 1.0) for b in bands], dtype=np.float32)
        offset = (self.haze_blue_dn * haze_shape(bands)).astype(np.float32)
        return gain, offset


# Realistic shifts for testing, none of them drawn from the training jitter: each is something a
# user's product does to a model trained on EuroSAT's (summer-heavy, top-of-atmosphere) chips.
SHIFT_SCENARIOS: Final[tuple[Shift, ...]] = (
    Shift("clean", "the chips as they are"),
    Shift("haze", "hazy top-of-atmosphere: path radiance +500 DN in the blue", haze_blue_dn=500.0),
    Shift(
        "winter",
        "low winter sun and haze (the bundled February L1C scene): light × 0.6, +600 DN blue",
        brightness=0.6,
        haze_blue_dn=600.0,
    ),
    Shift(
        "l2a",
        "L2A-like: atmospheric correction removes path radiance (-250 DN blue), NIR × 1.05",
        haze_blue_dn=-250.0,
        band_gains=(("B08", 1.05), ("B8A", 1.05), ("B07", 1.04)),
    ),
    Shift(
        "bright",
        "bright summer light, senescent vegetation: light × 1.3, red-edge/NIR × 0.85",
        brightness=1.3,
        band_gains=(("B06", 0.85), ("B07", 0.85), ("B08", 0.85), ("B8A", 0.85)),
    ),
)
SCENARIOS_BY_NAME: Final[dict[str, Shift]] = {s.name: s for s in SHIFT_SCENARIOS}


def radiometric_jitter(
    n: int, bands: tuple[str, ...], strength: float, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """Random per-chip, per-band (gain, offset), each of shape (n, len(bands)), float32.

    `strength` scales every term's spread (0: gain 1, offset 0). Applied as gain · DN + offset.
    """
    c = len(bands)
    if strength <= 0:
        return np.ones((n, c), np.float32), np.zeros((n, c), np.float32)
    group_of = np.array([next(i for i, g in enumerate(BAND_GROUPS) if b in g) for b in bands])
    group_gain = rng.normal(0.0, np.array(GROUP_GAIN_LOG_SD) * strength, (n, len(BAND_GROUPS)))
    log_gain = (
        rng.normal(0.0, BRIGHTNESS_LOG_SD * strength, (n, 1))
        + group_gain[:, group_of]
        + rng.normal(0.0, BAND_GAIN_LOG_SD * strength, (n, c))
    )
    lo, hi = HAZE_BLUE_DN
    haze = rng.uniform(lo * strength, hi * strength, (n, 1)) * haze_shape(bands)[None, :]
    return np.exp(log_gain).astype(np.float32), haze.astype(np.float32)


def apply_shift(x: np.ndarray, shift: Shift, bands: tuple[str, ...]) -> np.ndarray:
    """Chips `x` (N, C, H, W) in DN with `shift` applied, as uint16 (clipped to 1 … 65535: 0 is
    nodata)."""
    gain, offset = shift.affine(bands)
    y = x.astype(np.float32) * gain[None, :, None, None] + offset[None, :, None, None]
    return np.clip(np.rint(y), 1, 65535).astype(np.uint16)
