"""Safe files: atomic writes, outputs that never overwrite an input, bounded reads of untrusted spec files.

Output files are written atomically (temporary file in the same directory, fsync, ``os.replace``), so an
interrupted or failed write never leaves a partial file behind. Every failure is a
:class:`~splatpix.errors.SplatpixError` whose one-line message names the file and the reason.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Iterator
from typing import IO, Any

from ..errors import SplatpixError

__all__ = ["atomic_write", "atomic_write_bytes", "check_not_input", "check_readable_file", "output_mode",
           "read_spec_file", "reason"]

PathLike = str | os.PathLike[str]


def check_readable_file(name: str, what: str) -> int:
    """Raise unless ``name`` is an existing, non-empty regular file; return its size in bytes.

    ``what`` names the expected content for the messages, with its article (``"an image"``)."""
    if not os.path.exists(name):
        raise SplatpixError(f"{name}: no such file")
    if os.path.isdir(name):
        raise SplatpixError(f"{name}: is a directory, not {what} file")
    if not os.path.isfile(name):
        raise SplatpixError(f"{name}: not a regular file")
    try:
        size = os.path.getsize(name)
    except OSError as e:
        raise SplatpixError(f"{name}: cannot read ({reason(e)})") from e
    if size == 0:
        raise SplatpixError(f"{name}: empty file, not {what} file")
    return size


def reason(e: BaseException) -> str:
    if isinstance(e, OSError) and e.strerror:
        return e.strerror
    text = str(e).strip().splitlines()
    return text[0] if text else type(e).__name__



def _umask() -> int:
    try:
        with open("/proc/self/status", encoding="ascii") as f:
            for line in f:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError, IndexError):
        pass
    old = os.umask(0o022)
    os.umask(old)
    return old


def output_mode(target: PathLike, *, directory: bool = False) -> int:
    """The permission bits an output at ``target`` gets: those of the file it replaces, else the user's default
    (``0o666`` for a file, ``0o777`` for a folder, less the umask), as any other tool's outputs. Temporary files
    and folders are created ``0o600``/``0o700``: set this on them before they are renamed into place."""
    try:
        return os.stat(target).st_mode & 0o7777
    except OSError:
        return (0o777 if directory else 0o666) & ~_umask()


@contextlib.contextmanager
def atomic_write(path: PathLike, mode: str = "wb") -> Iterator[IO[Any]]:
    """Context manager yielding a file object whose contents replace ``path`` only on success.

    Writes go to a temporary file in the destination directory; on normal exit it is flushed, fsynced and
    moved over ``path`` with :func:`os.replace` (atomic on POSIX and Windows). If the body raises, the
    temporary file is deleted and ``path`` is left untouched. ``mode`` is ``"wb"`` or ``"w"`` (UTF-8 text).
    A symlink at ``path`` is followed: its target is replaced.
    """
    name = os.fspath(path)
    if mode not in ("wb", "w"):
        raise ValueError(f"atomic_write mode must be 'wb' or 'w', got {mode!r}")
    target = os.path.realpath(name)
    if os.path.isdir(target):
        raise SplatpixError(f"{name}: is a directory")
    directory = os.path.dirname(target) or "."
    if not os.path.isdir(directory):
        raise SplatpixError(f"{name}: cannot write (directory {directory} does not exist)")
    try:
        fd, tmp = tempfile.mkstemp(prefix=f".{os.path.basename(target)}.", suffix=".tmp", dir=directory)
    except OSError as e:
        raise SplatpixError(f"{name}: cannot write ({reason(e)})") from e
    f: IO[Any] | None = None
    in_body = False
    try:
        with contextlib.suppress(OSError):
            os.chmod(tmp, output_mode(target))
        f = os.fdopen(fd, "wb") if mode == "wb" else os.fdopen(fd, "w", encoding="utf-8", newline="")
        with f:
            in_body = True
            yield f
            in_body = False
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, target)
    except BaseException as e:
        if f is None:
            with contextlib.suppress(OSError):
                os.close(fd)
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        if isinstance(e, OSError) and not in_body:
            raise SplatpixError(f"{name}: cannot write ({reason(e)})") from e
        raise
    _fsync_directory(directory)


def _fsync_directory(directory: str) -> None:
    if not hasattr(os, "O_DIRECTORY"):
        return
    try:
        fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def atomic_write_bytes(path: PathLike, data: bytes) -> None:
    """Atomically replace ``path`` with ``data`` (see :func:`atomic_write`)."""
    with atomic_write(path, "wb") as f:
        f.write(data)


def check_not_input(output_path: PathLike, *input_paths: PathLike | None) -> None:
    """Raise :class:`SplatpixError` if ``output_path`` is the same file as one of ``input_paths``.

    Symlinks, ``..`` components and hard links are seen through; ``None`` inputs are ignored.
    """
    out = os.fspath(output_path)
    out_real = os.path.realpath(out)
    for inp in input_paths:
        if inp is None:
            continue
        src = os.fspath(inp)
        same = os.path.realpath(src) == out_real
        if not same and os.path.exists(out) and os.path.exists(src):
            try:
                same = os.path.samefile(out, src)
            except OSError:
                same = False
        if same:
            raise SplatpixError(f"{out}: refusing to overwrite input file {src}; choose another output path")


def read_spec_file(path: PathLike, what: str) -> Any:
    """The data of a YAML or JSON file (``.json``: JSON; anything else: YAML with the safe loader), read as untrusted
    input: at most 16 MiB of UTF-8; any problem is a one-line :class:`SplatpixError` naming the file and ``what``
    (e.g. ``"spec"``, ``"scene"``)."""
    import json

    import yaml

    name = os.fspath(path)
    check_readable_file(name, f"a {what}")
    try:
        with open(name, encoding="utf-8") as f:
            text = f.read(1 << 24)
    except (OSError, UnicodeDecodeError) as e:
        raise SplatpixError(f"{name}: cannot read ({e})") from e
    try:
        return json.loads(text) if name.lower().endswith(".json") else yaml.safe_load(text)
    except (ValueError, yaml.YAMLError, RecursionError) as e:
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise SplatpixError(f"{name}: not a valid {what} file ({first})") from e
