"""The ``refstore`` command: ``refstore serve`` runs the gateway; ``upload``,
``download``, ``ls``, ``rm``, ``info``, ``presign``, ``buckets``, ``mapping`` and
``status`` work through a gateway or straight on storage (``refstore --help``)."""

from .main import build_parser, main

__all__ = ["build_parser", "main"]
