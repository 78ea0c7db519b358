"""RNN, GRU and LSTM: forward against ONNX Runtime (one-node models) and PyTorch, backward through time against
PyTorch autograd, and torch models with nn.LSTM / nn.GRU exported to ONNX, imported and run."""

from __future__ import annotations

import io
from typing import Any

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch
from onnx import TensorProto, helper

import aidge
import aidge.learning
import aidge.onnx
from gradient_support import assert_matches_torch, check_gradients

GATES = {"RNN": 1, "GRU": 3, "LSTM": 4}
INPUT_NAMES = {
    "RNN": ["X", "W", "R", "B", "sequence_lens", "initial_h"],
    "GRU": ["X", "W", "R", "B", "sequence_lens", "initial_h"],
    "LSTM": ["X", "W", "R", "B", "sequence_lens", "initial_h", "initial_c", "P"],
}
OUTPUT_NAMES = ["Y", "Y_h", "Y_c"]


def random_inputs(
    op: str,
    *,
    seq: int = 5,
    batch: int = 3,
    input_size: int = 4,
    hidden: int = 6,
    directions: int = 1,
    bias: bool = True,
    initial: bool = True,
    peepholes: bool = False,
    lengths: list[int] | None = None,
    seed: int = 0,
) -> list[np.ndarray | None]:
    """ONNX-ordered float32 inputs (layout 0), None where absent."""
    rng = np.random.default_rng(seed)
    g = GATES[op] * hidden

    def r(*shape: int, scale: float = 1.0) -> np.ndarray:
        return (rng.standard_normal(shape) * scale).astype(np.float32)

    values: list[np.ndarray | None] = [
        r(seq, batch, input_size),
        r(directions, g, input_size, scale=0.4),
        r(directions, g, hidden, scale=0.4),
        r(directions, 2 * g, scale=0.3) if bias else None,
        np.array(lengths, dtype=np.int32) if lengths is not None else None,
        r(directions, batch, hidden, scale=0.5) if initial else None,
    ]
    if op == "LSTM":
        values += [r(directions, batch, hidden, scale=0.5) if initial else None,
                   r(directions, 3 * hidden, scale=0.5) if peepholes else None]
    while values and values[-1] is None:
        values.pop()
    return values


def one_node_model(op: str, inputs: list[np.ndarray | None], outputs: list[str], opset: int = 14,
                   **attributes: Any) -> onnx.ModelProto:
    """A model of one recurrent node; present inputs are graph inputs, absent ones and unused outputs ''."""
    names = [n if x is not None else "" for n, x in zip(INPUT_NAMES[op], inputs)]
    graph_inputs = [
        helper.make_tensor_value_info(n, TensorProto.INT32 if x.dtype == np.int32 else TensorProto.FLOAT, x.shape)
        for n, x in zip(names, inputs) if x is not None
    ]
    graph_outputs = [helper.make_tensor_value_info(n, TensorProto.FLOAT, None) for n in outputs if n]
    node = helper.make_node(op, names, outputs, **attributes)
    graph = helper.make_graph([node], op.lower(), graph_inputs, graph_outputs)
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])


def run_onnxruntime(model: onnx.ModelProto, inputs: list[np.ndarray | None]) -> list[np.ndarray]:
    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    feeds = {i.name: x for i, x in zip(model.graph.input, [x for x in inputs if x is not None])}
    return session.run(None, feeds)


def run_aidge(model: onnx.ModelProto, inputs: list[np.ndarray | None]) -> list[np.ndarray]:
    graph = aidge.onnx.load(model)
    return [np.asarray(y) for y in graph.run(*[x for x in inputs if x is not None])]


def to_batch_first(op: str, inputs: list[np.ndarray | None]) -> list[np.ndarray | None]:
    """The same inputs for layout = 1: X [batch, seq, input], states [batch, directions, hidden]."""
    out = list(inputs)
    out[0] = np.ascontiguousarray(inputs[0].transpose(1, 0, 2))
    for i in (5, 6):
        if i < len(out) and out[i] is not None:
            out[i] = np.ascontiguousarray(out[i].transpose(1, 0, 2))
    return out


