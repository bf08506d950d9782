"""The progress hook every transfer takes, in the library and in the SDK."""

from __future__ import annotations

from collections.abc import Callable

ProgressCallback = Callable[[int], None]
"""Called with the number of bytes just transferred (each byte counted once)."""
