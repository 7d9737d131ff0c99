"""torch.compile support: no graph breaks in log_prob and sample for the vector flows."""
from __future__ import annotations

import copy
import shutil

import pytest
import torch

import flowforge
from flowforge.compile import compile as compile_flow
from flowforge.compile import uncompile
from flowforge.transforms import fused

dynamo = pytest.importorskip("torch._dynamo")

VECTOR_FLOWS = {
    "realnvp": lambda: flowforge.RealNVP(4, 2, (16, 16)),
    "realnvp_invertible": lambda: flowforge.RealNVP(4, 2, (16, 16), memory="invertible"),
    "realnvp_batchnorm_alternating": lambda: flowforge.RealNVP(4, 2, (16, 16), norm="batchnorm", mask="alternating"),
    "realnvp_context": lambda: flowforge.RealNVP(4, 2, (16, 16), context_features=3),
    "nice": lambda: flowforge.NICE(4, 2, (16, 16)),
    "glow": lambda: flowforge.Glow(4, 2, (16, 16)),
}


@pytest.mark.parametrize("training", [False, True])
@pytest.mark.parametrize("name", VECTOR_FLOWS)
def test_log_prob_and_sample_trace_without_graph_breaks(name: str, training: bool) -> None:
    flow = VECTOR_FLOWS[name]().train(training)
    context = torch.randn(8, 3) if flow.context_features else None
    dynamo.reset()
    log_prob = dynamo.explain(flow.log_prob)(torch.randn(8, 4), context)
    sample = dynamo.explain(flow.sample)(8, context=context)
    assert log_prob.graph_break_count == 0, log_prob.break_reasons
    assert sample.graph_break_count == 0, sample.break_reasons


@pytest.mark.parametrize("transform_only", [False, True])
def test_a_compiled_glow_sets_up_its_actnorms_on_the_first_training_batch(transform_only: bool) -> None:
    """The set-up branch is left out of compiled code (it broke Glow's graph 6 times); the call
    that needs it runs eagerly, whether through log_prob or the compiled transform itself."""
    torch.manual_seed(0)
    eager = flowforge.Glow(4, 2, (16, 16))
    compiled = compile_flow(copy.deepcopy(eager), backend="aot_eager")
    x = torch.randn(64, 4) * 3 + 1
    if transform_only:
        eager.transform(x), compiled.transform(x)
    else:
        eager.log_prob(x), compiled.log_prob(x)
    assert all(bool(m.is_initialized) for m in compiled.modules() if "is_initialized" in m._buffers)
    for (name, a), b in zip(eager.state_dict().items(), compiled.state_dict().values()):
        torch.testing.assert_close(b, a, msg=name)
    torch.testing.assert_close(compiled.log_prob(x), eager.log_prob(x))  # now the compiled code


@pytest.mark.parametrize("memory", ["standard", "invertible"])
def test_compiled_flow_matches_eager_values_and_gradients(memory: str) -> None:
    flow = flowforge.RealNVP(3, 2, (8, 8), memory=memory)
    reference = flowforge.RealNVP(3, 2, (8, 8))
    reference.load_state_dict(flow.state_dict())
    compiled = compile_flow(flow, backend="aot_eager")  # traces forward and backward, no C compiler needed
    assert compiled is flow and flow.state_dict().keys() == reference.state_dict().keys()
    x = torch.randn(16, 3)
    for f in (compiled, reference):
        f.log_prob(x).mean().backward()
    torch.testing.assert_close(compiled.log_prob(x), reference.log_prob(x))
    for a, b in zip(compiled.parameters(), reference.parameters()):
        torch.testing.assert_close(a.grad, b.grad)


@pytest.mark.skipif(shutil.which("gcc") is None and shutil.which("cc") is None, reason="inductor on CPU needs a C compiler")
def test_compiled_sample_runs_with_inductor() -> None:
    flow = flowforge.RealNVP(2, 1, (4, 4))
    sample = torch.compile(flow.sample)
    assert sample(5).shape == (5, 2)


def test_uncompile_runs_eagerly_again() -> None:
    from flowforge.compile import uncompile

    calls = []

    def counting_backend(graph, example_inputs):
        calls.append(1)
        return graph.forward

    flow = compile_flow(flowforge.RealNVP(2, layers=2, hidden=(8,)), backend=counting_backend)
    x = torch.randn(16, 2)
    compiled = flow.log_prob(x)
    assert calls
    before = len(calls)
    assert uncompile(flow) is flow
    torch.testing.assert_close(flow.log_prob(x), compiled)
    flow.log_prob(torch.randn(5, 2))  # a new shape would trace again if still compiled
    assert len(calls) == before  # eager: nothing traced any more
    assert uncompile(flowforge.RealNVP(2, layers=2, hidden=(8,))) is not None  # never compiled: a no-op


