# A platform's Directory stage-out, written the way the eoap application-package patterns write
# theirs: a folder holding a STAC catalog in, its s3:// URL out. Everything the catalog links is
# uploaded under s3://<bucket>/<sub_path>/ in the folder's own layout, asset hrefs rewritten to
# their s3:// URLs; links stay relative, so they resolve in the bucket.
# Test support, not one of our packages.
cwlVersion: v1.2

$namespaces:
  s: https://schema.org/

s:name: stage-out
s:description: Test platform's stage-out - a STAC catalog folder to an S3-protocol object store.
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
id: stage-out
label: STAC catalog stage-out to S3
doc: >-
  Uploads a STAC catalog, its children, items and assets to an S3-protocol object store and
  outputs the URL of the uploaded catalog.json.
requirements:
  SchemaDefRequirement:
    types:
      - $import: https://raw.githubusercontent.com/eoap/schemas/main/string_format.yaml
  DockerRequirement:
    dockerPull: ghcr.io/eoap/mastering-app-package/stage:1.0.0
  InlineJavascriptRequirement: {}
  NetworkAccess:
    networkAccess: true
  ResourceRequirement:
    coresMax: 1
    ramMax: 1024
  EnvVarRequirement:
    envDef:
      AWS_ACCESS_KEY_ID: $(inputs.aws_access_key_id)
      AWS_SECRET_ACCESS_KEY: $(inputs.aws_secret_access_key)
      AWS_DEFAULT_REGION: $(inputs.region_name)
      AWS_ENDPOINT_URL_S3: $(inputs.endpoint_url)
  InitialWorkDirRequirement:
    listing:
      - entryname: stage_out.py
        entry: |-
          """A folder holding catalog.json -> s3://<bucket>/<sub_path>/..., printing the URL.

          Walks the catalog's child and item links from catalog.json; uploads each asset and
          rewrites its href to its s3:// URL, then uploads the STAC file itself, otherwise as
          written (links stay relative, so they resolve in the bucket).
          """
          import json
          import os
          import sys

          import boto3

          folder, bucket, sub_path = os.path.abspath(sys.argv[1]), sys.argv[2], sys.argv[3]
          s3 = boto3.client("s3")  # credentials, region and endpoint from the environment


          def key(path: str) -> str:
              return f"{sub_path.strip('/')}/{os.path.relpath(path, folder)}"


          def stage(path: str) -> None:
              with open(path) as f:
                  doc = json.load(f)
              here = os.path.dirname(path)
              for link in doc.get("links", []):
                  if link["rel"] in ("child", "item"):
                      stage(os.path.normpath(os.path.join(here, link["href"])))
                  elif link["rel"] == "self":
                      link["href"] = f"s3://{bucket}/{key(path)}"
              for asset in doc.get("assets", {}).values():
                  if "://" in asset["href"]:
                      continue  # already remote
                  local = os.path.normpath(os.path.join(here, asset["href"]))
                  extra = {"ContentType": asset["type"]} if "type" in asset else {}
                  s3.upload_file(local, bucket, key(local), ExtraArgs=extra)
                  asset["href"] = f"s3://{bucket}/{key(local)}"
              media_type = "application/geo+json" if doc["type"] == "Feature" else "application/json"
              s3.put_object(Bucket=bucket, Key=key(path), ContentType=media_type,
                            Body=json.dumps(doc, indent=2).encode())


          catalog = os.path.join(folder, "catalog.json")
          stage(catalog)
          print(f"s3://{bucket}/{key(catalog)}", end="")
inputs:
  s3_bucket:
    type: string
    label: S3 bucket
    doc: The bucket the catalog is uploaded to.
  sub_path:
    type: string
    label: Key prefix
    doc: The key prefix under which the catalog is uploaded (e.g. the job id).
  aws_access_key_id:
    type: string
    label: Access key id
    doc: The object store's access key id.
  aws_secret_access_key:
    type: string
    label: Secret access key
    doc: The object store's secret access key.
  region_name:
    type: string
    label: Region
    doc: The object store's region.
  endpoint_url:
    type: string
    label: Endpoint URL
    doc: The object store's S3 endpoint (e.g. http://127.0.0.1:9000).
  stac_catalog:
    type: Directory
    label: STAC catalog folder
    doc: The folder holding the catalog.json to stage out.
outputs:
  s3_catalog_output:
    type: https://raw.githubusercontent.com/eoap/schemas/main/string_format.yaml#URI
    label: Staged-out catalog
    doc: The s3:// URL of the uploaded catalog.json.
    outputBinding:
      glob: catalog-uri.txt
      loadContents: true
      outputEval: '$({"value": self[0].contents})'
stdout: catalog-uri.txt
baseCommand: [python, stage_out.py]
arguments:
  - $(inputs.stac_catalog.path)
  - $(inputs.s3_bucket)
  - $(inputs.sub_path)
