"""Optimisers used for fitting.

:class:`Adan` is the Adaptive Nesterov momentum optimiser of Xie et al. (2022), "Adan: Adaptive Nesterov
Momentum Algorithm for Faster Optimizing Deep Models", which GaussianImage trains with. :class:`Adam` is
``torch.optim.Adam``'s CPU update (single-tensor, no weight decay, no AMSGrad), bit for bit (tested).

Both derive from :class:`PlainOptimizer`: ``torch.optim.Optimizer`` whose parameter-group and gradient-reset methods
are not wrapped to disable TorchDynamo. torch's are, and the first call of such a wrapper imports ``torch._dynamo``:
2.5-6 s on this 2-core machine, once per process, which was the largest fixed cost of a ``splatpix fit`` or
``encode`` (docs/notes/2026-12-04-sga-scalar-colour.md). An LR scheduler accepts these optimisers as any other.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

import torch
from torch import Tensor


class PlainOptimizer(torch.optim.Optimizer):
    """``torch.optim.Optimizer`` with :meth:`add_param_group` and :meth:`zero_grad` as plain methods (see the module
    docs): the same checks and defaults for the groups; gradients set to ``None``."""

    def add_param_group(self, param_group: dict[str, Any]) -> None:
        if not isinstance(param_group, dict):
            raise TypeError(f"param_group must be a dict, but got {type(param_group)}")
        params = param_group["params"]
        param_group["params"] = [params] if isinstance(params, Tensor) else list(params)
        for p in param_group["params"]:
            if not isinstance(p, Tensor) or not p.is_leaf:
                raise ValueError("can only optimise leaf tensors")
        for name, default in self.defaults.items():
            param_group.setdefault(name, default)
        seen = {id(p) for g in self.param_groups for p in g["params"]}
        if any(id(p) in seen for p in param_group["params"]):
            raise ValueError("some parameters appear in more than one parameter group")
        self.param_groups.append(param_group)

    @staticmethod
    def _closure_loss(closure: Callable[[], float] | None) -> float | None:
        if closure is None:
            return None
        with torch.enable_grad():
            return closure()

    def _with_grads(self) -> Iterable[tuple[dict[str, Any], Tensor, Tensor, dict[str, Any]]]:
        """``(group, param, grad, state)`` of every parameter with a (dense) gradient."""
        for group in self.param_groups:
            for p in group["params"]:
                if p.grad is None:
                    continue
                if p.grad.is_sparse:
                    raise RuntimeError(f"{type(self).__name__} does not support sparse gradients")
                yield group, p, p.grad, self.state[p]

    def zero_grad(self, set_to_none: bool = True) -> None:
        for group in self.param_groups:
            for p in group["params"]:
                if p.grad is not None:
                    if set_to_none:
                        p.grad = None
                    else:
                        p.grad.detach_().zero_()


class Adam(PlainOptimizer):
    """Adam (Kingma & Ba 2015) as ``torch.optim.Adam(params, lr, betas, eps)`` computes it on the CPU, the same
    operations in the same order (``exp_avg.lerp_``, ``exp_avg_sq.mul_().addcmul_()``, float bias corrections,
    ``addcdiv_``), so its steps are bit-identical to torch's (tests)."""

    def __init__(self, params: Iterable[Tensor] | Iterable[dict[str, Any]], lr: float = 1e-3,
                 betas: tuple[float, float] = (0.9, 0.999), eps: float = 1e-8) -> None:
        if not lr >= 0.0:
            raise ValueError(f"invalid learning rate {lr}")
        if not eps >= 0.0:
            raise ValueError(f"invalid eps {eps}")
        if len(betas) != 2 or not all(0.0 <= b < 1.0 for b in betas):
            raise ValueError(f"invalid betas {betas}: need two values in [0, 1)")
        super().__init__(params, dict(lr=lr, betas=tuple(betas), eps=eps))

    @torch.no_grad()
    def step(self, closure: Callable[[], float] | None = None) -> float | None:  # type: ignore[override]
        loss = self._closure_loss(closure)
        for group, p, grad, state in self._with_grads():
            b1, b2 = group["betas"]
            if len(state) == 0:  # torch keeps the step as a float32 tensor: the same values as a float here
                state["step"] = torch.tensor(0.0)
                state["exp_avg"] = torch.zeros_like(p, memory_format=torch.preserve_format)
                state["exp_avg_sq"] = torch.zeros_like(p, memory_format=torch.preserve_format)
            state["step"] += 1
            k = float(state["step"].item())
            m, v = state["exp_avg"], state["exp_avg_sq"]
            m.lerp_(grad, 1 - b1)
            v.mul_(b2).addcmul_(grad, grad, value=1 - b2)
            bc1 = 1 - b1**k
            bc2 = 1 - b2**k
            denom = (v.sqrt() / bc2**0.5).add_(group["eps"])
            p.addcdiv_(m, denom, value=-(group["lr"] / bc1))
        return loss


