"""The package's exceptions: one base, a few specific kinds.

Every message names the bad value (file, URL, band, option) and says how to fix it.
"""


class AppPackageError(Exception):
    """Base class for every error this package raises on purpose."""


class InputError(AppPackageError, ValueError):
    """A user-supplied value (option, process input, path) is invalid."""


class DataError(AppPackageError):
    """Input data exists but cannot be used (corrupt file, wrong band count, empty catalog)."""


class NotFoundError(AppPackageError, FileNotFoundError):
    """A file, URL, band, model or catalog that was named does not exist."""


class DownloadError(AppPackageError):
    """A download failed (unreachable URL, HTTP error, checksum mismatch)."""


class ModelError(AppPackageError):
    """A model cannot be loaded or does not fit the data (missing bands, bad metadata)."""


class TrackingError(AppPackageError):
    """The MLflow tracking server or registry is unreachable or refused a request."""


class ServiceError(AppPackageError):
    """A remote service (OGC API – Processes endpoint, STAC API) failed or refused a request.

    `retryable` is true when trying again later can succeed (unreachable, timeout, 5xx, 429).
    """

    def __init__(self, message: str, *, retryable: bool) -> None:
        super().__init__(message)
        self.retryable = retryable
