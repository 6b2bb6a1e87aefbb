"""Band facts: names, EuroSAT's file order (B8A last), statistics by name, aliases."""

import pytest

from app_package.eo import bands
from app_package.errors import InputError


def test_eurosat_file_order_has_b8a_last_and_all_bands() -> None:
    assert bands.EUROSAT_FILE_BAND_ORDER[-1] == "B8A"
    assert sorted(bands.EUROSAT_FILE_BAND_ORDER) == sorted(bands.S2_BAND_NAMES)
    # Sentinel-2 products list B8A right after B08
    assert bands.S2_BAND_NAMES.index("B8A") == bands.S2_BAND_NAMES.index("B08") + 1


def test_statistics_are_keyed_by_name() -> None:
    assert bands.EUROSAT_MEAN["B8A"] == 2594.14
    assert bands.EUROSAT_STD["B10"] == 4.78
    assert set(bands.EUROSAT_MEAN) == set(bands.S2_BAND_NAMES) == set(bands.EUROSAT_STD)


@pytest.mark.parametrize(
    ("alias", "name"),
    [("nir08", "B8A"), ("b8a", "B8A"), ("nir", "B08"), ("B2", "B02"), ("rededge1", "B05"),
     ("swir22", "B12"), ("coastal", "B01"), ("cirrus", "B10")],
)  # fmt: skip
def test_aliases_resolve(alias: str, name: str) -> None:
    assert bands.band(alias).name == name


def test_parse_bands() -> None:
    assert bands.parse_bands(None) == bands.S2_BAND_NAMES
    assert bands.parse_bands("red, green,blue") == ("B04", "B03", "B02")
    with pytest.raises(InputError, match="unknown band 'B13'"):
        bands.parse_bands("B02,B13")
    with pytest.raises(InputError, match="given twice"):
        bands.parse_bands("B04,red")


def test_classes() -> None:
    assert len(bands.EUROSAT_CLASSES) == 10
    assert [c.value for c in bands.EUROSAT_CLASSES] == list(range(10))
    assert bands.EUROSAT_CLASSES[9].name == "SeaLake"
    assert all(len(c.rgb) == 3 for c in bands.EUROSAT_CLASSES)
