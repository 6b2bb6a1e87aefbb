# A platform's Directory stage-in, written the way the eoap application-package patterns write
# theirs (a small Python script in the tool's working folder): a STAC item (or catalog) URL in,
# a folder out holding catalog.json, the items and their downloaded assets. Test support, not one
# of our packages.
cwlVersion: v1.2

$namespaces:
  s: https://schema.org/

s:name: stage-in
s:description: Test platform's stage-in - a STAC item or catalog URL to a folder holding catalog.json.
s:softwareVersion: "0.1.0"
s:dateCreated: "2026-12-06"
s:license:
  s:name: MIT License
  s:identifier: MIT
  s:url: https://spdx.org/licenses/MIT
s:softwareHelp:
  s:name: app-package tests (tests/support/ades.py)
  s:url: https://github.com/app-package/app-package#readme
s:publisher:
  '@type': s:Organization
  s:name: app-package developers
  s:email: maintainers@app-package.example
s:author:
  - '@type': s:Person
    s:givenName: App
    s:familyName: Maintainers
    s:email: maintainers@app-package.example
    s:affiliation:
      '@type': s:Organization
      s:name: app-package developers

class: CommandLineTool
id: stage-in
label: STAC stage-in
doc: >-
  Downloads a STAC item, or a catalog with all its items, and the items' assets (stac-asset) into
  ./staged, a self-contained catalog with catalog.json at its root.
requirements:
  SchemaDefRequirement:
    types:
      - $import: https://raw.githubusercontent.com/eoap/schemas/main/string_format.yaml
  DockerRequirement:
    dockerPull: ghcr.io/eoap/mastering-app-package/stage:1.0.0
  NetworkAccess:
    networkAccess: true
  ResourceRequirement:
    coresMax: 1
    ramMax: 1024
  InitialWorkDirRequirement:
    listing:
      - entryname: stage_in.py
        entry: |-
          """A STAC URL -> ./staged/catalog.json and what it links, with every item's assets.

          An item is staged under a new catalog; a catalog or collection is staged as it is,
          with all its items. The layout is pystac's (one folder per child and per item), the
          assets are downloaded by stac-asset next to their item, and all hrefs are relative.
          """
          import asyncio
          import os
          import sys

          import pystac
          import stac_asset


          async def stage(url: str, folder: str) -> None:
              stac = pystac.read_file(url)
              if isinstance(stac, pystac.Item):
                  catalog = pystac.Catalog(id="staged", description=f"{stac.id}, staged in")
                  catalog.add_item(stac)
              else:
                  catalog = stac
              catalog.make_all_asset_hrefs_absolute()
              catalog.normalize_hrefs(folder)
              items = list(catalog.get_items(recursive=True))
              config = stac_asset.Config(fail_fast=True)
              copies = [item.clone() for item in items]
              for copy in copies:
                  copy.clear_links()  # stac-asset rewrites the links of what it downloads
              await asyncio.gather(*(
                  stac_asset.download_item(copy, os.path.dirname(item.get_self_href()),
                                           config=config)
                  for item, copy in zip(items, copies)
              ))
              for item, copy in zip(items, copies):
                  for key, asset in copy.assets.items():
                      item.assets[key].href = asset.href
              catalog.make_all_asset_hrefs_relative()
              catalog.save(catalog_type=pystac.CatalogType.SELF_CONTAINED)


          asyncio.run(stage(sys.argv[1], os.path.abspath("staged")))
inputs:
  reference:
    type: https://raw.githubusercontent.com/eoap/schemas/main/string_format.yaml#URI
    label: STAC URL
    doc: The STAC item, catalog or collection to stage in.
outputs:
  staged:
    type: Directory
    label: Staged-in folder
    doc: The folder holding catalog.json, what it links and every item's assets.
    outputBinding:
      glob: staged
baseCommand: [python, stage_in.py]
arguments:
  - $(inputs.reference.value)