# ---------------------------------------------------------------------------------------------------------------
# Forward against ONNX Runtime.


@pytest.mark.parametrize("op", ["RNN", "GRU", "LSTM"])
@pytest.mark.parametrize("direction", ["forward", "reverse", "bidirectional"])
@pytest.mark.parametrize("optional", [False, True])
def test_forward_matches_onnxruntime(op: str, direction: str, optional: bool) -> None:
    dirs = 2 if direction == "bidirectional" else 1
    inputs = random_inputs(op, directions=dirs, bias=optional, initial=optional, seed=1)
    outputs = OUTPUT_NAMES[: 3 if op == "LSTM" else 2]
    model = one_node_model(op, inputs, outputs, hidden_size=6, direction=direction)
    for k, (ours, theirs) in enumerate(zip(run_aidge(model, inputs), run_onnxruntime(model, inputs))):
        assert_matches_torch(ours, theirs, f"{op} {direction} output {outputs[k]}")


@pytest.mark.parametrize("linear_before_reset", [0, 1])
@pytest.mark.parametrize("direction", ["forward", "bidirectional"])
def test_gru_linear_before_reset_matches_onnxruntime(linear_before_reset: int, direction: str) -> None:
    dirs = 2 if direction == "bidirectional" else 1
    inputs = random_inputs("GRU", directions=dirs, seed=2)
    model = one_node_model("GRU", inputs, ["Y", "Y_h"], hidden_size=6, direction=direction,
                           linear_before_reset=linear_before_reset)
    for ours, theirs in zip(run_aidge(model, inputs), run_onnxruntime(model, inputs)):
        assert_matches_torch(ours, theirs, f"GRU linear_before_reset={linear_before_reset}")


@pytest.mark.parametrize(
    "op, attributes, options",
    [
        ("LSTM", {}, {"peepholes": True}),
        ("LSTM", {"input_forget": 1}, {}),
        ("LSTM", {"clip": 0.8}, {"peepholes": True}),
        ("GRU", {"clip": 0.5, "linear_before_reset": 1}, {}),
        ("RNN", {"clip": 0.7}, {}),
        ("LSTM", {}, {"lengths": [5, 2, 4]}),
        ("GRU", {}, {"lengths": [1, 5, 3]}),
        ("RNN", {}, {"lengths": [3, 3, 5]}),
        ("RNN", {"activations": ["Relu"]}, {}),
        ("GRU", {"activations": ["HardSigmoid", "Softsign"], "activation_alpha": [0.3], "activation_beta": [0.4]}, {}),
        ("LSTM", {"activations": ["Sigmoid", "Tanh", "Softplus"]}, {}),
        ("RNN", {"activations": ["LeakyRelu", "Tanh"], "activation_alpha": [0.2]}, {"bidirectional": True}),
    ],
)
def test_options_match_onnxruntime(op: str, attributes: dict[str, Any], options: dict[str, Any]) -> None:
    bidirectional = options.pop("bidirectional", False)
    direction = "bidirectional" if bidirectional else "forward"
    inputs = random_inputs(op, directions=2 if bidirectional else 1, seed=3, **options)
    outputs = OUTPUT_NAMES[: 3 if op == "LSTM" else 2]
    model = one_node_model(op, inputs, outputs, hidden_size=6, direction=direction, **attributes)
    for k, (ours, theirs) in enumerate(zip(run_aidge(model, inputs), run_onnxruntime(model, inputs))):
        assert_matches_torch(ours, theirs, f"{op} {attributes} {options} output {outputs[k]}")


