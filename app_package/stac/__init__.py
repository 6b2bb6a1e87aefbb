"""STAC I/O: the one read/resolve/walk layer (`io`), merging catalogs (`merge`), offline validation
(`validation`)."""
