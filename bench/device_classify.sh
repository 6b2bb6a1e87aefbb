#!/usr/bin/env bash
# GPU figures of the classification benchmark, run on a lent GPU machine (see README, Benchmarks).
# That machine has Python 3.12 with torch but not the geospatial stack, so rasterio, rio-cogeo,
# pystac, pyproj, pydantic & co. travel as a tarball of this venv's site-packages:
#   mkdir -p .whl/site && for d in affine annotated_types morecantile pydantic pydantic_core pyproj \
#     pyproj.libs pystac rasterio rasterio.libs rio_cogeo typing_inspection; do
#     cp -r .venv/lib/python3.12/site-packages/$d .whl/site/; done
#   tar -cf - -C .whl/site . | xz -6 > .whl/site.tar.xz && rm -r .whl/site
# Then run this script there with OUT set; results land in $OUT/*.json.
set -euo pipefail
mkdir -p /tmp/site && tar -xJf .whl/site.tar.xz -C /tmp/site
# the project itself runs from the working tree; its version comes from pyproject.toml
VERSION="$(sed -n 's/^version = "\(.*\)"/\1/p' pyproject.toml)"
mkdir -p "/tmp/site/app_package-$VERSION.dist-info"
printf 'Metadata-Version: 2.1\nName: app-package\nVersion: %s\n' "$VERSION" \
  >"/tmp/site/app_package-$VERSION.dist-info/METADATA"
export PYTHONPATH="/tmp/site:$PWD" PYTHONUNBUFFERED=1
OUT="${OUT:-bench/results}"
THREADS="$(nproc)"
python3 -c "import rasterio, torch; print('rasterio', rasterio.__version__, 'GDAL', rasterio.__gdal_version__, 'torch', torch.__version__, torch.cuda.get_device_name(0), '$THREADS CPUs')"
# (a)-(d) and stride 16 with the default model; the bench tile is built from the bundled real
# L1C subset (the L2A product is not: its (m) is a CPU measurement)
python3 -m bench.classify_bench --device cuda --threads "$THREADS" --batch-size 1024 \
  --model-chips 65536 --tile-dir /tmp/bench-tile --skip-l2a --out "$OUT/classify_gpu_h100.json"
# (c) for ResNet-18 (anchor: 312,730 chips/s bf16 on one H100)
python3 -m bench.classify_bench --device cuda --threads "$THREADS" --batch-size 1024 \
  --model-chips 65536 --arch resnet18 --skip-classify --tile-dir /tmp/bench-tile \
  --out "$OUT/classify_gpu_h100_resnet18.json"
# the CUDA path gives the CPU path's classes: the bundled real subset, classified on both
for dev in cpu cuda; do
  rm -rf "/tmp/cls-$dev"
  python3 -c "from app_package.cli import main; main()" classify app_package/sample/s2-l1c/item.json \
    --model /tmp/bench-tile/model-smallcnn --output "/tmp/cls-$dev" --device "$dev" 2>/dev/null
done
python3 - "$OUT/classify_gpu_h100_agreement.json" <<'PY'
import json, sys, glob, numpy as np, rasterio
a, b = (rasterio.open(glob.glob(f"/tmp/cls-{d}/*/classification.tif")[0]).read(1) for d in ("cpu", "cuda"))
r = {"cells": int(a.size), "same_class_share": float((a == b).mean())}
print(r); open(sys.argv[1], "w").write(json.dumps(r, indent=2) + "\n")
PY