@pytest.mark.parametrize("op", ["RNN", "GRU", "LSTM"])
def test_batch_first_layout_matches_onnxruntime_on_transposed_data(op: str) -> None:
    # ONNX Runtime's CPU kernels refuse layout = 1: compare with layout 0 on transposed inputs.
    inputs = random_inputs(op, directions=2, seed=4)
    outputs = OUTPUT_NAMES[: 3 if op == "LSTM" else 2]
    reference = run_onnxruntime(one_node_model(op, inputs, outputs, hidden_size=6, direction="bidirectional"), inputs)
    batch_first = to_batch_first(op, inputs)
    ours = run_aidge(
        one_node_model(op, batch_first, outputs, hidden_size=6, direction="bidirectional", layout=1), batch_first)
    assert_matches_torch(ours[0], np.ascontiguousarray(reference[0].transpose(2, 0, 1, 3)), f"{op} layout 1 Y")
    for k in range(1, len(outputs)):
        assert_matches_torch(ours[k], np.ascontiguousarray(reference[k].transpose(1, 0, 2)), f"{op} layout 1 {outputs[k]}")


def test_unused_outputs_and_opset_7() -> None:
    # Only Y_h used ('' for Y), in an opset-7 model (no layout attribute).
    inputs = random_inputs("LSTM", seed=5)
    model = one_node_model("LSTM", inputs, ["", "Y_h"], opset=7, hidden_size=6)
    (ours,) = run_aidge(model, inputs)
    (theirs,) = run_onnxruntime(model, inputs)
    assert_matches_torch(ours, theirs, "LSTM Y_h alone")


def test_bad_sequence_lengths_are_errors() -> None:
    inputs = random_inputs("GRU", lengths=[5, 6, 1], seed=6)
    model = one_node_model("GRU", inputs, ["Y"], hidden_size=6)
    with pytest.raises(Exception, match=r"sequence_lens\[1\] = 6"):
        run_aidge(model, inputs)


# ---------------------------------------------------------------------------------------------------------------
# Against torch.nn.RNN / GRU / LSTM: forward, and gradients of inputs and weights.

# Torch's gate blocks in ONNX's order: LSTM torch (i, f, g, o) from ONNX (i, o, f, c); GRU torch (r, z, n) from
# ONNX (z, r, h).
TORCH_FROM_ONNX = {"RNN": [0], "GRU": [1, 0, 2], "LSTM": [0, 2, 3, 1]}


def torch_blocks(op: str, t: torch.Tensor, hidden: int) -> torch.Tensor:
    """Rows of one direction's W, R or bias half reordered from ONNX's gate order to torch's (differentiable)."""
    return torch.cat([t[k * hidden:(k + 1) * hidden] for k in TORCH_FROM_ONNX[op]], dim=0)


def torch_layer(op: str, input_size: int, hidden: int, directions: int, batch_first: bool, bias: bool,
                nonlinearity: str = "tanh") -> torch.nn.Module:
    kwargs: dict[str, Any] = dict(bidirectional=directions == 2, batch_first=batch_first, bias=bias)
    if op == "RNN":
        return torch.nn.RNN(input_size, hidden, nonlinearity=nonlinearity, **kwargs)
    return getattr(torch.nn, op)(input_size, hidden, **kwargs)


