"""Kernel launches of the compiled training step: the torch.compile counterpart of :mod:`nasattn.bench.ops`.

An aten-op counter cannot see inside a compiled graph (under a dispatch mode the compiled model runs
eagerly), so the count is taken from what torch.compile builds for the model's forward and backward:
``torch.compile(model, backend=...)`` with a backend that hands each graph to Inductor's ``compile_fx``
and, for every forward and backward graph AOTAutograd passes on, counts

- ``graph_ops``: the aten nodes of the AOT-traced graph (before fusion), and
- ``launches``: the kernel calls in the code Inductor generated for it (fused C++/Triton kernels,
  extern kernels such as convolutions and matmuls, aten fallbacks): what the step launches per call.

Not public in torch 2.14, and used here: ``torch._inductor.compile_fx.compile_fx`` / ``compile_fx_inner``
(the ``inner_compile`` hook) and the generated module's ``source_code``; Inductor's FX-graph and
AOTAutograd caches are switched off for the count so that every graph is compiled and seen. Code
between graphs (graph breaks) runs eagerly and is not in ``launches``; ``graphs`` says how many there are.
The step estimate replaces the model's eager forward+backward ops in the eager step count by these launches.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any

import torch
import torch.nn.functional as F

from nasattn.bench.ops import OpCounter
from nasattn.models import build_model

if TYPE_CHECKING:
    from nasattn.data import ImageDataset
    from nasattn.spec import ArchSpec

# a kernel call in Inductor's generated ``call()``: ``bufN = extern_kernels.convolution(...)``,
# ``cpp_fused_relu_3(...)``, ``triton_poi_fused_0.run(...)``, ``torch.ops.aten.convolution_backward.default(...)``
_LAUNCH = re.compile(r"^\s*(?:\w+\s*=\s*)?(?:cpp_fused_\w+|triton_\w+\.run|extern_kernels\.\w+|"
                     r"torch\.ops\.\w+\.\w+(?:\.\w+)?|aten\.\w+(?:\.\w+)?)\(", re.M)


def launches_in(source: str) -> int:
    """Kernel calls in the ``call()`` function of Inductor's generated module ``source``."""
    start = source.find("def call(")
    if start < 0:
        return 0
    end = source.find("\ndef ", start + 1)
    return len(_LAUNCH.findall(source[start:end if end > 0 else len(source)]))


class CompileCounter:
    """A torch.compile backend (Inductor) that counts the graphs it compiles (see the module docstring)."""

    def __init__(self) -> None:
        self.graphs = 0
        self.graph_ops = 0
        self.launches = 0

    def _inner(self, gm: torch.fx.GraphModule, example_inputs: Any, **kwargs: Any) -> Any:
        from torch._inductor.compile_fx import compile_fx_inner  # no public hook into Inductor's output

        out = compile_fx_inner(gm, example_inputs, **kwargs)
        self.graphs += 1
        self.graph_ops += sum(1 for n in gm.graph.nodes
                              if n.op == "call_function" and isinstance(n.target, torch._ops.OpOverload))
        self.launches += launches_in(getattr(out, "source_code", "") or "")
        return out

    def __call__(self, gm: torch.fx.GraphModule, example_inputs: Any) -> Any:
        from torch._inductor.compile_fx import compile_fx  # no public hook into Inductor's output

        return compile_fx(gm, example_inputs, inner_compile=self._inner)


def _batch(data: ImageDataset, batch_size: int) -> tuple[torch.Tensor, torch.Tensor]:
    x = torch.as_tensor(data.images[:batch_size]).float().div_(255)
    return x, torch.as_tensor(data.labels[:batch_size], dtype=torch.int64)


def _forward_backward(model: Any, x: torch.Tensor, y: torch.Tensor) -> None:
    F.cross_entropy(model(x), y).backward()


def count_forward_backward(model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor) -> dict[str, int]:
    """One forward+backward of ``model`` on ``(x, y)``: eager aten ops, and the compiled graphs' count,
    aten nodes and kernel launches."""
    eager = OpCounter()
    with eager:
        _forward_backward(model, x, y)
    counter = CompileCounter()
    torch._dynamo.reset()
    with torch._inductor.config.patch(fx_graph_cache=False), torch._functorch.config.patch(enable_autograd_cache=False):
        _forward_backward(torch.compile(model, backend=counter), x, y)
    torch._dynamo.reset()
    return {"graphs": counter.graphs, "graph_ops": counter.graph_ops, "launches_forward_backward": counter.launches,
            "eager_ops_forward_backward": eager.total}


def compiled_ops_per_step(spec: ArchSpec, data: ImageDataset, batch_size: int,
                          eager_step: float | None = None) -> dict[str, Any]:
    """The model's forward+backward on one batch (float32, NCHW, training mode, CPU), eager vs compiled
    (:func:`count_forward_backward`); ``ops_per_step`` estimates the compiled training step from
    ``eager_step`` (the eager step's aten ops) when given."""
    torch.manual_seed(0)
    x, y = _batch(data, batch_size)
    counts = count_forward_backward(build_model(spec).train(), x, y)
    step = None if eager_step is None else eager_step - counts["eager_ops_forward_backward"] + counts["launches_forward_backward"]
    return {"mode": "compiled (inductor)", **counts, "ops_per_step": step, "batch_size": len(y), "dtype": "float32",
            "layout": "NCHW"}
