"""L1C and L2A alike: the product level, L2A's BOA offset, its SCL layer, its missing B10."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from app_package.eo.bands import S2_BAND_NAMES
from app_package.eo.sentinel2 import L1C, L2A, level_of, open_product, parse_mtd
from app_package.errors import DataError
from tests.support.datagen import downsample_to_native, write_jp2, write_s2_item, write_safe
from tests.support.l2a import write_l2a_mtd


@pytest.mark.parametrize(
    ("texts", "level"),
    [
        (("S2MSI1C",), L1C),
        (("S2MSI2A",), L2A),
        (("L2A",), L2A),
        (("Level-1C",), L1C),
        (("Level-2A_User_Product",), L2A),
        (("sentinel-2-c1-l2a",), L2A),
        (("sentinel-2-l1c",), L1C),
        (("S2A_MSIL1C_20170216T102101_N0209_R065_T33UUU_20170216T102204",), L1C),
        (("S2B_T33UUU_20240216T101234_L2A",), L2A),  # earth-search c1 ids
        ((None, "L2", "sentinel-2-l2a"), L2A),  # the first text that names a level
        (("my-product", None), None),
    ],
)
def test_level_named_by_type_level_collection_or_id(texts: tuple, level: str | None) -> None:
    assert level_of(*texts) == level


def _l2a_item(path: Path, jp2: dict, **props: object) -> Path:
    """An item of the synthetic bands as an L2A product: no B10, an `SCL`/`scl` asset."""
    bands = {b: f for b, f in jp2.items() if b != "B10"}
    item_path = write_s2_item(path, bands, baseline="05.10", item_id="S2B_T33UUU_TEST")
    item = json.loads(item_path.read_text())
    item["assets"][str(props.pop("scl_key", "SCL"))] = {
        "href": str(jp2["B05"]), "type": "image/jp2", "roles": ["data"]
    }  # fmt: skip
    item["properties"].update(props)
    item_path.write_text(json.dumps(item))
    return item_path


@pytest.mark.parametrize("scl_key", ["SCL", "scl"])
def test_l2a_item_level_offset_and_scl(tmp_path: Path, s2_jp2: dict, scl_key: str) -> None:
    """Planetary Computer (`SCL`, offset from the baseline) and earth-search (`scl`) keys."""
    p = open_product(_l2a_item(tmp_path / "item.json", s2_jp2, scl_key=scl_key,
                               **{"s2:product_type": "S2MSI2A"}))  # fmt: skip
    assert p.level == L2A
    assert p.scl is not None and p.scl.asset_key == scl_key and p.scl.name == "SCL"
    assert "SCL" not in p.bands and "B10" not in p.bands
    assert {s.offset for s in p.bands.values()} == {-1000.0}  # baseline 05.10: BOA_ADD_OFFSET


def test_level_from_collection_id_or_scl_when_properties_are_silent(
    tmp_path: Path, s2_jp2: dict
) -> None:
    path = _l2a_item(tmp_path / "item.json", s2_jp2)
    assert open_product(path).level == L2A  # nothing names it: the SCL asset does
    item = json.loads(path.read_text())
    item["collection"] = "sentinel-2-l1c"
    del item["assets"]["SCL"]
    path.write_text(json.dumps(item))
    assert open_product(path).level == L1C
    l1c = write_s2_item(tmp_path / "l1c.json", s2_jp2)  # id S2A_MSIL1C_…
    p = open_product(l1c)
    assert p.level == L1C and p.scl is None


def test_earth_search_raster_offset_wins_over_the_baseline(tmp_path: Path, s2_jp2: dict) -> None:
    path = _l2a_item(tmp_path / "item.json", s2_jp2)
    item = json.loads(path.read_text())
    item["properties"]["s2:processing_baseline"] = "02.14"  # says: no offset
    for key, a in item["assets"].items():
        if key != "SCL":
            a["raster:bands"] = [{"scale": 0.0001, "offset": -0.1, "nodata": 0}]
    path.write_text(json.dumps(item))
    assert {s.offset for s in open_product(path).bands.values()} == {-1000.0}


def test_l2a_safe_boa_offsets_level_and_scl(tmp_path: Path, s2_bands10: dict) -> None:
    """MTD_MSIL2A.xml's BOA_ADD_OFFSET like L1C's RADIO_ADD_OFFSET; SCL at 20 m preferred."""
    meta = parse_mtd(write_l2a_mtd(tmp_path / "MTD_MSIL2A.xml"))
    assert meta.level == L2A and set(meta.offsets.values()) == {-1000.0}
    safe = tmp_path / "S2A_MSIL2A_20170216T102101_N0510_R065_T33UUU_TEST.SAFE"
    write_l2a_mtd(safe / "MTD_MSIL2A.xml")
    img = safe / "GRANULE" / "L2A_T33UUU_A008000_20170216T102101" / "IMG_DATA"
    for name in S2_BAND_NAMES:
        if name == "B10":
            continue
        res = 10 if name in ("B02", "B03", "B04", "B08") else 20 if name != "B01" else 60
        f = res // 10
        write_jp2(img / f"R{res}m" / f"T33UUU_20170216T102101_{name}_{res}m.jp2",
                  downsample_to_native(s2_bands10[name], f), float(res))  # fmt: skip
    for res in (20, 60):
        f = res // 10
        scl = (downsample_to_native(s2_bands10["B02"], f) % 12).astype("uint16")
        write_jp2(img / f"R{res}m" / f"T33UUU_20170216T102101_SCL_{res}m.jp2", scl, float(res))
    p = open_product(safe)
    assert p.level == L2A and p.processing_baseline == "05.10"
    assert p.scl is not None and p.scl.asset_key.endswith("_SCL_20m.jp2")
    assert "B10" not in p.bands and len(p.bands) == 12
    assert {s.offset for s in p.bands.values()} == {-1000.0}
    assert open_product(write_safe(tmp_path / "l1c", bands10={"B02": s2_bands10["B02"]})).level == (
        L1C
    )


def test_b10_missing_from_l2a_names_the_fix(tmp_path: Path, s2_jp2: dict) -> None:
    p = open_product(_l2a_item(tmp_path / "item.json", s2_jp2))
    with pytest.raises(DataError) as e:
        p.require(("B02", "B10"))
    msg = str(e.value)
    assert msg.startswith("band B10 missing from L2A product S2B_T33UUU_TEST")
    assert "L2A products have no B10" in msg
    assert "use a model trained without B10, e.g. the default model" in msg
    l1c = {b: f for b, f in s2_jp2.items() if b != "B10"}
    p = open_product(write_s2_item(tmp_path / "l1c.json", l1c))
    with pytest.raises(DataError, match="this product has no B10: use a model trained without"):
        p.require(("B10",))
    with pytest.raises(DataError) as e:
        open_product(write_s2_item(tmp_path / "x.json", {"B02": s2_jp2["B02"]})).require(("B03",))
    assert "model trained without" not in str(e.value)  # other bands: no B10 hint
