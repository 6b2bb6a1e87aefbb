"""`app-package evaluate`: the summary on stdout, the report, and exit statuses."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from app_package.cli import main
from app_package.errors import EX_DATAERR, EX_USAGE
from tests.evaluation import data


def run(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    with pytest.raises(SystemExit) as e:
        main(["evaluate", *argv])
    out, err = capsys.readouterr()
    return int(e.value.code or 0), out, err


def test_evaluate_prints_a_summary_and_writes_the_report(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    m = data.write_map(tmp_path / "map.tif")
    ref = data.write_reference(tmp_path / "ref.gpkg")
    mapping = tmp_path / "mapping.json"
    mapping.write_text(json.dumps({k: v.split("|") for k, v in data.MAPPING.items()}))
    out = tmp_path / "out"
    code, stdout, _ = run([str(m), str(ref), "--field", "landcover", "--mapping", str(mapping),
                           "--output", str(out)], capsys)  # fmt: skip
    assert code == 0
    assert "732 cells compared of 772 inside reference polygons" in stdout
    assert "20 in overlapping reference classes, 4 nodata, 16 of map value 10" in stdout
    assert "overall accuracy 86.9 %, kappa 0.756, balanced accuracy 71.1 %" in stdout
    assert "fields        380 cells   84.2 %  (AnnualCrop | PermanentCrop | Pasture)" in stdout
    assert stdout.splitlines()[-1] == str(out / "evaluation.json")
    assert json.loads((out / "evaluation.json").read_text())["overall_accuracy"] == pytest.approx(
        data.OVERALL
    )
    # the same with the mapping inline
    out2 = str(tmp_path / "out2")
    code, again, _ = run([str(m), str(ref), "--field", "landcover", "--mapping",
                          data.MAPPING_INLINE, "--output", out2], capsys)  # fmt: skip
    assert code == 0 and again.splitlines()[:-1] == stdout.splitlines()[:-1]


def test_exit_statuses_and_messages(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    m = data.write_map(tmp_path / "map.tif")
    ref = data.write_reference(tmp_path / "ref.geojson")
    out = str(tmp_path / "out")
    code, _, err = run([str(m), str(ref), "--field", "kind", "--output", out], capsys)
    assert code == EX_USAGE
    assert "has no field 'kind': its fields are 'id', 'landcover' (option --field)" in err
    code, _, err = run([str(m), str(ref), "--field", "landcover", "--mapping", "forest=Wood",
                        "--output", out], capsys)  # fmt: skip
    assert code == EX_USAGE and "'Wood' is not a map class" in err and "(option --mapping)" in err
    code, _, err = run([str(m), str(ref), "--field", "landcover", "--output", out], capsys)
    assert code == EX_USAGE and "are not EuroSAT class names" in err
    far = data.write_reference(tmp_path / "far.geojson", offset=(0.0, 9000.0))
    code, _, err = run([str(m), str(far), "--field", "landcover", "--mapping",
                        data.MAPPING_INLINE, "--output", out], capsys)  # fmt: skip
    assert code == EX_DATAERR and "do not overlap" in err
    code, _, err = run([str(tmp_path / "none.tif"), str(ref), "--field", "landcover",
                        "--output", out], capsys)  # fmt: skip
    assert code == EX_DATAERR
    assert not (tmp_path / "out").exists()
    with pytest.raises(SystemExit) as e:  # argparse: a required option missing
        main(["evaluate", str(m), str(ref), "--output", out])
    assert e.value.code == EX_USAGE
