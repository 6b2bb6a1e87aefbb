# The image the CWL application packages name: ghcr.io/app-package/app-package:<package version>.
#   docker build -t ghcr.io/app-package/app-package:0.1.0 .
# One stage, Python 3.12 on Debian bookworm; Python dependencies pinned by constraints.txt.
# rasterio's wheel bundles GDAL with the JP2OpenJPEG driver; torch from PyPI runs on CPU and,
# where the runner passes a GPU through (CUDA hint), on CUDA.
FROM python:3.12-slim-bookworm

LABEL org.opencontainers.image.title="app-package" \
      org.opencontainers.image.description="EuroSAT land-cover classification of Sentinel-2: train, classify (CWL application packages, OGC API - Processes)" \
      org.opencontainers.image.version="0.1.0" \
      org.opencontainers.image.licenses="MIT" \
      org.opencontainers.image.source="https://github.com/app-package/app-package"

ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1

WORKDIR /opt/app-package
COPY pyproject.toml constraints.txt README.md pygeoapi-config.yml ./
COPY cwl ./cwl
COPY app_package ./app_package
COPY processes ./processes
# app_package/config links to pygeoapi-config.yml and cwl/: the wheel carries them as files
RUN pip install -c constraints.txt . \
    && useradd --create-home --uid 1000 app

# CWL runners call `app-package <command>` with their own user and working folder.
USER app
WORKDIR /home/app
CMD ["app-package", "--help"]
