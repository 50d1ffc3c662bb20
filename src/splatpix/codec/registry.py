"""The registry of ``.spix`` codec methods: the one place that maps a method's name or header id to its code.

A method is a module of :mod:`splatpix.codec.methods` that builds one :class:`CodecMethod` and passes it to
:func:`register` when imported; importing :mod:`splatpix.codec` imports them all. The container (:mod:`.bitstream`),
:func:`splatpix.codec.api.encode` / :func:`~splatpix.codec.api.decode`, the CLI and the RD harness know methods only
through :func:`get`, :func:`by_id` and :func:`names`. This module imports no method.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, fields
from typing import Any

from ..errors import SplatpixError

__all__ = ["CodecMethod", "Prepared", "by_id", "get", "ids", "names", "register"]


@dataclass
class Prepared:
    """What a method derives from the fitted model before QAT: ``make_state(g, qat_config, device)`` builds its
    QAT state; ``report`` and ``metadata`` are added to the encode report and to the file's metadata;
    ``qat_overrides``: :class:`~splatpix.codec.qat.QATConfig` fields this state fine-tunes with instead.

    ``alternatives``: when not empty, the encoder runs each (QAT and packing) and keeps the one with the smallest
    ``SSE + select_lambda * bits`` (the others' ``make_state`` is then unused)."""

    make_state: Callable[..., Any]
    report: dict[str, Any] = field(default_factory=dict)
    metadata: dict[str, Any] = field(default_factory=dict)
    qat_overrides: dict[str, Any] = field(default_factory=dict)
    alternatives: list[Prepared] = field(default_factory=list)
    select_lambda: float = 0.0


@dataclass(frozen=True)
class CodecMethod:
    """One codec method.

    * ``name``, ``method_id`` (the header byte, docs/format.md), ``summary`` (one line for help texts).
    * ``fit_defaults``: :class:`~splatpix.train.FitConfig` fields the method sets unless the caller's say otherwise.
    * ``vq_codebook``: codewords per colour VQ stage when :class:`~splatpix.codec.qat.QATConfig` leaves it unset.
    * ``options_type``: the dataclass of the method's own options (``None``: it has none).
    * ``prepare_entry``: ``"module:function"`` of ``prepare(g, image, qat_config, options) -> Prepared``, the QAT
      state factory for a fitted model ``g`` (torch); imported on the first :meth:`prepare`, so that the method's
      format module, all a decoder needs, imports no torch.
    * ``pack(quantized, *, fixed_length, metadata, options) -> bytes``; ``unpack(header, sections, source)``: the
      quantised model of a file's (untrusted) sections; ``info(quantized) -> dict``: its method-specific facts.
    * ``decode_bytes_per_gaussian``: an upper bound of the decoder's peak memory per Gaussian (unpack and
      dequantise), checked against the caller's budget before anything is allocated
      (:func:`splatpix.codec.api.unpack`).
    """

    name: str
    method_id: int
    summary: str
    fit_defaults: Mapping[str, Any]
    vq_codebook: int
    options_type: type | None
    prepare_entry: str
    pack: Callable[..., bytes]
    unpack: Callable[..., Any]
    info: Callable[[Any], dict[str, Any]]
    decode_bytes_per_gaussian: int

    def options(self, value: Any = None) -> Any:
        """The method's options from ``None`` (its defaults), an instance of ``options_type`` or a dict of its
        fields; a :class:`SplatpixError` for anything else, or for options given to a method without any."""
        if self.options_type is None:
            if value:
                raise SplatpixError(f"method {self.name!r} takes no options, got {value!r}")
            return None
        if value is None:
            return self.options_type()
        if isinstance(value, self.options_type):
            return value
        if isinstance(value, Mapping):
            known = {f.name for f in fields(self.options_type)}
            unknown = sorted(set(value) - known)
            if unknown:
                raise SplatpixError(f"method {self.name!r} has no option {unknown[0]!r}; its options: "
                                    f"{', '.join(sorted(known))}")
            return self.options_type(**value)
        raise SplatpixError(f"options of method {self.name!r} must be a {self.options_type.__name__} or a dict, "
                            f"got {type(value).__name__}")

    def prepare(self, g: Any, image: Any, qat_config: Any, options: Any) -> Prepared:
        """Plan the encode of a fitted model: the method's :attr:`prepare_entry`, imported now."""
        import importlib

        module, _, name = self.prepare_entry.partition(":")
        return getattr(importlib.import_module(module), name)(g, image, qat_config, options)

    def option_names(self) -> tuple[str, ...]:
        return tuple(f.name for f in fields(self.options_type)) if self.options_type is not None else ()


_BY_NAME: dict[str, CodecMethod] = {}
_BY_ID: dict[int, CodecMethod] = {}


def register(method: CodecMethod) -> CodecMethod:
    """Add ``method``; its name and id must be new."""
    if method.name in _BY_NAME or method.method_id in _BY_ID:
        raise ValueError(f"codec method {method.name!r} (id {method.method_id}) is already registered")
    if not 0 <= method.method_id <= 255:
        raise ValueError(f"method id {method.method_id} does not fit the header byte")
    _BY_NAME[method.name] = method
    _BY_ID[method.method_id] = method
    return method


def names() -> tuple[str, ...]:
    """The registered methods' names, in id order."""
    return tuple(m.name for _, m in sorted(_BY_ID.items()))


def ids() -> frozenset[int]:
    return frozenset(_BY_ID)


def get(name: str) -> CodecMethod:
    """The method called ``name``, or a :class:`SplatpixError` listing the known ones."""
    if name not in _BY_NAME:
        raise SplatpixError(f"unknown method {name!r}; use one of {', '.join(names())}")
    return _BY_NAME[name]


def by_id(method_id: int, source: str = "<bytes>") -> CodecMethod:
    """The method of a header's id, or a :class:`SplatpixError` saying the file needs a newer splatpix."""
    if method_id not in _BY_ID:
        raise SplatpixError(f"{source}: .spix method id {method_id} is unknown; it needs a newer splatpix")
    return _BY_ID[method_id]