class Adan(PlainOptimizer):
    r"""Adan: adaptive Nesterov momentum (Xie et al. 2022).

    With gradient ``g_k`` at step ``k = 1, 2, ...`` (``g_0 := g_1``, so the first difference is zero), the
    betas ``(b1, b2, b3)`` weighting the *old* value as in the reference implementation::

        d_k = g_k - g_{k-1}                                   # gradient difference
        m_k = b1 m_{k-1} + (1 - b1) g_k                       # first moment
        v_k = b2 v_{k-1} + (1 - b2) d_k                       # moment of the difference
        n_k = b3 n_{k-1} + (1 - b3) (g_k + b2 d_k)^2          # second moment of the Nesterov gradient
        u_k = (m_k / (1 - b1^k) + b2 v_k / (1 - b2^k)) / (sqrt(n_k / (1 - b3^k)) + eps)

    with ``m_0 = v_0 = n_0 = 0`` and the usual bias corrections ``1 - b^k``. The parameter update is
    proximal in the weight decay ``wd`` (the paper's form)::

        theta_k = (theta_{k-1} - lr u_k) / (1 + lr wd)

    or, with ``no_prox=True``, decoupled: ``theta_k = theta_{k-1} (1 - lr wd) - lr u_k``.

    Defaults: ``betas=(0.98, 0.92, 0.99)``, ``eps=1e-8``, ``weight_decay=0`` (the paper's and
    GaussianImage's).
    In the paper's notation the betas are ``1 - b`` (``0.02, 0.08, 0.01``).
    """

    def __init__(
        self,
        params: Iterable[Tensor] | Iterable[dict[str, Any]],
        lr: float = 1e-3,
        betas: tuple[float, float, float] = (0.98, 0.92, 0.99),
        eps: float = 1e-8,
        weight_decay: float = 0.0,
        no_prox: bool = False,
    ) -> None:
        if not lr >= 0.0:
            raise ValueError(f"invalid learning rate {lr}")
        if not eps >= 0.0:
            raise ValueError(f"invalid eps {eps}")
        if len(betas) != 3 or not all(0.0 <= b < 1.0 for b in betas):
            raise ValueError(f"invalid betas {betas}: need three values in [0, 1)")
        if not weight_decay >= 0.0:
            raise ValueError(f"invalid weight decay {weight_decay}")
        defaults = dict(lr=lr, betas=tuple(betas), eps=eps, weight_decay=weight_decay, no_prox=no_prox)
        super().__init__(params, defaults)

    @torch.no_grad()
    def step(self, closure: Callable[[], float] | None = None) -> float | None:  # type: ignore[override]
        loss = self._closure_loss(closure)
        for group, p, grad, state in self._with_grads():
            lr = group["lr"]
            b1, b2, b3 = group["betas"]
            eps = group["eps"]
            wd = group["weight_decay"]
            if len(state) == 0:
                state["step"] = 0
                state["exp_avg"] = torch.zeros_like(p, memory_format=torch.preserve_format)
                state["exp_avg_diff"] = torch.zeros_like(p, memory_format=torch.preserve_format)
                state["exp_avg_sq"] = torch.zeros_like(p, memory_format=torch.preserve_format)
                state["prev_grad"] = grad.clone()
            state["step"] += 1
            k = state["step"]
            m, v, n = state["exp_avg"], state["exp_avg_diff"], state["exp_avg_sq"]
            prev = state["prev_grad"]

            diff = grad - prev
            m.mul_(b1).add_(grad, alpha=1.0 - b1)
            v.mul_(b2).add_(diff, alpha=1.0 - b2)
            nesterov = grad + b2 * diff
            n.mul_(b3).addcmul_(nesterov, nesterov, value=1.0 - b3)

            bc1 = 1.0 - b1**k
            bc2 = 1.0 - b2**k
            bc3 = 1.0 - b3**k
            denom = (n / bc3).sqrt_().add_(eps)
            update = (m / bc1).add_(v, alpha=b2 / bc2).div_(denom)

            if group["no_prox"]:
                if wd != 0.0:
                    p.mul_(1.0 - lr * wd)
                p.add_(update, alpha=-lr)
            else:
                p.add_(update, alpha=-lr)
                if wd != 0.0:
                    p.div_(1.0 + lr * wd)
            prev.copy_(grad)
        return loss