def torch_reference(op: str, hidden: int, directions: int, batch_first: bool, nonlinearity: str = "tanh"):
    """A function of the ONNX-format inputs (torch tensors) computing the ONNX outputs with torch's own layer."""

    def run(x, w, r, b=None, lengths=None, h0=None, c0=None):
        input_size = x.shape[-1]
        layer = torch_layer(op, input_size, hidden, directions, batch_first, b is not None, nonlinearity)
        g = GATES[op] * hidden
        params = {}
        for d in range(directions):
            suffix = "_reverse" if d == 1 else ""
            params[f"weight_ih_l0{suffix}"] = torch_blocks(op, w[d], hidden)
            params[f"weight_hh_l0{suffix}"] = torch_blocks(op, r[d], hidden)
            if b is not None:
                params[f"bias_ih_l0{suffix}"] = torch_blocks(op, b[d, :g], hidden)
                params[f"bias_hh_l0{suffix}"] = torch_blocks(op, b[d, g:], hidden)
        batch = x.shape[0] if batch_first else x.shape[1]

        def state(s):
            if s is None:
                return torch.zeros(directions, batch, hidden)
            return s.permute(1, 0, 2) if batch_first else s  # torch's states are always [directions, batch, H]

        initial = (state(h0), state(c0)) if op == "LSTM" else state(h0)
        y, final = torch.func.functional_call(layer, params, (x, initial))
        seq = x.shape[1] if batch_first else x.shape[0]
        if batch_first:
            y = y.reshape(batch, seq, directions, hidden)
        else:
            y = y.reshape(seq, batch, directions, hidden).permute(0, 2, 1, 3)
        finals = final if op == "LSTM" else (final,)
        finals = tuple(f.permute(1, 0, 2) if batch_first else f for f in finals)
        return (y, *finals)

    return run


@pytest.mark.parametrize("op", ["RNN", "GRU", "LSTM"])
@pytest.mark.parametrize("directions", [1, 2])
@pytest.mark.parametrize("batch_first", [False, True])
@pytest.mark.parametrize("optional", [False, True])
def test_forward_and_gradients_match_torch(op: str, directions: int, batch_first: bool, optional: bool) -> None:
    inputs = random_inputs(op, directions=directions, bias=optional, initial=optional, seed=7)
    if batch_first:
        inputs = to_batch_first(op, inputs)
    attributes: dict[str, Any] = dict(hidden_size=6, direction="bidirectional" if directions == 2 else "forward",
                                      layout=int(batch_first))
    if op == "GRU":
        attributes["linear_before_reset"] = 1  # torch's GRU
    grads = check_gradients(op, inputs, torch_reference(op, 6, directions, batch_first), **attributes)
    assert grads[0] is not None and grads[1] is not None and grads[2] is not None


def test_rnn_relu_matches_torch() -> None:
    inputs = random_inputs("RNN", directions=2, seed=8)
    check_gradients("RNN", inputs, torch_reference("RNN", 6, 2, False, "relu"), hidden_size=6,
                    direction="bidirectional", activations=["Relu", "Relu"])


@pytest.mark.parametrize("op", ["GRU", "LSTM"])
def test_larger_layer_matches_torch(op: str) -> None:
    # Sizes past the GEMM's small-matrix paths, several steps.
    inputs = random_inputs(op, seq=9, batch=5, input_size=24, hidden=40, directions=2, seed=9)
    attributes: dict[str, Any] = dict(hidden_size=40, direction="bidirectional")
    if op == "GRU":
        attributes["linear_before_reset"] = 1
    check_gradients(op, inputs, torch_reference(op, 40, 2, False), **attributes)


def test_gradients_with_float64() -> None:
    inputs = [None if x is None else x.astype(np.float64) if x.dtype == np.float32 else x
              for x in random_inputs("LSTM", directions=2, seed=10)]
    check_gradients("LSTM", inputs, torch_reference("LSTM", 6, 2, False), hidden_size=6, direction="bidirectional")


# ---------------------------------------------------------------------------------------------------------------
# Torch models exported to ONNX, imported and run.


class Tagger(torch.nn.Module):
    """Bidirectional batch-first LSTM, then a GRU over its outputs, then a linear layer on the last state."""

    def __init__(self) -> None:
        super().__init__()
        self.lstm = torch.nn.LSTM(8, 12, batch_first=True, bidirectional=True)
        self.gru = torch.nn.GRU(24, 10)
        self.rnn = torch.nn.RNN(10, 5, nonlinearity="relu")
        self.head = torch.nn.Linear(5, 3)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        y, (h, _) = self.lstm(x)
        z, _ = self.gru(y.transpose(0, 1))
        u, hu = self.rnn(z)
        return self.head(u), h


