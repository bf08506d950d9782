"""Human-readable sizes, as refstore 0.3.0 showed them."""


def format_size(size: float) -> str:
    """``1536`` -> ``"1.50 KB"`` (refstore 0.3.0's ``size_human``)."""
    for unit in ("B", "KB", "MB", "GB", "TB"):
        if size < 1024:
            return f"{size:.2f} {unit}"
        size /= 1024
    return f"{size:.2f} PB"
