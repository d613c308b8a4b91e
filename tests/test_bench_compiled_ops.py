"""Kernel launches of the compiled step (nasattn.bench.compiled_ops) beside the eager aten-op count."""

from __future__ import annotations

import json

import pytest
import torch
from torch import nn
from typer.testing import CliRunner

from nasattn.bench.compiled_ops import count_forward_backward, launches_in
from nasattn.cli.main import app

SOURCE = '''
def call(self, args):
    buf0 = empty_strided_cpu((8, 3, 3, 3), (27, 1, 9, 3), torch.float32)
    cpp_fused_add_copy__0(primals_4, buf0)
    buf3 = extern_kernels.convolution(buf1, buf0, primals_2, stride=(1, 1))
    assert_tensor_metadata(buf3, (4, 8), (2048, 1), torch.float32, 'torch.ops.aten.convolution.default')
    extern_kernels.mm(tangents_1, primals_16, out=buf0)
    buf8 = torch.ops.aten.convolution_backward.default(buf7, relu, primals_9, [8])
    triton_poi_fused_relu_1.run(buf2, 1024, stream=stream0)
    del buf7
    return (buf3, )

def benchmark_compiled_module(times=10, repeat=10):
    cpp_fused_add_copy__0(a, b)
'''


def test_launches_are_the_kernel_calls_of_the_generated_call_function():
    assert launches_in(SOURCE) == 5  # fused C++, 2 extern, 1 aten fallback, 1 Triton; not allocations or asserts
    assert launches_in("no generated module") == 0


def test_the_compiled_forward_backward_launches_fewer_kernels_than_eager_dispatches_ops():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU(), nn.Conv2d(8, 8, 3, padding=1),
                          nn.BatchNorm2d(8), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(8, 10)).train()
    x, y = torch.randn(4, 3, 16, 16), torch.randint(0, 10, (4,))
    counts = count_forward_backward(model, x, y)
    assert counts["graphs"] == 2  # one forward and one backward graph: no graph break
    assert counts["graph_ops"] > counts["eager_ops_forward_backward"] > 0  # decomposed aten nodes before fusion
    # batch norm + relu (and their backward) fuse: fewer launches than eager ops, but every conv/mm still launches
    assert 6 <= counts["launches_forward_backward"] < counts["eager_ops_forward_backward"] / 2
    assert all(p.grad is not None for p in model.parameters())  # the compiled step did run backward


@pytest.mark.slow
@pytest.mark.timeout(600)
def test_bench_records_and_prints_the_compiled_count_beside_the_eager_one(tmp_path):
    out = tmp_path / "bench.json"
    res = CliRunner().invoke(app, ["bench", "--preset", "baseline", "--data", "eurosat-mini", "--width-mult", "0.125",
                                   "--batch-size", "8", "--steps", "1", "--warmup", "0", "--workers", "0",
                                   "--threads", "2", "--count-compiled", "--json", str(out)])
    assert res.exit_code == 0, res.output
    rec = json.loads(out.read_text())
    eager, compiled = rec["ops_per_step"], rec["ops_per_step_compiled"]
    assert 0 < compiled["ops_per_step"] < eager["ops_per_step"]
    assert compiled["ops_per_step"] == (eager["ops_per_step"] - compiled["eager_ops_forward_backward"]
                                        + compiled["launches_forward_backward"])
    assert f"engine compiled: {compiled['ops_per_step']:.0f} per training step" in " ".join(res.output.split())
