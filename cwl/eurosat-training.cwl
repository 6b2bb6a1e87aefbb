cwlVersion: v1.2

$namespaces:
  s: https://schema.org/
  cwltool: http://commonwl.org/cwltool#

s:name: eurosat-training
s:description: Trains a EuroSAT land-cover classifier from a STAC catalog of EuroSAT-MS chips, tracked in MLflow.
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
  - MLflow
  - STAC

$graph:
  - class: Workflow
    id: eurosat-training
    label: EuroSAT classifier training
    doc: >-
      Trains a land-cover CNN on the EuroSAT-MS chips of a staged-in STAC catalog, tracks the run in
      MLflow (parameters, per-epoch metrics, model, registry) and stages out a STAC catalog of the
      run: the model (MLM extension) with its weights, metrics and a confusion matrix.
    requirements:
      NetworkAccess:
        networkAccess: true
      InlineJavascriptRequirement: {}
      MultipleInputFeatureRequirement: {}
    inputs:
      stac:
        type: Directory
        label: Training data
        doc: A staged-in folder holding a static STAC catalog.json of EuroSAT-MS chips.
      bands:
        type: string[]?
        label: Bands
        doc: Sentinel-2 bands the model uses, by name (B01 … B12, B8A). Default the 12 without B10 (the bands L1C and L2A products both have).
      arch:
        type: string?
        label: Architecture
        doc: Network architecture (smallcnn or resnet18). Default smallcnn.
      epochs:
        type: int?
        label: Epochs
        doc: Maximum number of epochs (early stopping picks the count). Default 30.
      batch_size:
        type: int?
        label: Batch size
        doc: Chips per training step. Default 64.
      lr:
        type: double?
        label: Learning rate
        doc: Initial learning rate. Default 0.001.
      optimizer:
        type: string?
        label: Optimizer
        doc: adamw, adam or sgd. Default adamw.
      weight_decay:
        type: double?
        label: Weight decay
        doc: Weight decay. Default 0.0001.
      lr_schedule:
        type: string?
        label: LR schedule
        doc: cosine, step or constant. Default cosine.
      patience:
        type: int?
        label: Patience
        doc: Epochs without validation improvement before stopping (0 never stops early). Default 5.
      samples_per_class:
        type: int?
        label: Samples per class
        doc: Use at most this many chips per class. Default all.
      val_fraction:
        type: double?
        label: Validation fraction
        doc: Share of chips held out for validation. Default 0.2.
      test_fraction:
        type: double?
        label: Test fraction
        doc: Share of chips held out for the test metrics. Default 0.2.
      seed:
        type: int?
        label: Seed
        doc: Random seed (splits, initialisation, shuffling). Default 0.
      radiometric:
        type: double?
        label: Radiometric augmentation
        doc: Strength of random radiometric shifts of training chips (brightness, band gains, haze and its removal), 0 = off, 1 spans real products. Default 1.
      experiment:
        type: string?
        label: MLflow experiment
        doc: Experiment the run is logged to. Default eurosat.
      model_name:
        type: string?
        label: Registered model name
        doc: Name the model is registered under in the MLflow registry. Default eurosat-classifier.
      tracking_uri:
        type: string?
        label: MLflow tracking URI
        doc: >-
          MLflow tracking server or store (http://…, sqlite:///…). Default $MLFLOW_TRACKING_URI
          where the runner passes it on, else a sqlite store in the job's working folder.
      gpu:
        type: boolean?
        label: Use a GPU
        doc: >-
          true runs the step that carries the CUDA hint (cwltool --enable-ext, Toil and Calrissian
          then place it on an NVIDIA GPU); false runs on CPU. cwltool refuses a CUDA hint where no
          GPU is present, hence two steps.
    outputs:
      catalog:
        type: Directory
        label: Run catalog
        doc: STAC catalog of the training run (catalog.json, MLM item, model.pt, model.json, metrics).
        outputSource: [train/catalog, train_gpu/catalog]
        pickValue: the_only_non_null
    steps:
      train:
        label: Train on CPU
        doc: Runs `app-package train` on the staged-in catalog (when gpu is false).
        run: "#train"
        when: $(inputs.gpu !== true)
        in: &train_in
          gpu: gpu
          stac: stac
          bands: bands
          arch: arch
          epochs: epochs
          batch_size: batch_size
          lr: lr
          optimizer: optimizer
          weight_decay: weight_decay
          lr_schedule: lr_schedule
          patience: patience
          samples_per_class: samples_per_class
          val_fraction: val_fraction
          test_fraction: test_fraction
          seed: seed
          radiometric: radiometric
          experiment: experiment
          model_name: model_name
          tracking_uri: tracking_uri
        out: [catalog]
      train_gpu:
        label: Train on a GPU
        doc: The same `app-package train` call with a CUDA hint (when gpu is true).
        run: "#train-gpu"
        when: $(inputs.gpu === true)
        in: *train_in
        out: [catalog]

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
