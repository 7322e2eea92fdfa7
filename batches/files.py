"""Files on the storage: storing with rollback, hashing, scratch space, names.

Every file the server keeps (uploads, batch output, imports) goes through
`store`, so a failure never leaves bytes without a row or a row without bytes.
"""

import hashlib
import os
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import IO

from django.conf import settings
from django.core.files import File as DjangoFile
from django.core.files.storage import default_storage

from batches.models import File

_BLOCK = 1 << 20


def store(file: File, content: DjangoFile) -> File:
    """Save `content` as the unsaved `file`'s bytes, then its row.

    The row is written only after the content is in place, and the content is
    removed if the row cannot be written.
    """
    file.content.name = default_storage.save(f"files/{file.public_id}.jsonl", content)
    try:
        file.save()
    except BaseException:
        default_storage.delete(file.content.name)
        raise
    return file


def delete_stored(files: Iterable[File | None]) -> None:
    """Remove files `store` wrote, bytes and rows (undoing a step that failed)."""
    for file in files:
        if file is not None:
            file.content.delete(save=False)
            file.delete()


class MovableFile(DjangoFile):
    """A file on the storage's filesystem that FileSystemStorage may move into
    place instead of copying."""

    def __init__(self, handle: IO[bytes], path: Path):
        super().__init__(handle, name=path.name)
        self._path = path

    def temporary_file_path(self) -> str:
        return str(self._path)


def scratch_dir() -> Path:
    """Scratch space on the storage's filesystem, so storing is a rename, not a copy."""
    path = Path(settings.FILE_UPLOAD_TEMP_DIR)
    path.mkdir(parents=True, exist_ok=True)
    return path


def sha256_of(handle: IO[bytes]) -> str:
    """The hex SHA-256 of what is left to read in `handle`."""
    digest = hashlib.sha256()
    for block in _blocks(handle):
        digest.update(block)
    return digest.hexdigest()


def file_sha256(path: Path) -> str:
    with open(path, "rb") as handle:
        return sha256_of(handle)


def copy_hashing(source: Path, target: Path) -> str:
    """Copy `source` to `target`; return the hex SHA-256 of the bytes copied."""
    digest = hashlib.sha256()
    with open(source, "rb") as src, open(target, "wb") as dst:
        for block in _blocks(src):
            digest.update(block)
            dst.write(block)
    return digest.hexdigest()


def display_name(name: str | None) -> str:
    """A client's filename, for display only: no directories, bounded length."""
    base = os.path.basename((name or "").replace("\\", "/")).strip()
    base = "".join(ch for ch in base if ch.isprintable())
    return base[:255] or "upload.jsonl"


def _blocks(handle: IO[bytes]) -> Iterator[bytes]:
    while block := handle.read(_BLOCK):
        yield block