@pytest.mark.parametrize(("grad", "rows", "compiled_calls"), [(False, 700, 0), (False, 200, 1), (True, 700, 1)])
def test_no_grad_batches_above_one_block_run_the_eager_kernel(grad: bool, rows: int, compiled_calls: int, monkeypatch) -> None:
    """flowforge.compile leaves the blocked CPU kernel its no-grad batches (it beats the compiled
    code there), in log_prob (the compiled density) and in a call of the transform."""
    monkeypatch.setattr(fused, "BLOCK_BYTES", 256 * 16 * 4)  # 256-row blocks at H=16
    flow = compile_flow(flowforge.RealNVP(4, 2, (16, 16)), backend="eager")
    calls = []

    def counted(fn):
        return lambda *a, **k: calls.append(1) or fn(*a, **k)

    monkeypatch.setattr(flow, "_compiled_density", counted(flow._compiled_density))
    dispatch = flow.transform._compiled_call_impl
    monkeypatch.setattr(dispatch, "compiled", counted(dispatch.compiled))
    x = torch.randn(rows, 4)
    with torch.set_grad_enabled(grad):
        log_prob, z = flow.log_prob(x), flow.transform(x)[0]
    assert len(calls) == 2 * compiled_calls
    eager = uncompile(flow)
    torch.testing.assert_close(log_prob.detach(), eager.log_prob(x).detach())
    torch.testing.assert_close(z.detach(), eager.transform(x)[0].detach())


def test_copies_of_a_compiled_flow_run_eagerly() -> None:
    """torch drops a module's compiled call on copy and pickle; the compiled density goes with it."""
    flow = compile_flow(flowforge.RealNVP(4, 2, (16, 16)), backend="eager")
    assert flow._compiled_density is not None
    copied = copy.deepcopy(flow)
    with torch.no_grad():
        for p in copied.parameters():
            p.add_(0.5)
    x = torch.randn(8, 4)
    assert copied._compiled_density is None
    assert not torch.allclose(copied.log_prob(x), flow.log_prob(x))  # its own weights, not the original's


@pytest.mark.parametrize("activation", ["relu", "tanh"])
def test_the_mlp_compiles_to_the_same_function(activation: str) -> None:
    """What torch.compile traces (a product, then the bias subtracted negated) is the eager MLP."""
    from flowforge.nn.mlp import MLP, traced_layers

    net = MLP(3, 4, hidden=(5, 6), context_features=2, activation=activation, zero_init=False).double()
    x, context = torch.randn(7, 3, dtype=torch.float64), torch.randn(7, 2, dtype=torch.float64)
    torch.testing.assert_close(traced_layers(net.net, net.join(x, context)), net(x, context), rtol=1e-14, atol=1e-14)
    compiled = torch.compile(net, backend="aot_eager", fullgraph=True)
    torch.testing.assert_close(compiled(x, context), net(x, context), rtol=1e-14, atol=1e-14)


@pytest.mark.parametrize("cxx", ["/nonexistent/g++", None])
def test_compile_without_a_cxx_compiler_warns_and_runs_eagerly(cxx: str | None, monkeypatch) -> None:
    """Inductor's CPU code needs a C++ compiler; torch.compile is lazy, so its absence would only
    show at the first call inside training. A broken $CXX, or none on the PATH, falls back at once."""
    from torch._inductor import config
    from torch._inductor.cpp_builder import cpp_compiler_search

    from flowforge.train.placement import has_cxx_compiler, maybe_compile

    if cxx is None:
        monkeypatch.setenv("PATH", "/nonexistent")
    else:
        monkeypatch.setattr(config.cpp, "cxx", (None, cxx))  # what $CXX sets when torch starts
    cpp_compiler_search.cache_clear()
    try:
        assert not has_cxx_compiler()
    finally:
        cpp_compiler_search.cache_clear()
    flow = flowforge.RealNVP(2, 1, (4,))
    with pytest.warns(RuntimeWarning, match="needs a C\\+\\+ compiler"):
        assert maybe_compile(flow, True) is False
    assert flow._compiled_density is None


def test_more_flows_than_dynamos_cache_holds_all_compile(caplog) -> None:
    """Each compiled flow's log-density has a code object of its own: a sweep over ten shapes in one
    process compiles all ten (with one shared code object dynamo hit its recompile limit at the
    ninth, which then ran its log-density eagerly). The same for the transform's call (encode),
    which nn.Module.compile enters through Compose.forward, shared by every flow."""
    for i in range(10):
        flow = compile_flow(flowforge.RealNVP(2 + i, 1, (4,)), backend="eager", dynamic=False)
        with caplog.at_level("WARNING", logger="torch._dynamo"):
            flow.log_prob(torch.randn(8, 2 + i))
            flow.encode(torch.randn(8, 2 + i))
    assert not [r for r in caplog.records if "recompile_limit" in r.getMessage()]
