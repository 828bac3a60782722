"""Hessian-vector products of a loss at fixed parameters (Pearlmutter 1994).

Products are exact, by automatic differentiation, and work for any task written with torch ops,
attention and LayerNorm included (BackPACK and Cockpit support only some layer types). Every
curvature estimate (`optiscope.probes.estimators`, `optiscope.probes.lanczos`) is built on the
`HessianOperator` here, which counts the products it spends per member.
"""

from __future__ import annotations

import time
from collections.abc import Mapping

import torch
from torch import Tensor
from torch.func import grad, jvp, vmap

from optiscope.core.members import check_ensemble_dims, member_numel
from optiscope.errors import OptiscopeError
from optiscope.probes.members import BatchLike, LossFn, Params, bind, over_members, split_batch


# -- Hessian-vector products ------------------------------------------------------------------
def hvp(loss_fn: LossFn, params: Params, vectors: Params) -> Params:
    """H v for one member: the directional derivative of the gradient along `vectors`.

    Forward-over-reverse (`jvp` of `grad`), functional like `torch.func`: `loss_fn(params) ->
    scalar`, `vectors` shaped like `params`; compose with `vmap` for many vectors or members.
    """
    _, out = jvp(grad(loss_fn), (params,), (vectors,))
    return out


class HessianOperator:
    """H v at fixed parameters, for one member or every member of an ensemble at once.

    Estimators need many products at the same point, and the fastest way to get them depends
    on the model, so both exact routes are kept (Pearlmutter 1994):

    - many vectors at once (``batched=True``: exact diagonal, Hutchinson, SLQ) use `hvp`
      (forward-over-reverse) vmapped over the vectors and the members: one vectorised pass;
    - one vector at a time (Lanczos) can reuse the gradient's graph, built once with the
      members' losses vmapped and summed (the ensemble Hessian is block-diagonal over members,
      so one backward pass serves them all): reverse-over-reverse. That is several times
      faster for MLPs but slower where double-backward formulas are long (LayerNorm, softmax),
      so the first single product times both routes and keeps the faster one.

    Vectors are dicts shaped like `params`; with ``batched=True`` they carry one more leading
    axis of independent vectors. `products` counts HVPs per member.
    """

    def __init__(
        self, loss_fn: LossFn, params: Params, *, batch: BatchLike = None, ensemble_dims: int = 0,
        chunk_size: int | None = None,
    ):
        check_ensemble_dims(ensemble_dims)
        self.loss_fn, self.batch, self.ensemble_dims = loss_fn, batch, ensemble_dims
        self.params = {k: v.detach() for k, v in params.items()}
        self.names = list(params)
        self.dim = member_numel(params, ensemble_dims)
        self.chunk_size = chunk_size
        self.products = 0
        self._single: str | None = None  # route for single products: "reverse" or "forward" once timed
        self._batched = "forward"  # route for batched products; "reverse" if forward mode fails
        self._graph: tuple[list[Tensor], list[int], list[Tensor]] | None = None

    def _total_loss(self, p: Params) -> Tensor:
        per_member, shared = split_batch(self.batch)
        if self.ensemble_dims == 0:
            merged = None if self.batch is None else {**per_member, **shared}
            return bind(self.loss_fn, merged)(p)

        def one(q: Params, pm: dict[str, Tensor]) -> Tensor:
            return bind(self.loss_fn, None if self.batch is None else {**pm, **shared})(q)

        return vmap(one)(p, per_member).sum()

    def __call__(self, vectors: Params, *, batched: bool = False) -> Params:
        self.products += next(iter(vectors.values())).shape[0] if batched else 1
        if batched:
            if self._batched != "reverse":
                try:
                    return vmap(self._forward_hvp, chunk_size=self.chunk_size)(vectors)
                except RuntimeError:  # forward-mode AD missing or broken for an op of the task
                    self._batched = "reverse"
            return self._reverse_batched(vectors)
        if self._single is None:
            return self._choose_single(vectors)
        if self._single == "reverse":
            return self._reverse_hvp(vectors)
        return self._forward_hvp(vectors)

    def block(self, name: str, vectors: Tensor) -> Tensor:
        """H_WW v for the diagonal block of tensor `name` only, many vectors at once.

        `vectors` is (K, *params[name].shape) (member axes included). Only `name` is
        differentiated, so the forward tangent starts at W and the backward pass skips the other
        tensors' weight gradients: cheaper than a full product for tensors near the output, and
        all an exact diagonal (or any entry of it) needs. Counts K products.
        """
        self.products += vectors.shape[0]
        if name not in self.params:
            raise OptiscopeError(f"{name!r} is not a parameter; available: {self.names}")

        def core(f: LossFn, p: Params, v: Tensor) -> Tensor:
            def of_w(w: Tensor) -> Tensor:
                return f({**p, name: w})

            return vmap(lambda u: jvp(grad(of_w), (p[name],), (u,))[1])(v)

        # Vectors come probe axis first; over_members wants the member axis first.
        e = self.ensemble_dims
        v = vectors.movedim(0, e) if e else vectors
        if self._batched != "reverse":
            try:
                out = over_members(
                    core, self.loss_fn, self.params, self.batch, (v,), ensemble_dims=e, chunk_size=self.chunk_size,
                )
                return out.movedim(e, 0) if e else out
            except RuntimeError:  # forward-mode AD missing for an op: full products, zeros elsewhere
                self._batched = "reverse"
        self.products -= vectors.shape[0]  # counted again by the full product
        k = vectors.shape[0]
        full = {n: (vectors if n == name else t.new_zeros(()).expand(k, *t.shape)) for n, t in self.params.items()}
        return self(full, batched=True)[name]

    def _choose_single(self, vectors: Params) -> Params:
        results: dict[str, Params] = {}
        times: dict[str, float] = {}
        for route, fn in (("forward", self._forward_hvp), ("reverse", self._reverse_hvp)):
            try:
                if route == "reverse":
                    fn(vectors)  # builds the graph (not timed: paid once)
                t0 = time.perf_counter()
                results[route] = fn(vectors)
                times[route] = time.perf_counter() - t0
            except RuntimeError:  # an op without forward-mode AD or double-backward
                pass
        if not results:
            raise OptiscopeError(
                "Hessian-vector products fail for this loss both forward-over-reverse and "
                "reverse-over-reverse (an op without second derivatives?)"
            )
        self._single = min(times, key=times.__getitem__)
        if self._single == "forward":
            self._graph = None  # free the graph
        return results[self._single]

    def _reverse_batched(self, vectors: Params) -> Params:
        try:
            return self._reverse_hvp(vectors, batched=True)
        except RuntimeError:  # no batching rule for an op of the backward: one at a time
            n = next(iter(vectors.values())).shape[0]
            outs = [self._reverse_hvp({k: v[j] for k, v in vectors.items()}) for j in range(n)]
            return {k: torch.stack([o[k] for o in outs]) for k in self.names}

    def _forward_hvp(self, vectors: Params) -> Params:
        return over_members(
            lambda f, p, vv: hvp(f, p, vv), self.loss_fn, self.params, self.batch, (vectors,),
            ensemble_dims=self.ensemble_dims,
        )

    def _reverse_hvp(self, vectors: Params, batched: bool = False) -> Params:
        if self._graph is None:
            leaves = [self.params[k].clone().requires_grad_(True) for k in self.names]
            with torch.enable_grad():
                total = self._total_loss(dict(zip(self.names, leaves, strict=True)))
                grads = torch.autograd.grad(total, leaves, create_graph=True, allow_unused=True)
            # Gradients that do not depend on the parameters (a linear term) contribute nothing.
            live = [i for i, g in enumerate(grads) if g is not None and g.requires_grad]
            self._graph = (leaves, live, [grads[i] for i in live])
        leaves, live, grads = self._graph
        out = {k: torch.zeros_like(vectors[k]) for k in self.names}
        if not grads:
            return out
        outs = torch.autograd.grad(
            grads, leaves, grad_outputs=[vectors[self.names[i]] for i in live],
            retain_graph=True, allow_unused=True, is_grads_batched=batched,
        )
        for k, g in zip(self.names, outs, strict=True):
            if g is not None:
                out[k] = g
        return out


def rademacher(
    params: Mapping[str, Tensor], samples: int, generator: torch.Generator | None, ensemble_dims: int = 0
) -> Params:
    """`samples` Rademacher (+-1) vectors per member: each tensor (samples, *params[k].shape).

    The probe axis comes first, then the member axis of an ensemble.
    """
    out = {}
    for k, t in params.items():
        z = torch.randint(0, 2, (samples, *t.shape), generator=generator, device="cpu")
        out[k] = (z * 2 - 1).to(device=t.device, dtype=t.dtype)
    return out


def check_positive(name: str, value: int) -> None:
    if not isinstance(value, int) or value < 1:
        raise OptiscopeError(f"{name} must be a positive integer, not {value!r}")
