"""Animation writers: frames are streamed to a temporary file (or folder) that replaces the output at the end.

* a folder (a path ending in ``/``, or an existing directory): ``frame_00000.png``, ``frame_00001.png``, ... written
  into a temporary folder next to it; at the end it is renamed to the output (or, when the output folder already
  exists, its frames are moved in and stale ``frame_NNNNN.png`` files of a longer earlier run removed);
* ``.gif`` (Pillow): each frame is quantised to a 256-colour palette as it arrives (one byte per pixel kept until the
  end, which GIF writing needs); Pillow merges identical consecutive frames into one longer frame;
* ``.mp4`` (H.264, yuv420p, through ``imageio-ffmpeg``, an optional extra: ``pip install splatpix[video]``): frames
  are piped to ffmpeg as they arrive; odd sides are padded by repeating the last row / column (yuv420p needs even
  sides).

Nothing is left behind on failure: the temporary file or folder is removed and an existing output is untouched.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import tempfile
from abc import ABC, abstractmethod
from typing import Any

import numpy as np
import torch
from torch import Tensor

from ..errors import SplatpixError
from ..io import save_image
from ..io.files import atomic_write, output_mode

__all__ = ["FrameWriter", "GifWriter", "Mp4Writer", "PngDirWriter", "open_writer", "output_kind"]

_FRAME = re.compile(r"^frame_(\d{5,})\.png$")


def _to_uint8(frame: Tensor) -> np.ndarray:
    """``(C, H, W)`` in ``[0, 1]`` -> ``(H, W, C)`` uint8 (C = 1 or 3)."""
    if frame.dim() != 3 or frame.shape[0] not in (1, 3):
        raise SplatpixError(f"a frame must be (C, H, W) with C = 1 or 3, got {tuple(frame.shape)}")
    x = frame.detach().to("cpu", torch.float32)
    if not bool(torch.isfinite(x).all()):  # a broken model or render: never written as a plausible frame
        raise SplatpixError("a frame has non-finite pixels (NaN or infinite); the animation stops there")
    x = x.clamp(0, 1)
    return np.ascontiguousarray(torch.round(x * 255).to(torch.uint8).permute(1, 2, 0).numpy())


def output_kind(path: str | os.PathLike[str]) -> str:
    """``"dir"``, ``"gif"`` or ``"mp4"`` from the output path (:class:`SplatpixError` otherwise)."""
    name = os.fspath(path)
    if name.endswith(("/", os.sep)) or os.path.isdir(name):
        return "dir"
    ext = os.path.splitext(name)[1].lower()
    if ext in (".gif", ".mp4"):
        return ext[1:]
    shown = repr(ext) if ext else "(no extension)"
    raise SplatpixError(f"{name}: unsupported animation output {shown}; use .gif, .mp4 or a folder ending in /")


class FrameWriter(ABC):
    """Base class: ``write(frame)`` each ``(C, H, W)`` frame, then ``close()`` (or use it as a context manager,
    which calls ``abort()`` on an exception). All frames must have the same size."""

    def __init__(self, path: str | os.PathLike[str], fps: float) -> None:
        self.path = os.fspath(path)
        self.fps = float(fps)
        self.count = 0
        self.shape: tuple[int, ...] | None = None
        self.closed = False

    def _check(self, arr: np.ndarray) -> None:
        if self.shape is None:
            self.shape = arr.shape
        elif arr.shape != self.shape:
            raise SplatpixError(f"{self.path}: frame {self.count} has shape {arr.shape}, expected {self.shape}")

    def write(self, frame: Tensor) -> None:
        arr = _to_uint8(frame)
        self._check(arr)
        self._write(arr)
        self.count += 1

    @abstractmethod
    def _write(self, arr: np.ndarray) -> None:
        """Implemented by each subclass."""

    def close(self) -> None:
        if not self.closed:
            self.closed = True
            self._finish()

    def abort(self) -> None:
        if not self.closed:
            self.closed = True
            self._abort()

    @abstractmethod
    def _finish(self) -> None:
        """Implemented by each subclass."""

    @abstractmethod
    def _abort(self) -> None:
        """Implemented by each subclass."""

    def __enter__(self) -> FrameWriter:
        return self

    def __exit__(self, exc_type: Any, exc: Any, tb: Any) -> None:
        if exc_type is None:
            self.close()
        else:
            self.abort()


def _parent_dir(name: str) -> str:
    parent = os.path.dirname(os.path.abspath(name.rstrip("/" + os.sep) or name))
    if not os.path.isdir(parent):
        raise SplatpixError(f"{name}: cannot write (directory {parent} does not exist)")
    return parent


class PngDirWriter(FrameWriter):
    """PNG frames into a folder (module docstring)."""

    def __init__(self, path: str | os.PathLike[str], fps: float) -> None:
        super().__init__(path, fps)
        self.target = os.path.abspath(self.path.rstrip("/" + os.sep) or self.path)
        if os.path.exists(self.target) and not os.path.isdir(self.target):
            raise SplatpixError(f"{self.path}: exists and is not a directory")
        parent = _parent_dir(self.target)
        try:
            self.tmp = tempfile.mkdtemp(prefix=f".{os.path.basename(self.target)}.", suffix=".tmp", dir=parent)
            os.chmod(self.tmp, output_mode(self.target, directory=True))
        except OSError as e:
            raise SplatpixError(f"{self.path}: cannot write ({e.strerror or e})") from e

    def _write(self, arr: np.ndarray) -> None:
        img = torch.from_numpy(arr).permute(2, 0, 1).to(torch.float32) / 255.0
        save_image(img, os.path.join(self.tmp, f"frame_{self.count:05d}.png"))

    def _finish(self) -> None:
        try:
            if not os.path.exists(self.target):
                os.rename(self.tmp, self.target)
                return
            for name in sorted(os.listdir(self.tmp)):
                os.replace(os.path.join(self.tmp, name), os.path.join(self.target, name))
            for name in os.listdir(self.target):
                m = _FRAME.match(name)
                if m and int(m.group(1)) >= self.count:
                    os.unlink(os.path.join(self.target, name))
            os.rmdir(self.tmp)
        except OSError as e:
            self._abort()
            raise SplatpixError(f"{self.path}: cannot write ({e.strerror or e})") from e

    def _abort(self) -> None:
        shutil.rmtree(self.tmp, ignore_errors=True)


class GifWriter(FrameWriter):
    """An animated GIF (module docstring); loops forever, ``1000 / fps`` ms per frame (GIF has 10 ms steps)."""

    def __init__(self, path: str | os.PathLike[str], fps: float) -> None:
        super().__init__(path, fps)
        _parent_dir(self.path)
        self.frames: list[Any] = []

    def _write(self, arr: np.ndarray) -> None:
        from PIL import Image

        if arr.shape[2] == 1:
            self.frames.append(Image.fromarray(arr[:, :, 0], mode="L"))
        else:
            self.frames.append(Image.fromarray(arr, mode="RGB").quantize(colors=256))

    def _finish(self) -> None:
        if not self.frames:
            raise SplatpixError(f"{self.path}: no frames to write")
        first, rest = self.frames[0], self.frames[1:]
        with atomic_write(self.path, "wb") as f:
            first.save(f, format="GIF", save_all=True, append_images=rest, duration=round(1000 / self.fps), loop=0)
        self.frames = []

    def _abort(self) -> None:
        self.frames = []


class Mp4Writer(FrameWriter):
    """H.264 MP4 through imageio-ffmpeg (module docstring)."""

    def __init__(self, path: str | os.PathLike[str], fps: float, quality: float = 8.0) -> None:
        super().__init__(path, fps)
        try:
            import imageio_ffmpeg  # noqa: F401 - checked before any work is done
        except ImportError:
            raise SplatpixError(f"{self.path}: MP4 output needs imageio-ffmpeg; install it with "
                                "pip install splatpix[video] (or write a .gif or a folder of PNG frames)") from None
        parent = _parent_dir(self.path)
        self.target = os.path.realpath(self.path)
        if os.path.isdir(self.target):
            raise SplatpixError(f"{self.path}: is a directory")
        fd, self.tmp = tempfile.mkstemp(prefix=f".{os.path.basename(self.target)}.", suffix=".tmp.mp4", dir=parent)
        os.close(fd)
        self.quality = quality
        self.gen: Any = None

    def _write(self, arr: np.ndarray) -> None:
        import imageio_ffmpeg

        if arr.shape[2] == 1:
            arr = np.repeat(arr, 3, axis=2)
        h, w = arr.shape[:2]
        arr = np.pad(arr, ((0, h % 2), (0, w % 2), (0, 0)), mode="edge")
        if self.gen is None:
            self.gen = imageio_ffmpeg.write_frames(
                self.tmp, (arr.shape[1], arr.shape[0]), fps=self.fps, codec="libx264", pix_fmt_in="rgb24",
                pix_fmt_out="yuv420p", quality=self.quality, macro_block_size=1, ffmpeg_log_level="error")
            self.gen.send(None)
        self.gen.send(np.ascontiguousarray(arr).tobytes())

    def _finish(self) -> None:
        if self.gen is None:
            self._abort()
            raise SplatpixError(f"{self.path}: no frames to write")
        try:
            self.gen.close()
            with contextlib.suppress(OSError):
                os.chmod(self.tmp, output_mode(self.target))
            os.replace(self.tmp, self.target)
        except (OSError, RuntimeError) as e:
            self._abort()
            raise SplatpixError(f"{self.path}: cannot write the video ({str(e).strip().splitlines()[0]})") from e

    def _abort(self) -> None:
        if self.gen is not None:
            with contextlib.suppress(Exception):
                self.gen.close()
            self.gen = None
        with contextlib.suppress(OSError):
            os.unlink(self.tmp)


def open_writer(path: str | os.PathLike[str], fps: float) -> FrameWriter:
    """The writer for ``path``'s kind (:func:`output_kind`)."""
    kind = output_kind(path)
    if kind == "dir":
        return PngDirWriter(path, fps)
    if kind == "gif":
        return GifWriter(path, fps)
    return Mp4Writer(path, fps)
