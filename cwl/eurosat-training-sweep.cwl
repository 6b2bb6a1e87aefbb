cwlVersion: v1.2

$namespaces:
  s: https://schema.org/
  cwltool: http://commonwl.org/cwltool#

s:name: eurosat-training-sweep
s:description: Trains one EuroSAT land-cover classifier per combination of learning rate, batch size and architecture (eurosat-training.cwl scattered), all tracked in one MLflow experiment.
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
  - training
  - hyperparameter sweep
  - MLflow
  - STAC

# The sweep workflow and its merge tool, then the `train` and `train-gpu` tools of eurosat-training.cwl
# copied verbatim: an ADES deploys one file with one Workflow (eoap-validator refuses references to
# other files and a second Workflow). tests/cwl/test_packages.py checks the copies are identical.
$graph:
  - class: Workflow
    id: eurosat-training-sweep
    label: EuroSAT hyperparameter sweep
    doc: >-
      Runs the training of eurosat-training.cwl once per combination of learning rate, batch size and architecture
      (scatter, flat_crossproduct), every run tracked in the same MLflow experiment, and stages out
      one STAC catalog linking the run catalogs.
    requirements:
      NetworkAccess:
        networkAccess: true
      ScatterFeatureRequirement: {}
      InlineJavascriptRequirement: {}
      MultipleInputFeatureRequirement: {}
    inputs:
      stac: {type: Directory, label: Training data, doc: A staged-in folder holding a static STAC catalog.json of EuroSAT-MS chips.}
      lr: {type: "double[]", label: Learning rates, doc: One run per value (crossed with the other lists).}
      batch_size: {type: "int[]", label: Batch sizes, doc: One run per value (crossed with the other lists).}
      arch: {type: "string[]", label: Architectures, doc: One run per value (smallcnn and/or resnet18).}
      epochs: {type: "int?", label: Epochs, doc: Maximum number of epochs of every run. Default 30.}
      samples_per_class: {type: "int?", label: Samples per class, doc: Use at most this many chips per class. Default all.}
      seed: {type: "int?", label: Seed, doc: Random seed of every run. Default 0.}
      experiment: {type: "string?", label: MLflow experiment, doc: Experiment all runs are logged to. Default eurosat.}
      model_name: {type: "string?", label: Registered model name, doc: Name the models are registered under. Default eurosat-classifier.}
      tracking_uri: {type: "string?", label: MLflow tracking URI, doc: MLflow store all runs are logged to.}
      gpu: {type: "boolean?", label: Use a GPU, doc: Run every training step on an NVIDIA GPU (CUDA hint).}
    outputs:
      catalog:
        type: Directory
        label: Sweep catalog
        doc: A parent STAC catalog linking one run catalog per hyperparameter combination.
        outputSource: merge/catalog
    steps:
      train:
        label: Train every combination on CPU
        doc: The `train` tool (as in eurosat-training.cwl) scattered over lr × batch_size × arch (when gpu is false).
        run: "#train"
        when: $(inputs.gpu !== true)
        scatter: [lr, batch_size, arch]
        scatterMethod: flat_crossproduct
        in: &sweep_in
          gpu: gpu
          stac: stac
          lr: lr
          batch_size: batch_size
          arch: arch
          epochs: epochs
          samples_per_class: samples_per_class
          seed: seed
          experiment: experiment
          model_name: model_name
          tracking_uri: tracking_uri
        out: [catalog]
      train_gpu:
        label: Train every combination on a GPU
        doc: The same scatter over the `train-gpu` tool (CUDA hint), when gpu is true.
        run: "#train-gpu"
        when: $(inputs.gpu === true)
        scatter: [lr, batch_size, arch]
        scatterMethod: flat_crossproduct
        in: *sweep_in
        out: [catalog]
      merge:
        label: Link the run catalogs
        doc: One parent catalog for all runs (app-package stac-merge).
        run: "#stac-merge"
        in:
          catalogs:
            source: [train/catalog, train_gpu/catalog]
            linkMerge: merge_flattened
            pickValue: all_non_null
          catalog_id: {default: eurosat-training-sweep}
        out: [catalog]

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

  - class: CommandLineTool
    id: train
    label: app-package train
    doc: Maps the workflow inputs onto `app-package train` options; writes the run catalog to ./catalog.
    requirements: &train_requirements
      DockerRequirement:
        dockerPull: ghcr.io/app-package/app-package:0.1.0
      ResourceRequirement:
        coresMin: 1
        coresMax: 4
        ramMin: 2048
        ramMax: 8192
      NetworkAccess:
        networkAccess: true
    baseCommand: &train_command [app-package, train]
    arguments: &train_arguments
      - prefix: --output
        valueFrom: $(runtime.outdir)/catalog
    inputs: &train_inputs
      stac:
        type: Directory
        label: Training data
        doc: Folder holding catalog.json.
        inputBinding: {prefix: --stac, valueFrom: $(self.path)/catalog.json}
      bands:
        type: string[]?
        label: Bands
        doc: Band names.
        inputBinding: {prefix: --bands, itemSeparator: ","}
      arch: {type: "string?", label: Architecture, doc: Network architecture., inputBinding: {prefix: --arch}}
      epochs: {type: "int?", label: Epochs, doc: Maximum epochs., inputBinding: {prefix: --epochs}}
      batch_size: {type: "int?", label: Batch size, doc: Chips per step., inputBinding: {prefix: --batch-size}}
      lr: {type: "double?", label: Learning rate, doc: Initial learning rate., inputBinding: {prefix: --lr}}
      optimizer: {type: "string?", label: Optimizer, doc: Optimizer., inputBinding: {prefix: --optimizer}}
      weight_decay: {type: "double?", label: Weight decay, doc: Weight decay., inputBinding: {prefix: --weight-decay}}
      lr_schedule: {type: "string?", label: LR schedule, doc: LR schedule., inputBinding: {prefix: --lr-schedule}}
      patience: {type: "int?", label: Patience, doc: Early-stopping patience., inputBinding: {prefix: --patience}}
      samples_per_class: {type: "int?", label: Samples per class, doc: Chips per class cap., inputBinding: {prefix: --samples-per-class}}
      val_fraction: {type: "double?", label: Validation fraction, doc: Validation share., inputBinding: {prefix: --val-fraction}}
      test_fraction: {type: "double?", label: Test fraction, doc: Test share., inputBinding: {prefix: --test-fraction}}
      seed: {type: "int?", label: Seed, doc: Random seed., inputBinding: {prefix: --seed}}
      radiometric: {type: "double?", label: Radiometric augmentation, doc: Radiometric shift strength (0 off)., inputBinding: {prefix: --radiometric}}
      experiment: {type: "string?", label: MLflow experiment, doc: Experiment name., inputBinding: {prefix: --experiment}}
      model_name: {type: "string?", label: Registered model name, doc: Registry name., inputBinding: {prefix: --model-name}}
      tracking_uri: {type: "string?", label: MLflow tracking URI, doc: MLflow store., inputBinding: {prefix: --tracking-uri}}
    outputs: &train_outputs
      catalog:
        type: Directory
        label: Run catalog
        doc: The STAC catalog written by app-package train.
        outputBinding: {glob: catalog}

  - class: CommandLineTool
    id: train-gpu
    label: app-package train (GPU)
    doc: The `train` tool with a CUDA hint, for the gpu=true step; everything else is shared.
    requirements: *train_requirements
    hints:
      cwltool:CUDARequirement:
        cudaVersionMin: "11.8"
        cudaComputeCapability: "7.0"
        cudaDeviceCountMin: 1
        cudaDeviceCountMax: 1
    baseCommand: *train_command
    arguments: *train_arguments
    inputs: *train_inputs
    outputs: *train_outputs
