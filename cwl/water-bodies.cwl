cwlVersion: v1.2

$namespaces:
  s: https://schema.org/

s:name: water-bodies
s:description: Maps open water in Sentinel-2 products (NDWI of B03 and B08 thresholded by Otsu's method) into COG water masks with STAC metadata.
s:softwareVersion: "0.1.0"
s:dateCreated: "2026-11-26"
s:license:
  s:name: MIT License
  s:identifier: MIT
  s:url: https://spdx.org/licenses/MIT
s:operatingSystem: [Linux]
s:softwareRequirements:
  - https://www.commonwl.org/
  - https://github.com/app-package/app-package/blob/main/Dockerfile
# Release placeholders, stated once in cwl/release.yml (tests/cwl checks every package agrees):
# the repository, the publisher, the author and the image in each tool's DockerRequirement.
s:codeRepository: https://github.com/app-package/app-package
s:softwareHelp:
  s:name: app-package README (OGC API Processes, CWL packages, events)
  s:url: https://github.com/app-package/app-package#readme
s:publisher:
  '@type': s:Organization
  s:name: app-package developers
  s:email: maintainers@app-package.example
  s:identifier: https://github.com/app-package
s:author:
  - '@type': s:Person
    s:givenName: App
    s:familyName: Maintainers
    s:email: maintainers@app-package.example
    s:affiliation:
      '@type': s:Organization
      s:name: app-package developers
s:keywords:
  - Sentinel-2
  - water
  - NDWI
  - Otsu
  - COG
  - STAC

$graph:
  - class: Workflow
    id: water-bodies
    label: Sentinel-2 water bodies (NDWI + Otsu)
    doc: >-
      Detects open water in each staged-in Sentinel-2 product (scatter over the items): NDWI of
      bands B03 and B08 (radiometric offset removed for processing baseline 04.00 and later),
      thresholded per product by Otsu's method, optionally within an area of interest. Stages out
      one STAC catalog that links one catalog per product, each with a uint8 water-mask COG
      (0 not water, 1 water, 255 nodata).
    requirements:
      ScatterFeatureRequirement: {}
      SchemaDefRequirement: &bbox
        types:
          - name: "#BBox"
            type: record
            doc: An OGC bounding box (OGC API - Processes bbox.yaml), 2D.
            fields:
              bbox:
                type: double[]
                doc: minx, miny, maxx, maxy
                inputBinding: {prefix: --aoi=, separate: false, itemSeparator: ","}
              crs:
                type: string?
                doc: A CRS URI (default CRS84, longitude and latitude)
                inputBinding: {prefix: --aoi-crs}
    inputs:
      items:
        type: Directory[]
        label: Sentinel-2 items
        doc: >-
          Staged-in folders, each holding a STAC catalog.json of one Sentinel-2 L1C/L2A product
          (its item with the green B03 and near-infrared B08 assets, found by name). One water
          mask per product.
      aoi:
        type: BBox?
        label: Area of interest
        doc: >-
          An OGC bounding box (the ogc-bbox input of the server's process): bbox minx, miny,
          maxx, maxy in crs, a CRS URI (default CRS84, longitude and latitude). Only the pixels
          it touches are mapped and used for the threshold. Default the whole product.
    outputs:
      catalog:
        type: Directory
        label: Water-bodies catalog
        doc: A parent STAC catalog linking one water-bodies catalog per product.
        outputSource: merge/catalog
    steps:
      detect:
        label: Map the water of each product
        doc: Runs `app-package water-bodies` once per item (scatter).
        run: "#water-bodies-item"
        scatter: item
        in:
          item: items
          aoi: aoi
        out: [catalog]
      merge:
        label: Link the product catalogs
        doc: One parent catalog for all products (app-package stac-merge).
        run: "#stac-merge"
        in:
          catalogs: detect/catalog
          catalog_id: {default: water-bodies}
        out: [catalog]

  - class: CommandLineTool
    id: water-bodies-item
    label: app-package water-bodies
    doc: Maps the inputs onto `app-package water-bodies`; writes the product's catalog to ./catalog.
    requirements:
      DockerRequirement:
        dockerPull: ghcr.io/app-package/app-package:0.1.0
      SchemaDefRequirement: *bbox
      ResourceRequirement:
        coresMin: 1
        coresMax: 2
        ramMin: 1024
        ramMax: 4096
    baseCommand: [app-package, water-bodies]
    arguments:
      - prefix: --output
        valueFrom: $(runtime.outdir)/catalog
    inputs:
      item:
        type: Directory
        label: Sentinel-2 item
        doc: Folder holding the product's STAC catalog.json.
        inputBinding: {position: 1}
      aoi:
        type: BBox?
        label: Area of interest
        doc: The OGC bounding box, passed as --aoi=minx,miny,maxx,maxy and --aoi-crs CRS.
        inputBinding: {}
    outputs:
      catalog:
        type: Directory
        label: Water-bodies catalog
        doc: The STAC catalog written by app-package water-bodies.
        outputBinding: {glob: catalog}

  - class: CommandLineTool
    id: stac-merge
    label: app-package stac-merge
    doc: Copies the catalogs under one parent catalog that links them; writes it to ./catalog.
    requirements:
      DockerRequirement:
        dockerPull: ghcr.io/app-package/app-package:0.1.0
      ResourceRequirement:
        coresMin: 1
        coresMax: 1
        ramMin: 256
        ramMax: 1024
    baseCommand: [app-package, stac-merge]
    arguments:
      - position: 1
        valueFrom: $(runtime.outdir)/catalog
    inputs:
      catalogs:
        type: Directory[]
        label: Catalogs
        doc: Folders each holding a STAC catalog.json.
        inputBinding: {position: 2}
      catalog_id:
        type: string
        label: Parent catalog id
        doc: Id of the parent catalog.
        inputBinding: {prefix: --id, position: 0}
    outputs:
      catalog:
        type: Directory
        label: Merged catalog
        doc: The parent catalog with the copied catalogs under it.
        outputBinding: {glob: catalog}
