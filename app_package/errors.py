"""The package's exceptions: one base, a few specific kinds, and the exit status of each.

Every message names the bad value (file, URL, band, input) and says how to fix it, in the
words of the library and its process inputs; `field` names the input when there is one, so a
door (the CLI) can add its own name for it (`--tracking-uri`).
"""

from __future__ import annotations

# exit statuses of `app-package` (sysexits.h where it has a name for the case)
EX_OK = 0
EX_USAGE = 2  # a bad option or input value (argparse's own code)
EX_DATAERR = 65  # the input data exist but cannot be used, or are missing
EX_UNAVAILABLE = 69  # a service (MLflow, an OGC endpoint, a download server) failed or refused
EX_TEMPFAIL = 75  # a temporary failure: trying again later can succeed
EX_INTERRUPTED = 130  # Ctrl-C


class AppPackageError(Exception):
    """Base class for every error this package raises on purpose."""

    exit_code = EX_USAGE

    def __init__(self, message: str, *, field: str | None = None) -> None:
        super().__init__(message)
        self.field = field  # the input (TrainConfig field, process input) that is wrong


class InputError(AppPackageError, ValueError):
    """A user-supplied value (option, process input, path) is invalid."""


class DataError(AppPackageError):
    """Input data exists but cannot be used (corrupt file, wrong band count, empty catalog)."""

    exit_code = EX_DATAERR


class NotFoundError(AppPackageError, FileNotFoundError):
    """A file, URL, band, model or catalog that was named does not exist."""

    exit_code = EX_DATAERR


class DownloadError(AppPackageError):
    """A download failed (unreachable URL, HTTP error, checksum mismatch)."""

    exit_code = EX_UNAVAILABLE


class ModelError(AppPackageError):
    """A model cannot be loaded or does not fit the data (missing bands, bad metadata)."""

    exit_code = EX_DATAERR


class TrackingError(AppPackageError):
    """The MLflow tracking server or registry is unreachable or refused a request."""

    exit_code = EX_UNAVAILABLE


class ServiceError(AppPackageError):
    """A remote service (OGC API – Processes endpoint, STAC API, Redis, the job store) failed or
    refused a request.

    `retryable` is true when trying again later can succeed (unreachable, timeout, 5xx, 429).
    """

    def __init__(self, message: str, *, retryable: bool, field: str | None = None) -> None:
        super().__init__(message, field=field)
        self.retryable = retryable
        self.exit_code = EX_TEMPFAIL if retryable else EX_UNAVAILABLE
