"""aidge.torch.wrap: a torch module run and trained by the engine inside PyTorch, on the module's own parameters."""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch

import aidge.torch
from gradient_support import assert_matches_torch


class LeNet(torch.nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.c1 = torch.nn.Conv2d(1, 6, 5, padding=2)
        self.bn = torch.nn.BatchNorm2d(6)
        self.c2 = torch.nn.Conv2d(6, 16, 5)
        self.f1, self.f2, self.f3 = torch.nn.Linear(400, 120), torch.nn.Linear(120, 84), torch.nn.Linear(84, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = torch.max_pool2d(torch.relu(self.bn(self.c1(x))), 2)
        x = torch.flatten(torch.max_pool2d(torch.relu(self.c2(x)), 2), 1)
        return self.f3(torch.relu(self.f2(torch.relu(self.f1(x)))))


def pair(seed: int = 0) -> tuple[torch.nn.Module, torch.nn.Module]:
    torch.manual_seed(seed)
    module = LeNet()
    return module, copy.deepcopy(module)


def test_wrap_shares_the_module_and_changes_nothing() -> None:
    module, reference = pair()
    module.eval()
    wrapped = aidge.torch.wrap(module, torch.randn(2, 1, 28, 28))
    assert not module.training and not wrapped.training
    assert sorted(wrapped.state_dict()) == sorted(module.state_dict())
    assert all(a is b for a, b in zip(wrapped.parameters(), module.parameters()))
    for (name, a), b in zip(module.state_dict().items(), reference.state_dict().values()):
        assert torch.equal(a, b), f"wrap changed {name}"


def test_training_steps_match_torch() -> None:
    module, reference = pair(1)
    x, y = torch.randn(8, 1, 28, 28), torch.randint(0, 10, (8,))
    wrapped = aidge.torch.wrap(module, x).train()
    reference.train()
    ours = torch.optim.SGD(wrapped.parameters(), lr=0.05, momentum=0.9)
    theirs = torch.optim.SGD(reference.parameters(), lr=0.05, momentum=0.9)
    for step in range(5):
        pointers = [p.data_ptr() for p in wrapped.parameters()]
        xo, xt = x.clone().requires_grad_(True), x.clone().requires_grad_(True)
        lo = torch.nn.functional.cross_entropy(wrapped(xo), y)
        lt = torch.nn.functional.cross_entropy(reference(xt), y)
        ours.zero_grad()
        theirs.zero_grad()
        lo.backward()
        lt.backward()
        assert_matches_torch(lo.detach().numpy(), lt.detach().numpy(), f"loss at step {step}")
        assert_matches_torch(xo.grad.numpy(), xt.grad.numpy(), f"input gradient at step {step}")
        scale = max(float(q.grad.abs().max()) for q in reference.parameters())
        for (name, p), q in zip(module.named_parameters(), reference.parameters()):
            assert_matches_torch(p.grad.numpy(), q.grad.numpy(), f"{name} gradient at step {step}", scale)
        ours.step()
        theirs.step()
        assert [p.data_ptr() for p in wrapped.parameters()] == pointers, "parameters are updated in place"
    for (name, a), b in zip(module.state_dict().items(), reference.state_dict().values()):
        assert_matches_torch(a.numpy().astype(np.float64), b.numpy().astype(np.float64), f"{name} after training")
    wrapped.eval()
    reference.eval()
    with torch.no_grad():
        assert_matches_torch(wrapped(x).numpy(), reference(x).numpy(), "evaluation output after training")


def test_each_forward_keeps_its_own_activations() -> None:
    module, reference = pair(2)
    wrapped = aidge.torch.wrap(module, torch.randn(2, 1, 28, 28))
    a, b = torch.randn(3, 1, 28, 28), torch.randn(3, 1, 28, 28)
    (torch.tanh(wrapped(a)).sum() + wrapped(b).pow(2).sum()).backward()
    (torch.tanh(reference(a)).sum() + reference(b).pow(2).sum()).backward()
    scale = max(float(q.grad.abs().max()) for q in reference.parameters())
    for (name, p), q in zip(module.named_parameters(), reference.parameters()):
        assert_matches_torch(p.grad.numpy(), q.grad.numpy(), name, scale)


def test_double_backward_is_a_clear_error() -> None:
    module, _ = pair(3)
    wrapped = aidge.torch.wrap(module, torch.randn(2, 1, 28, 28))
    x = torch.randn(2, 1, 28, 28, requires_grad=True)
    try:
        torch.autograd.grad(wrapped(x).sum(), x, create_graph=True)
    except RuntimeError as error:
        assert "double backward" in str(error)
    else:
        raise AssertionError("create_graph=True went through")
    y = wrapped(x).sum()
    y.backward(retain_graph=True)
    try:
        y.backward()
    except RuntimeError as error:
        assert "already back-propagated" in str(error)
    else:
        raise AssertionError("a second backward of one forward went through")
    # The session stays usable.
    wrapped(x).sum().backward()


def test_deepcopy_and_torch_save() -> None:
    import io

    module, _ = pair(4)
    wrapped = aidge.torch.wrap(module, torch.randn(2, 1, 28, 28)).eval()
    x = torch.randn(3, 1, 28, 28)
    twin = copy.deepcopy(wrapped)
    assert all(a.data_ptr() != b.data_ptr() for a, b in zip(twin.parameters(), wrapped.parameters()))
    with torch.no_grad():
        assert torch.equal(twin(x), wrapped(x))
        next(twin.parameters()).add_(1.0)  # the copy trains its own weights
        assert not torch.equal(twin(x), wrapped(x))
    buffer = io.BytesIO()
    torch.save(wrapped, buffer)
    buffer.seek(0)
    loaded = torch.load(buffer, weights_only=False)
    with torch.no_grad():
        assert torch.equal(loaded(x), wrapped(x))
    fresh, _ = pair(5)
    fresh.load_state_dict(wrapped.state_dict())
    with torch.no_grad():
        assert_matches_torch(fresh.eval()(x).numpy(), wrapped(x).numpy(), "state_dict round trip")


def test_bad_inputs_are_torch_style_errors() -> None:
    wrapped = aidge.torch.wrap(torch.nn.Sequential(torch.nn.Linear(4, 3)), torch.randn(2, 4))
    for bad, error, words in [
        (torch.randn(2, 5), ValueError, "shape 2x5"),
        (torch.randn(2, 4, dtype=torch.float64), TypeError, "float64"),
    ]:
        try:
            wrapped(bad)
        except error as e:
            assert words in str(e), str(e)
        else:
            raise AssertionError(f"{bad.shape} {bad.dtype} went through")
    try:
        aidge.torch.wrap(torch.nn.BatchNorm1d(4, momentum=None), torch.randn(2, 4))
    except NotImplementedError as e:
        assert "momentum=None" in str(e)
    else:
        raise AssertionError("a cumulative-average BatchNorm was wrapped")
    assert wrapped(torch.randn(3, 4)).shape == (3, 3)  # the session stays usable


class TwoInTwoOut(torch.nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.a, self.b = torch.nn.Linear(6, 4), torch.nn.Linear(3, 4)

    def forward(self, x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        h = self.a(x) + self.b(y)
        return torch.tanh(h), h.sum(dim=1)


def test_two_inputs_two_outputs_and_torch_layers_around() -> None:
    torch.manual_seed(6)
    inner = TwoInTwoOut()
    pre, post = torch.nn.Linear(5, 6), torch.nn.Linear(4, 2)
    reference = (copy.deepcopy(pre), copy.deepcopy(inner), copy.deepcopy(post))
    wrapped = aidge.torch.wrap(inner, (torch.randn(2, 6), torch.randn(2, 3)))
    x, y = torch.randn(4, 5), torch.randn(4, 3, requires_grad=True)
    y_ref = y.detach().clone().requires_grad_(True)

    def run(p, m, q, yy):  # noqa: ANN001
        first, second = m(p(x), yy)
        return (q(first).square().sum() + second.sum()) / 4

    run(pre, wrapped, post, y).backward()
    run(*reference, y_ref).backward()
    assert_matches_torch(y.grad.numpy(), y_ref.grad.numpy(), "second input's gradient")
    mine = [*pre.parameters(), *inner.parameters(), *post.parameters()]
    theirs = [p for module in reference for p in module.parameters()]
    scale = max(float(t.grad.abs().max()) for t in theirs)
    for a, b in zip(mine, theirs):
        assert_matches_torch(a.grad.numpy(), b.grad.numpy(), "parameter gradient", scale)


def test_transformer_encoder_layer_trains_like_torch() -> None:
    torch.manual_seed(7)
    module = torch.nn.TransformerEncoderLayer(16, 2, dim_feedforward=32, dropout=0.0, batch_first=True)
    reference = copy.deepcopy(module)
    x = torch.randn(3, 5, 16)
    wrapped = aidge.torch.wrap(module, x)
    for mode in ("eval", "train"):
        getattr(wrapped, mode)()
        getattr(reference, mode)()
        with torch.no_grad():
            assert_matches_torch(wrapped(x).numpy(), reference(x).numpy(), f"{mode} output")
    ours = torch.optim.SGD(wrapped.parameters(), lr=0.01, momentum=0.9)
    theirs = torch.optim.SGD(reference.parameters(), lr=0.01, momentum=0.9)
    for step in range(5):
        losses = []
        for m, optimizer in ((wrapped, ours), (reference, theirs)):
            optimizer.zero_grad()
            loss = m(x).square().mean()
            loss.backward()
            optimizer.step()
            losses.append(loss.item())
        assert losses[0] == pytest.approx(losses[1], rel=1e-4), step
    scale = max(float(p.detach().abs().max()) for p in reference.parameters())
    for a, b in zip(module.parameters(), reference.parameters()):
        assert_matches_torch(a.detach().numpy(), b.detach().numpy(), "trained parameter", scale)


class DictOut(torch.nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.body, self.head = torch.nn.Linear(4, 6), torch.nn.Linear(6, 2)

    def forward(self, x: torch.Tensor) -> dict[str, object]:
        h = torch.relu(self.body(x))
        return {"logits": self.head(h), "features": (h, [h.sum(dim=1)])}


def test_outputs_keep_the_module_structure() -> None:
    torch.manual_seed(8)
    module = DictOut()
    x = torch.randn(3, 4, requires_grad=True)
    x_ref = x.detach().clone().requires_grad_(True)
    wrapped = aidge.torch.wrap(copy.deepcopy(module), x.detach())
    ours, theirs = wrapped(x), module(x_ref)
    assert sorted(ours) == ["features", "logits"] and isinstance(ours["features"], tuple)
    assert isinstance(ours["features"][1], list)
    pairs = [(ours["logits"], theirs["logits"]), (ours["features"][0], theirs["features"][0]),
             (ours["features"][1][0], theirs["features"][1][0])]
    for a, b in pairs:
        assert_matches_torch(a.detach().numpy(), b.detach().numpy(), "dict output")
    (ours["logits"].sum() + ours["features"][1][0].square().sum()).backward()
    (theirs["logits"].sum() + theirs["features"][1][0].square().sum()).backward()
    assert_matches_torch(x.grad.numpy(), x_ref.grad.numpy(), "input gradient through a dict output")
    restored = copy.deepcopy(wrapped)
    assert sorted(restored(x.detach())) == ["features", "logits"]


class ConstantArithmetic(torch.nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv, self.linear = torch.nn.Conv1d(3, 4, 3), torch.nn.Linear(32, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.linear(self.conv(x).flatten(1))
        return h.reshape(h.size(0), 2, 1).squeeze(2)  # the exported shape arithmetic has constant parts


def test_dynamic_axes_and_simplify() -> None:
    torch.manual_seed(9)
    module = ConstantArithmetic()
    example = torch.randn(2, 3, 10)
    state_before = torch.random.get_rng_state()
    static = aidge.torch.wrap(module, example, dynamic_axes={})
    assert torch.equal(torch.random.get_rng_state(), state_before), "wrap must not draw from torch's generator"
    with pytest.raises(ValueError, match="shape 3x3x10"):
        static(torch.randn(3, 3, 10))
    plain = aidge.torch.wrap(module, example, simplify=False)
    simplified = aidge.torch.wrap(module, example)
    assert len(simplified._graph.get_nodes()) < len(plain._graph.get_nodes()), "simplify folds constant shape arithmetic"
    for batch in (1, 5):
        x = torch.randn(batch, 3, 10)
        with torch.no_grad():
            expected = module(x)
            for wrapped in (plain, simplified):
                assert_matches_torch(wrapped(x).numpy(), expected.numpy(), f"batch {batch}")
    with pytest.raises(ValueError, match="dynamic_axes"):
        aidge.torch.wrap(module, example, dynamic_axes={0: {3: "length"}})


def test_device_and_dtype_changes_are_clear_errors() -> None:
    module = torch.nn.Linear(4, 3)
    wrapped = aidge.torch.wrap(module, torch.randn(2, 4))
    with pytest.raises(NotImplementedError, match="meta.*runs on cpu and cuda"):
        wrapped(torch.randn(2, 4, device="meta"))
    wrapped.double()
    with pytest.raises(TypeError, match="float64"):
        wrapped(torch.randn(2, 4, dtype=torch.float64))
    wrapped.float()
    wrapped.to("meta")
    with pytest.raises(NotImplementedError, match="weight is on meta.*runs on cpu and cuda"):
        wrapped(torch.randn(2, 4))
    wrapped.to_empty(device="cpu")  # new tensors, which the next forward binds
    torch.nn.init.ones_(wrapped.weight)
    torch.nn.init.zeros_(wrapped.bias)
    x = torch.randn(2, 4)
    assert_matches_torch(wrapped(x).detach().numpy(), x.sum(dim=1, keepdim=True).expand(2, 3).numpy(),
                         "re-bound after moving back")


class Gelus(torch.nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.linear = torch.nn.Linear(8, 8)
        self.head = torch.nn.Linear(8, 3, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = torch.nn.functional.gelu(x)  # on the graph input itself
        h = torch.nn.functional.gelu(self.linear(h)) * 0.5 * x  # the 0.5 next to a GELU's is not part of it
        return self.head(h)


def test_simplify_fuses_gelu_and_linear_and_trains_like_torch() -> None:
    torch.manual_seed(10)
    module = Gelus()
    x = torch.randn(6, 5, 8, requires_grad=True)  # linear layers on 3-D inputs: Transpose, MatMul and Add
    x_ref = x.detach().clone().requires_grad_(True)
    wrapped = aidge.torch.wrap(copy.deepcopy(module), x.detach())
    types = [t for _, t in wrapped._graph._graph.nodes]
    assert types.count("Gelu") == 2 and "Erf" not in types, types
    assert types.count("Linear") == 2 and "MatMul" not in types and "Transpose" not in types, types
    ours, theirs = wrapped(x), module(x_ref)
    assert_matches_torch(ours.detach().numpy(), theirs.detach().numpy(), "output")
    ours.sin().sum().backward()
    theirs.sin().sum().backward()
    assert_matches_torch(x.grad.numpy(), x_ref.grad.numpy(), "input gradient")
    for a, b in zip(wrapped.parameters(), module.parameters()):
        assert_matches_torch(a.grad.numpy(), b.grad.numpy(), "parameter gradient")


def test_engine_runs_on_torch_openmp_threads() -> None:
    """Importing aidge.torch puts the engine's parallel work on PyTorch's OpenMP threads; forward and backward give
    what they give on the engine's own workers, and both match torch."""
    assert aidge.share_openmp_threads(True), "torch loaded an OpenMP runtime"
    module, reference = pair(5)
    x = torch.randn(16, 1, 28, 28)
    wrapped = aidge.torch.wrap(module, x).train()
    reference.train()
    results = {}
    try:
        for shared in (True, False):
            assert aidge.share_openmp_threads(shared) == shared
            xo = x.clone().requires_grad_(True)
            wrapped(xo).square().mean().backward()
            results[shared] = (xo.grad.clone(), [p.grad.clone() for p in wrapped.parameters()])
            wrapped.zero_grad()
    finally:
        aidge.share_openmp_threads(True)
    xt = x.clone().requires_grad_(True)
    reference(xt).square().mean().backward()
    for shared, (x_grad, grads) in results.items():
        assert_matches_torch(x_grad.numpy(), xt.grad.numpy(), f"input gradient (shared: {shared})")
        scale = max(float(q.grad.abs().max()) for q in reference.parameters())
        for (name, _), g, q in zip(module.named_parameters(), grads, reference.parameters()):
            assert_matches_torch(g.numpy(), q.grad.numpy(), f"{name} gradient (shared: {shared})", scale)
    assert torch.equal(results[True][0], results[False][0])
