#!/usr/bin/env bash
# Builds STAC Browser (the version pinned in package.json / package-lock.json, from the npm
# registry) into browser/dist, served by `app-package serve` at /browser/ (`make browser`).
# STAC Browser 4 is published as source: its vue-cli build runs on a copy of the package with
# stac-browser.config.js as its configuration and the runtime config.js enabled in index.html
# (as upstream's Dockerfile does with DYNAMIC_CONFIG=true).
set -euo pipefail
cd "$(dirname "$0")"
npm ci --no-audit --no-fund
rm -rf .build dist
cp -R node_modules/@radiantearth/stac-browser .build
cp stac-browser.config.js .build/config.js
ln -s ../node_modules .build/node_modules  # its sources import ../node_modules/ol/ol.css
sed -i 's|<!-- <script defer="defer" src="/config.js"></script> -->|<script defer="defer" src="./config.js"></script>|' \
  .build/public/index.html
grep -q 'src="./config.js"' .build/public/index.html || {
  echo "build.sh: index.html of this STAC Browser version has no config.js line to enable" >&2
  exit 1
}
(cd .build && NODE_ENV=production ../node_modules/.bin/vue-cli-service build --dest ../dist)
rm -rf .build