def export(model: torch.nn.Module, x: torch.Tensor, dynamo: bool) -> onnx.ModelProto:
    if dynamo:
        return torch.onnx.export(model, (x,), dynamo=True, opset_version=18, verbose=False).model_proto
    buffer = io.BytesIO()
    torch.onnx.export(model, (x,), buffer, dynamo=False, opset_version=17)
    return onnx.load_from_string(buffer.getvalue())


@pytest.mark.parametrize("dynamo", [False, True])
def test_exported_torch_model_runs(dynamo: bool) -> None:
    torch.manual_seed(0)
    model = Tagger().eval()
    x = torch.randn(2, 7, 8)
    proto = export(model, x, dynamo)
    types = {n.op_type for n in proto.graph.node}
    # The dynamo exporter unrolls nn.RNN into MatMul and Relu nodes; LSTM and GRU stay whole in both exporters.
    assert ({"LSTM", "GRU"} if dynamo else {"LSTM", "GRU", "RNN"}) <= types, types
    with torch.no_grad():
        expected = [t.numpy() for t in model(x)]
    graph = aidge.onnx.load(proto)
    ours = [np.asarray(y) for y in graph.run(x.numpy())]
    assert len(ours) == len(expected)
    for k, (a, b) in enumerate(zip(ours, expected)):
        assert_matches_torch(a, b, f"exported (dynamo={dynamo}) output {k}")


class Encoder(torch.nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.lstm = torch.nn.LSTM(6, 8, batch_first=True)
        self.gru = torch.nn.GRU(8, 5, bidirectional=True)
        self.head = torch.nn.Linear(10, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y, _ = self.lstm(x)
        z, _ = self.gru(y.transpose(0, 1))
        return self.head(z)


@pytest.mark.parametrize("dynamo", [False, True])
def test_exported_torch_model_trains_like_torch(dynamo: bool) -> None:
    # One SGD step on an MSE loss in both engines, then the same outputs: every weight's gradient through the
    # recurrent layers (and the exporter's weight reordering) agrees with autograd.
    torch.manual_seed(0)
    model = Encoder()
    x = torch.randn(4, 5, 6)
    target = torch.randn(5, 4, 3)
    if dynamo:
        proto = torch.onnx.export(model, (x,), dynamo=True, opset_version=18, verbose=False).model_proto
    else:
        buffer = io.BytesIO()
        torch.onnx.export(model, (x,), buffer, dynamo=False, opset_version=17, do_constant_folding=False,
                          training=torch.onnx.TrainingMode.TRAINING)
        proto = onnx.load_from_string(buffer.getvalue())
    # The dynamo exporter stores the zero initial states as initializers; they are not torch parameters.
    states = {name for n in proto.graph.node if n.op_type in ("LSTM", "GRU") for name in n.input[5:7]}
    graph = aidge.onnx.load(proto)
    graph.train()
    optimizer = aidge.learning.SGD([p for p in graph.parameters() if p.name() not in states], lr=0.5)
    prediction = graph(x.numpy())
    before = np.array(prediction)
    optimizer.reset_grad()
    loss = aidge.learning.loss.MSE(prediction, target.numpy())
    graph.backward()
    optimizer.update()
    after = np.asarray(graph(x.numpy()))

    torch_loss = torch.nn.functional.mse_loss(model(x), target)
    torch_optimizer = torch.optim.SGD(model.parameters(), lr=0.5)
    torch_optimizer.zero_grad()
    torch_loss.backward()
    torch_optimizer.step()
    with torch.no_grad():
        expected = model(x).numpy()
    assert abs(float(np.asarray(loss)) - float(torch_loss)) <= 1e-5 * float(torch_loss)
    assert np.abs(after - before).max() > 1e-2  # the step moved the outputs
    assert_matches_torch(after, expected, f"outputs after one SGD step (dynamo={dynamo})")
