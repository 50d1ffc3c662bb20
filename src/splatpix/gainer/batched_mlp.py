"""The decoder MLP's training pass as batched matrix products in reused buffers (:class:`BatchedMLP`).

A full-image GaINeR step runs the MLP on every pixel (393 216 on a Kodak image): each hidden activation is a
``(P, 64)`` float32 array of 100 MB. Through ``nn.Sequential`` and autograd every step allocates those arrays
afresh (the allocator returns them to the system, so every step pays the page faults again) and runs the ReLUs and
their backward out of place. :class:`BatchedMLP` computes the same ``sigmoid(mlp(x))`` and its gradients with
``addmm``/``mm`` into buffers it keeps between steps, the ReLU and its backward in place. The reference is the
module itself (:func:`.mlp.decode`); the tests compare values and gradients.

The buffers hold one forward pass: call ``backward`` (through autograd) before the next forward of the same
:class:`BatchedMLP`. A stale backward raises.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor, nn

from ..errors import SplatpixError
from ..jit import njit, prange

__all__ = ["BatchedMLP", "linear_layers"]


def linear_layers(mlp: nn.Sequential) -> list[tuple[nn.Linear, bool]]:
    """``[(linear, relu_after), ...]`` of an MLP made of ``nn.Linear`` and ``nn.ReLU`` modules."""
    out: list[tuple[nn.Linear, bool]] = []
    for m in mlp:
        if isinstance(m, nn.Linear):
            out.append((m, False))
        elif isinstance(m, nn.ReLU) and out and not out[-1][1]:
            out[-1] = (out[-1][0], True)
        else:
            raise SplatpixError(f"a batched MLP takes Linear and ReLU modules, got {type(m).__name__}")
    if not out:
        raise SplatpixError("a batched MLP needs at least one Linear layer")
    return out


@njit(parallel=True)
def _bias_act(h, b, relu):
    """``h += b`` row-wise, then ReLU (``relu``), in place."""
    p_n, d_n = h.shape
    for p in prange(p_n):
        for d in range(d_n):
            v = h[p, d] + b[d]
            if relu and v < 0:
                v = np.float32(0.0)
            h[p, d] = v


@njit(parallel=True)
def _relu_backward(g, a):
    """``g = 0`` where the ReLU's output ``a`` is 0 (in place)."""
    p_n, d_n = g.shape
    for p in prange(p_n):
        for d in range(d_n):
            if a[p, d] <= 0:
                g[p, d] = np.float32(0.0)


class _Pass(torch.autograd.Function):
    @staticmethod
    def forward(ctx, runner: BatchedMLP, x: Tensor, *params: Tensor) -> Tensor:
        ctx.runner = runner
        out = runner.run_forward(x)
        ctx.generation = runner.generation
        return out

    @staticmethod
    def backward(ctx, grad: Tensor):
        runner: BatchedMLP = ctx.runner
        if ctx.generation != runner.generation:
            raise SplatpixError("a batched MLP's backward ran after a newer forward")
        gx, gparams = runner.run_backward(grad, ctx.needs_input_grad[1])
        return (None, gx, *gparams)


class BatchedMLP:
    """``sigmoid(mlp(x))`` for ``(P, D)`` float32 CPU inputs, differentiable w.r.t. ``x`` and the MLP's parameters
    (module docstring). ``mlp`` is an ``nn.Sequential`` of Linear and ReLU modules."""

    def __init__(self, mlp: nn.Sequential) -> None:
        self.layers = linear_layers(mlp)
        self.generation = 0
        self._acts: list[Tensor] = []  # the output of each layer (after its ReLU), the last after the sigmoid
        self._grads: list[Tensor] = []
        self._x: Tensor | None = None
        self._p = -1

    def params(self) -> list[Tensor]:
        return [t for lin, _ in self.layers for t in (lin.weight, lin.bias)]

    def __call__(self, x: Tensor) -> Tensor:
        if x.dim() != 2 or x.shape[1] != self.layers[0][0].in_features:
            raise SplatpixError(f"batched MLP input must be (P, {self.layers[0][0].in_features}), got "
                                f"{tuple(x.shape)}")
        return _Pass.apply(self, x, *self.params())

    def _buffers(self, p: int) -> None:
        if p == self._p:
            return
        self._acts = [torch.empty((p, lin.out_features), dtype=torch.float32) for lin, _ in self.layers]
        self._grads = [torch.empty((p, lin.out_features), dtype=torch.float32) for lin, _ in self.layers]
        self._gx = torch.empty((p, self.layers[0][0].in_features), dtype=torch.float32)
        self._p = p

    def run_forward(self, x: Tensor) -> Tensor:
        self.generation += 1
        x = x.detach().contiguous()
        self._buffers(x.shape[0])
        self._x = x
        h = x
        for (lin, relu), out in zip(self.layers, self._acts, strict=True):
            torch.mm(h, lin.weight.detach().T, out=out)
            _bias_act(out.numpy(), lin.bias.detach().numpy(), relu)
            h = out
        h.sigmoid_()
        return h.clone()  # the caller may keep the output past the next step

    def run_backward(self, grad: Tensor, need_x: bool) -> tuple[Tensor | None, list[Tensor]]:
        n = len(self.layers)
        y = self._acts[-1]
        g = self._grads[-1]
        torch.mul(y, 1.0 - y, out=g)  # the sigmoid's derivative
        g.mul_(grad)
        gparams: list[Tensor] = [torch.empty(0)] * (2 * n)
        for j in range(n - 1, -1, -1):
            lin, _ = self.layers[j]
            inp = self._x if j == 0 else self._acts[j - 1]
            gparams[2 * j] = g.T @ inp
            gparams[2 * j + 1] = g.sum(0)
            if j == 0:
                break
            gin = self._grads[j - 1]
            torch.mm(g, lin.weight.detach(), out=gin)
            if self.layers[j - 1][1]:  # ReLU: pass where the activation is positive
                _relu_backward(gin.numpy(), inp.numpy())
            g = gin
        gx = None
        if need_x:
            gx = torch.mm(g, self.layers[0][0].weight.detach(), out=self._gx).clone()
        return gx, gparams
