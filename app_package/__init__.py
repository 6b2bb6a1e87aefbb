"""EuroSAT land-cover classification of Sentinel-2 as OGC processes and CWL packages."""

from importlib.metadata import version

__version__ = version("app-package")
