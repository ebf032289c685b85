"""Keep every input's bytes exactly as received, content-addressed by sha256.

Nothing a user sends is ever lost: the original is written (atomically, compressed unless it
already is) before any parsing starts, so a failed input stays available for `--retry-failed`
and any stored report can be parsed again from its source.
"""

from __future__ import annotations

import gzip
import hashlib
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from ingest.sniff import SNIFF_BYTES, ContainerKind, sniff

_COPY_CHUNK = 1024 * 1024
_ALREADY_COMPRESSED = {ContainerKind.GZIP, ContainerKind.ZIP, ContainerKind.ZLIB}


@dataclass(frozen=True, slots=True)
class StoredOriginal:
    sha256: str
    size: int
    container: ContainerKind
    storage_path: str
    """Relative to the data directory; `.gz` when Rua compressed it, `.bin` when kept as is."""


class OriginalStore:
    def __init__(self, data_dir: Path) -> None:
        self.root = data_dir / "originals"
        self._tmp = data_dir / "tmp"
        self.data_dir = data_dir

    def keep(self, stream: BinaryIO, size_limit: int) -> StoredOriginal:
        """Copy a stream into the store, hashing it on the way; returns where it is kept.

        Raises `OverflowError` past `size_limit` bytes (the temporary copy is removed).
        """
        self._tmp.mkdir(parents=True, exist_ok=True)
        head = stream.read(SNIFF_BYTES)
        container = sniff(head)
        compress = container not in _ALREADY_COMPRESSED
        digest = hashlib.sha256()
        size = 0
        fd, tmp_name = tempfile.mkstemp(dir=self._tmp, suffix=".part")
        tmp_path = Path(tmp_name)
        try:
            with os.fdopen(fd, "wb") as raw_out:
                out: BinaryIO = (gzip.GzipFile(fileobj=raw_out, mode="wb", compresslevel=3, mtime=0)  # type: ignore[assignment]
                                 if compress else raw_out)
                chunk = head
                while chunk:
                    size += len(chunk)
                    if size > size_limit:
                        raise OverflowError(size_limit)
                    digest.update(chunk)
                    out.write(chunk)
                    chunk = stream.read(_COPY_CHUNK)
                if compress:
                    out.close()
                raw_out.flush()
                os.fsync(raw_out.fileno())
            sha = digest.hexdigest()
            relative = f"originals/{sha[:2]}/{sha}{'.gz' if compress else '.bin'}"
            final = self.data_dir / relative
            if final.exists():
                tmp_path.unlink()
            else:
                final.parent.mkdir(parents=True, exist_ok=True)
                os.replace(tmp_path, final)
        except BaseException:
            tmp_path.unlink(missing_ok=True)
            raise
        return StoredOriginal(sha, size, container, relative)

    def open(self, storage_path: str) -> BinaryIO:
        """The original bytes, exactly as they were received."""
        path = self.data_dir / storage_path
        if storage_path.endswith(".gz"):
            return gzip.open(path, "rb")  # type: ignore[return-value]
        return open(path, "rb")
