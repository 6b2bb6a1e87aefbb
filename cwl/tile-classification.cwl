cwlVersion: v1.2

$namespaces:
  s: https://schema.org/

s:name: tile-classification
s:description: Classifies Sentinel-2 L1C or L2A products chip by chip with a trained EuroSAT model into COG land-cover maps with STAC metadata.
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
  - EuroSAT
  - Sentinel-2
  - land cover
  - COG
  - STAC

$graph:
  - class: Workflow
    id: tile-classification
    label: Sentinel-2 tile classification
    doc: >-
      Classifies every 64x64 chip of each staged-in Sentinel-2 L1C or L2A product with a trained
      EuroSAT model (scatter over the products), cells under clouds or snow as class Cloud, and
      stages out one STAC catalog that links one catalog per product: class-map, confidence and
      cloud-mask COGs and a PNG preview.
    requirements:
      NetworkAccess:
        networkAccess: true
      ScatterFeatureRequirement: {}
    inputs:
      product:
        type: Directory[]
        label: Sentinel-2 products
        doc: >-
          Staged-in folders, each holding a STAC catalog.json of one Sentinel-2 L1C or L2A product
          (its item with the band assets the model needs, by name). One classification per product.
      model:
        type: string
        label: Model
        doc: >-
          The trained model: an MLflow URI (models:/name/<version>, models:/name@alias,
          runs:/<id>/model) resolved against tracking_uri, or a path the runner can read.
      stride:
        type: int?
        label: Stride
        doc: Pixels between chip origins (default 64, no overlap).
      batch_size:
        type: int?
        label: Batch size
        doc: Chips per inference batch. Default 256.
      runtime:
        type:
          - "null"
          - type: enum
            symbols: [torch, onnx]
        label: Runtime
        doc: >-
          What runs the network: torch (PyTorch, bf16 where the CPU has it) or onnx (the
          model's ONNX artifact on ONNX Runtime, CPU). Default torch.
      cloud_mask:
        type:
          - "null"
          - type: enum
            symbols: [auto, s2cloudless, scl, none]
        label: Cloud mask
        doc: >-
          Where clouds and snow are found: scl (an L2A product's scene classification), s2cloudless
          (L1C reflectance, needs B10), none, or auto (scl for L2A, s2cloudless for L1C with B10,
          else none). Masked cells get the class Cloud (10); the mask is an output asset. Default
          auto.
      cloud_threshold:
        type: float?
        label: Cloud threshold
        doc: A cell becomes Cloud when more than this share (0-1) of it is masked. Default 0.5.
      per_chip:
        type: boolean?
        label: Per chip
        doc: >-
          At strides below the chip size, classify every chip from scratch (exact, (64/stride)²
          times the work) instead of pooling convolutional features computed once per strip.
          Default false.
      tracking_uri:
        type: string?
        label: MLflow tracking URI
        doc: >-
          MLflow tracking server or store the model URI resolves against (passed as
          --tracking-uri). Default $MLFLOW_TRACKING_URI, else a sqlite store in the working folder.
    outputs:
      catalog:
        type: Directory
        label: Classification catalog
        doc: A parent STAC catalog linking one classification catalog per product.
        outputSource: merge/catalog
    steps:
      classify:
        label: Classify each product
        doc: Runs `app-package classify` once per product (scatter).
        run: "#classify"
        scatter: product
        in:
          product: product
          model: model
          stride: stride
          batch_size: batch_size
          runtime: runtime
          cloud_mask: cloud_mask
          cloud_threshold: cloud_threshold
          per_chip: per_chip
          tracking_uri: tracking_uri
        out: [catalog]
      merge:
        label: Link the product catalogs
        doc: One parent catalog for all products (app-package stac-merge).
        run: "#stac-merge"
        in:
          catalogs: classify/catalog
          catalog_id: {default: tile-classification}
        out: [catalog]

  - class: CommandLineTool
    id: classify
    label: app-package classify
    doc: Maps the inputs onto `app-package classify`; writes the product's catalog to ./catalog.
    requirements:
      DockerRequirement:
        dockerPull: ghcr.io/app-package/app-package:0.1.0
      ResourceRequirement:
        coresMin: 1
        coresMax: 4
        ramMin: 2048
        ramMax: 8192
      NetworkAccess:
        networkAccess: true
    baseCommand: [app-package, classify]
    arguments:
      - prefix: --output
        valueFrom: $(runtime.outdir)/catalog
    inputs:
      product:
        type: Directory
        label: Sentinel-2 product
        doc: Folder holding the product's STAC catalog.json.
        inputBinding: {position: 1}
      model: {type: string, label: Model, doc: MLflow model URI or model path., inputBinding: {prefix: --model}}
      stride: {type: "int?", label: Stride, doc: Pixels between chip origins., inputBinding: {prefix: --stride}}
      batch_size: {type: "int?", label: Batch size, doc: Chips per inference batch., inputBinding: {prefix: --batch-size}}
      runtime:
        type:
          - "null"
          - type: enum
            symbols: [torch, onnx]
        label: Runtime
        doc: torch or onnx.
        inputBinding: {prefix: --runtime}
      cloud_mask:
        type:
          - "null"
          - type: enum
            symbols: [auto, s2cloudless, scl, none]
        label: Cloud mask
        doc: auto, s2cloudless, scl or none.
        inputBinding: {prefix: --cloud-mask}
      cloud_threshold: {type: "float?", label: Cloud threshold, doc: Share of a cell masked above which it is Cloud., inputBinding: {prefix: --cloud-threshold}}
      per_chip: {type: "boolean?", label: Per chip, doc: Classify every chip from scratch at strides below the chip size., inputBinding: {prefix: --per-chip}}
      tracking_uri: {type: "string?", label: MLflow tracking URI, doc: MLflow store the model URI resolves against., inputBinding: {prefix: --tracking-uri}}
    outputs:
      catalog:
        type: Directory
        label: Classification catalog
        doc: The STAC catalog written by app-package classify.
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
