"""RefStore in one minute, on the embedded local backend (no server needed).

Run: python examples/quickstart.py
"""

from __future__ import annotations

import io
import tempfile

from refstore import ObjectNotFoundError, RefStore


def main() -> None:
    root = tempfile.mkdtemp(prefix="refstore-quickstart-")
    with RefStore({"local": {"root": root}, "default_bucket": "my-project"}) as store:
        store.init_buckets()

        uri = store.upload_file(b"Hello, RefStore!", "test.txt", "text/plain", path="tenant-a/documents")
        print("uploaded     ", uri)
        print("downloaded   ", store.download_file(uri).decode())
        print("size         ", store.get_file_info(uri)["size_human"])
        print("listed       ", [f["object_name"] for f in store.list_files(prefix="tenant-a/")])

        stream_uri = store.upload_file(io.BytesIO(b"x" * 3_000_000), "big.bin", path="tenant-a/blobs")
        with store.open(stream_uri, offset=1_000_000, length=10) as part:
            print("range read   ", part.read())

        store.delete_file(uri)
        try:
            store.download_file(uri)
        except ObjectNotFoundError as exc:
            print("after delete ", type(exc).__name__, "-", exc)
    print("data kept in ", root)


if __name__ == "__main__":
    main()
