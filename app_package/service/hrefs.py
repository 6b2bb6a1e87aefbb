"""Which references (`href` inputs, subscriber callbacks) a job may touch: schemes, local data
folders and network ranges. A refused reference is a 400 naming the input and the rule."""

from __future__ import annotations

import ipaddress
import os
import socket
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

from app_package.service.ogc import invalid


@dataclass(frozen=True)
class HrefPolicy:
    """Which references a job may read: schemes, local folders and network ranges."""

    data_roots: tuple[Path, ...] = ()
    # what each data root is, for messages: a refusal names roots by role, never by path (the
    # server's folders are nobody else's business)
    root_roles: tuple[str, ...] = ()
    schemes: frozenset[str] = frozenset({"file", "http", "https", "models", "runs"})
    allow_private: bool = False
    allowed_hosts: frozenset[str] = field(default_factory=frozenset)

    @classmethod
    def from_config(
        cls, conf: Mapping[str, Any], defaults: Mapping[str, Path] | None = None
    ) -> HrefPolicy:
        """The policy of a manager configuration; without `data_roots` there, the `defaults`
        ({role: folder}) are the roots."""
        roots = conf.get("data_roots") or []
        if isinstance(roots, str):
            roots = [r for r in roots.split(os.pathsep) if r]
        if roots:
            roles = [f"data root {i + 1} of APP_PACKAGE_DATA_ROOTS" for i in range(len(roots))]
        else:
            roles, roots = list((defaults or {}).keys()), list((defaults or {}).values())
        schemes = conf.get("href_schemes") or ["file", "http", "https", "models", "runs"]
        if isinstance(schemes, str):
            schemes = [s.strip() for s in schemes.split(",") if s.strip()]
        hosts = conf.get("allowed_hosts") or []
        if isinstance(hosts, str):
            hosts = [h.strip() for h in hosts.split(",") if h.strip()]
        return cls(
            data_roots=tuple(Path(os.path.realpath(r)) for r in roots),
            root_roles=tuple(roles),
            schemes=frozenset(s.lower() for s in schemes),
            allow_private=bool(conf.get("allow_private_hosts", False)),
            allowed_hosts=frozenset(h.lower() for h in hosts),
        )

    def check(self, name: str, ref: str) -> str:
        """Return `ref` if a job may read it, else raise a 400 naming the input and the rule."""
        if "\x00" in ref:
            raise invalid(f"input '{name}': reference contains a NUL byte")
        parts = urlsplit(ref)
        scheme = parts.scheme.lower()
        if len(scheme) <= 1:  # a plain path (a one-letter "scheme" is a Windows drive)
            return self._check_path(name, ref, ref)
        if scheme not in self.schemes:
            raise invalid(
                f"input '{name}': scheme '{scheme}:' is not allowed in {ref!r}; "
                f"allowed schemes: {', '.join(sorted(self.schemes))}"
            )
        if scheme == "file":
            if parts.netloc not in ("", "localhost"):
                raise invalid(f"input '{name}': file URL {ref!r} names a remote host")
            self._check_path(name, unquote(parts.path), ref)
            return ref
        if scheme in ("http", "https"):
            self.check_url(name, ref)
        return ref

    def _check_path(self, name: str, path: str, ref: str) -> str:
        real = Path(os.path.realpath(path))
        for root in self.data_roots:
            if real == root or real.is_relative_to(root):
                return ref
        roles = list(self.root_roles) + [
            f"data root {i + 1}" for i in range(len(self.root_roles), len(self.data_roots))
        ]
        raise invalid(
            f"input '{name}': {ref!r} is outside the allowed data folders "
            f"({', '.join(roles) or 'none configured'}); put the data under one of them or add "
            "its folder to APP_PACKAGE_DATA_ROOTS"
        )

    def check_url(self, name: str, url: str) -> str:
        """An http(s) URL whose host does not resolve to a private range (unless allowed)."""
        parts = urlsplit(url)
        if parts.scheme.lower() not in ("http", "https"):
            raise invalid(f"{name}: {url!r} must be an http or https URL")
        host = (parts.hostname or "").lower()
        if not host:
            raise invalid(f"{name}: URL {url!r} has no host")
        if self.allow_private or host in self.allowed_hosts:
            return url
        try:
            infos = socket.getaddrinfo(host, parts.port or 80, proto=socket.IPPROTO_TCP)
        except (OSError, UnicodeError) as e:
            raise invalid(f"{name}: host {host!r} of {url!r} does not resolve ({e})") from e
        for info in infos:
            addr = ipaddress.ip_address(str(info[4][0]).split("%")[0])
            if not addr.is_global or addr.is_multicast:
                raise invalid(
                    f"{name}: {url!r} resolves to the non-public address {addr}; requests to "
                    "private, loopback and link-local ranges are refused (set "
                    "APP_PACKAGE_ALLOW_PRIVATE_HOSTS=true or APP_PACKAGE_ALLOWED_HOSTS to allow)"
                )
        return url
