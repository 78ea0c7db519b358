"""PyTorch reference models for the end-to-end tests and the benchmarks.

Everything here is written with plain ``torch.nn`` (no torchvision) and is
initialised deterministically from a seed, so the exported ONNX files are
reproducible.  Every ``make_*`` function returns ``(model, example_input)``
with the model already in eval mode.  The example inputs use batch 2 because
``torch.export`` specialises dimensions whose example size is 0 or 1.

``export`` writes ONNX files with either exporter:

* ``dynamo=True``: the torch.export based exporter, opset 18, dynamic batch
  via ``dynamic_shapes`` / ``torch.export.Dim``.
* ``dynamo=False``: the legacy TorchScript exporter, opset 17, dynamic batch
  via ``dynamic_axes``.

The graph input is always named ``input`` and the graph output ``output``.
"""

from __future__ import annotations

import io
import os
import warnings
from collections.abc import Callable
from pathlib import Path

import torch
from torch import nn

DYNAMO_OPSET = 18
TORCHSCRIPT_OPSET = 17
EXAMPLE_BATCH = 2


# --------------------------------------------------------------------------
# Deterministic initialisation
# --------------------------------------------------------------------------


def _randomize_batchnorm(model: nn.Module, generator: torch.Generator) -> None:
    """Give BatchNorm layers non-trivial affine parameters and running stats.

    The PyTorch defaults (mean 0, var 1, weight 1, bias 0) make BatchNorm an
    identity in eval mode, which would hide bugs in the engine's kernel.
    """
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, (nn.BatchNorm1d, nn.BatchNorm2d)):
                n = m.num_features
                m.weight.copy_(torch.rand(n, generator=generator) * 0.5 + 0.75)
                m.bias.copy_((torch.rand(n, generator=generator) - 0.5) * 0.2)
                m.running_mean.copy_((torch.rand(n, generator=generator) - 0.5) * 0.2)
                m.running_var.copy_(torch.rand(n, generator=generator) * 0.5 + 0.75)


def _seeded(build: Callable[[], nn.Module], seed: int) -> nn.Module:
    """Build a module under a fixed seed, randomise BatchNorm, set eval mode."""
    torch.manual_seed(seed)
    model = build()
    _randomize_batchnorm(model, torch.Generator().manual_seed(seed + 1))
    return model.eval()


def example_input(shape: tuple[int, ...], seed: int = 0) -> torch.Tensor:
    """A seeded standard-normal float32 tensor."""
    g = torch.Generator().manual_seed(seed)
    return torch.randn(*shape, generator=g, dtype=torch.float32)


# --------------------------------------------------------------------------
# ResNet-18
# --------------------------------------------------------------------------


class BasicBlock(nn.Module):
    expansion = 1

    def __init__(self, in_planes: int, planes: int, stride: int = 1) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(in_planes, planes, 3, stride=stride, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.relu = nn.ReLU(inplace=True)
        self.conv2 = nn.Conv2d(planes, planes, 3, stride=1, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.downsample: nn.Module | None = None
        if stride != 1 or in_planes != planes:
            self.downsample = nn.Sequential(
                nn.Conv2d(in_planes, planes, 1, stride=stride, bias=False),
                nn.BatchNorm2d(planes),
            )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        identity = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return self.relu(out + identity)


class ResNet18(nn.Module):
    def __init__(self, num_classes: int = 1000) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(3, 64, 7, stride=2, padding=3, bias=False)
        self.bn1 = nn.BatchNorm2d(64)
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(3, stride=2, padding=1)
        layers = []
        in_planes = 64
        for planes, stride in [(64, 1), (128, 2), (256, 2), (512, 2)]:
            layers.append(nn.Sequential(BasicBlock(in_planes, planes, stride),
                                        BasicBlock(planes, planes, 1)))
            in_planes = planes
        self.layer1, self.layer2, self.layer3, self.layer4 = layers
        self.avgpool = nn.AdaptiveAvgPool2d((1, 1))
        self.fc = nn.Linear(512, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
        x = torch.flatten(self.avgpool(x), 1)
        return self.fc(x)


def make_resnet18(seed: int = 0) -> tuple[nn.Module, torch.Tensor]:
    model = _seeded(lambda: ResNet18(1000), seed)
    return model, example_input((EXAMPLE_BATCH, 3, 224, 224), seed)


# --------------------------------------------------------------------------
# ResNet-50 (the GPU benchmark's model; not in MODELS, too slow for CI)
# --------------------------------------------------------------------------


class Bottleneck(nn.Module):
    expansion = 4

    def __init__(self, in_planes: int, planes: int, stride: int = 1) -> None:
        super().__init__()
        out = planes * self.expansion
        self.conv1 = nn.Conv2d(in_planes, planes, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, stride=stride, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.conv3 = nn.Conv2d(planes, out, 1, bias=False)
        self.bn3 = nn.BatchNorm2d(out)
        self.relu = nn.ReLU(inplace=True)
        self.downsample: nn.Module | None = None
        if stride != 1 or in_planes != out:
            self.downsample = nn.Sequential(nn.Conv2d(in_planes, out, 1, stride=stride, bias=False),
                                            nn.BatchNorm2d(out))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        identity = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.relu(self.bn2(self.conv2(out)))
        return self.relu(self.bn3(self.conv3(out)) + identity)


class ResNet50(nn.Module):
    def __init__(self, num_classes: int = 1000) -> None:
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(3, 64, 7, stride=2, padding=3, bias=False), nn.BatchNorm2d(64),
                                  nn.ReLU(inplace=True), nn.MaxPool2d(3, stride=2, padding=1))
        blocks: list[nn.Module] = []
        in_planes = 64
        for planes, count, stride in [(64, 3, 1), (128, 4, 2), (256, 6, 2), (512, 3, 2)]:
            for k in range(count):
                blocks.append(Bottleneck(in_planes, planes, stride if k == 0 else 1))
                in_planes = planes * Bottleneck.expansion
        self.layers = nn.Sequential(*blocks)
        self.avgpool = nn.AdaptiveAvgPool2d((1, 1))
        self.fc = nn.Linear(in_planes, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(torch.flatten(self.avgpool(self.layers(self.stem(x))), 1))


def make_resnet50(seed: int = 0) -> tuple[nn.Module, torch.Tensor]:
    model = _seeded(lambda: ResNet50(1000), seed)
    return model, example_input((EXAMPLE_BATCH, 3, 224, 224), seed)


# --------------------------------------------------------------------------
# MobileNetV2
# --------------------------------------------------------------------------


def _make_divisible(v: float, divisor: int = 8) -> int:
    new_v = max(divisor, int(v + divisor / 2) // divisor * divisor)
    if new_v < 0.9 * v:
        new_v += divisor
    return new_v


class ConvBNReLU6(nn.Sequential):
    def __init__(self, in_ch: int, out_ch: int, kernel: int = 3, stride: int = 1,
                 groups: int = 1) -> None:
        super().__init__(
            nn.Conv2d(in_ch, out_ch, kernel, stride, (kernel - 1) // 2, groups=groups, bias=False),
            nn.BatchNorm2d(out_ch),
            nn.ReLU6(inplace=True),
        )


class InvertedResidual(nn.Module):
    def __init__(self, in_ch: int, out_ch: int, stride: int, expand_ratio: int) -> None:
        super().__init__()
        hidden = int(round(in_ch * expand_ratio))
        self.use_res_connect = stride == 1 and in_ch == out_ch
        layers: list[nn.Module] = []
        if expand_ratio != 1:
            layers.append(ConvBNReLU6(in_ch, hidden, kernel=1))
        layers += [
            ConvBNReLU6(hidden, hidden, stride=stride, groups=hidden),  # depthwise
            nn.Conv2d(hidden, out_ch, 1, 1, 0, bias=False),             # linear bottleneck
            nn.BatchNorm2d(out_ch),
        ]
        self.conv = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.use_res_connect:
            return x + self.conv(x)
        return self.conv(x)


class MobileNetV2(nn.Module):
    def __init__(self, num_classes: int = 1000, width_mult: float = 1.0) -> None:
        super().__init__()
        settings = [
            # t, c, n, s
            [1, 16, 1, 1],
            [6, 24, 2, 2],
            [6, 32, 3, 2],
            [6, 64, 4, 2],
            [6, 96, 3, 1],
            [6, 160, 3, 2],
            [6, 320, 1, 1],
        ]
        in_ch = _make_divisible(32 * width_mult)
        self.last_channel = _make_divisible(1280 * max(1.0, width_mult))
        features: list[nn.Module] = [ConvBNReLU6(3, in_ch, stride=2)]
        for t, c, n, s in settings:
            out_ch = _make_divisible(c * width_mult)
            for i in range(n):
                features.append(InvertedResidual(in_ch, out_ch, s if i == 0 else 1, t))
                in_ch = out_ch
        features.append(ConvBNReLU6(in_ch, self.last_channel, kernel=1))
        self.features = nn.Sequential(*features)
        self.classifier = nn.Sequential(nn.Dropout(0.2), nn.Linear(self.last_channel, num_classes))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.features(x)
        x = nn.functional.adaptive_avg_pool2d(x, (1, 1))
        x = torch.flatten(x, 1)
        return self.classifier(x)


def make_mobilenetv2(seed: int = 0) -> tuple[nn.Module, torch.Tensor]:
    model = _seeded(lambda: MobileNetV2(1000, 1.0), seed)
    return model, example_input((EXAMPLE_BATCH, 3, 224, 224), seed)


# --------------------------------------------------------------------------
# Transformer encoder
# --------------------------------------------------------------------------


class TransformerEncoderModel(nn.Module):
    """4 post-norm encoder layers, d_model 256, 4 heads, input [batch, 64, 256]."""

    def __init__(self, d_model: int = 256, nhead: int = 4, num_layers: int = 4,
                 dim_feedforward: int = 1024) -> None:
        super().__init__()
        layer = nn.TransformerEncoderLayer(d_model, nhead, dim_feedforward=dim_feedforward,
                                           dropout=0.1, batch_first=True)
        self.encoder = nn.TransformerEncoder(layer, num_layers, enable_nested_tensor=False)
        # nn.TransformerEncoder deep-copies `layer`, so all layers would share
        # the same initial weights (and the TorchScript exporter would then
        # deduplicate the initializers).  Give every layer its own weights and
        # non-trivial LayerNorm affine parameters.
        with torch.no_grad():
            for name, p in self.encoder.named_parameters():
                if p.dim() >= 2:
                    nn.init.xavier_uniform_(p)
                elif "norm" in name and name.endswith("weight"):
                    p.uniform_(0.75, 1.25)
                else:
                    p.uniform_(-0.1, 0.1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.encoder(x)


def make_transformer(seed: int = 0) -> tuple[nn.Module, torch.Tensor]:
    model = _seeded(TransformerEncoderModel, seed)
    return model, example_input((EXAMPLE_BATCH, 64, 256), seed)


# --------------------------------------------------------------------------
# MLP
# --------------------------------------------------------------------------


class MLP(nn.Module):
    """784-256-128-10 with ReLU then (exact, erf-based) GELU."""

    def __init__(self) -> None:
        super().__init__()
        self.net = nn.Sequential(
            nn.Linear(784, 256), nn.ReLU(),
            nn.Linear(256, 128), nn.GELU(),
            nn.Linear(128, 10),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


def make_mlp(seed: int = 0) -> tuple[nn.Module, torch.Tensor]:
    model = _seeded(MLP, seed)
    return model, example_input((EXAMPLE_BATCH, 784), seed)


# --------------------------------------------------------------------------
# Small CNN (exported with external data)
# --------------------------------------------------------------------------


class SmallCNN(nn.Module):
    """CIFAR-sized CNN, input [batch, 3, 32, 32]; ~0.3 MB of weights."""

    def __init__(self, num_classes: int = 10) -> None:
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(3, 16, 3, padding=1), nn.BatchNorm2d(16), nn.ReLU(),
            nn.MaxPool2d(2),
            nn.Conv2d(16, 32, 3, padding=1), nn.ReLU(),
            nn.MaxPool2d(2),
        )
        self.fc = nn.Linear(32 * 8 * 8, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(torch.flatten(self.features(x), 1))


def make_small_cnn(seed: int = 0) -> tuple[nn.Module, torch.Tensor]:
    model = _seeded(SmallCNN, seed)
    return model, example_input((EXAMPLE_BATCH, 3, 32, 32), seed)


MODELS: dict[str, Callable[[], tuple[nn.Module, torch.Tensor]]] = {
    "resnet18": make_resnet18,
    "mobilenetv2": make_mobilenetv2,
    "transformer": make_transformer,
    "mlp": make_mlp,
    "small_cnn": make_small_cnn,
}


# --------------------------------------------------------------------------
# Export
# --------------------------------------------------------------------------


def export(model: nn.Module, example: torch.Tensor | tuple[torch.Tensor, ...],
           path: str | os.PathLike, dynamo: bool, external_data: bool = False) -> Path:
    """Export ``model`` to ONNX at ``path`` with a dynamic first-input batch.

    ``dynamo=True`` uses the torch.export exporter (opset 18); ``dynamo=False``
    the TorchScript exporter (opset 17).  With ``external_data=True`` the
    weights go into ``<path>.data`` next to the model (``<name>.onnx.data``).
    Nothing is written outside ``path``'s folder.
    """
    path = Path(path).resolve()
    path.parent.mkdir(parents=True, exist_ok=True)
    args = example if isinstance(example, tuple) else (example,)
    model = model.eval()
    data_name = path.name + ".data"
    for stale in (path, path.parent / data_name):
        stale.unlink(missing_ok=True)

    # The legacy exporter cannot translate the fused eval-mode "fast path" of
    # nn.TransformerEncoderLayer (aten::_transformer_encoder_layer_fwd), so
    # export the plain composite ops instead (for both exporters, for parity).
    fastpath = torch.backends.mha.get_fastpath_enabled()
    torch.backends.mha.set_fastpath_enabled(False)
    try:
        _export(model, args, path, data_name, dynamo, external_data)
    finally:
        torch.backends.mha.set_fastpath_enabled(fastpath)
    return path


def _export(model: nn.Module, args: tuple[torch.Tensor, ...], path: Path, data_name: str,
            dynamo: bool, external_data: bool) -> None:
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")
        if dynamo:
            batch = torch.export.Dim("batch", min=1, max=4096)
            dynamic_shapes = tuple({0: batch} if i == 0 else None for i in range(len(args)))
            program = torch.onnx.export(
                model, args, dynamo=True, opset_version=DYNAMO_OPSET,
                input_names=["input"], output_names=["output"],
                dynamic_shapes=dynamic_shapes, verbose=False,
                artifacts_dir=str(path.parent),
            )
            # Saving the ONNXProgram ourselves makes the external-data layout
            # explicit; torch.onnx.export(..., f) would also write an (empty)
            # .data file when external_data=True and the weights are small.
            program.save(str(path), external_data=external_data)
        else:
            buffer = io.BytesIO()
            torch.onnx.export(
                model, args, buffer, dynamo=False, opset_version=TORCHSCRIPT_OPSET,
                input_names=["input"], output_names=["output"],
                dynamic_axes={"input": {0: "batch"}, "output": {0: "batch"}},
                do_constant_folding=True, verbose=False,
            )
            import onnx  # local: keeps `import models` cheap for torch-only users

            proto = onnx.load_from_string(buffer.getvalue())
            if external_data:
                onnx.save_model(proto, str(path), save_as_external_data=True,
                                all_tensors_to_one_file=True, location=data_name,
                                size_threshold=1024)
            else:
                onnx.save_model(proto, str(path))


def onnx_op_summary(path: str | os.PathLike) -> tuple[int, list[str]]:
    """(default-domain opset, sorted op types incl. nested graphs) of a model."""
    import onnx

    proto = onnx.load(str(path), load_external_data=False)
    opset = next((o.version for o in proto.opset_import if o.domain in ("", "ai.onnx")), -1)
    ops: set[str] = set()

    def walk(graph: "onnx.GraphProto") -> None:
        for node in graph.node:
            ops.add(node.op_type if node.domain in ("", "ai.onnx") else f"{node.domain}::{node.op_type}")
            for attr in node.attribute:
                if attr.g.node:
                    walk(attr.g)
                for g in attr.graphs:
                    walk(g)

    walk(proto.graph)
    for fn in proto.functions:
        ops.add(f"function:{fn.domain}::{fn.name}")
    return opset, sorted(ops)


if __name__ == "__main__":  # pragma: no cover - manual inspection helper
    import argparse
    import tempfile

    parser = argparse.ArgumentParser(description="Export the e2e models and list their ONNX ops.")
    parser.add_argument("--models", nargs="*", default=list(MODELS))
    parser.add_argument("--out", default=None, help="output folder (default: a temp dir)")
    ns = parser.parse_args()
    out = Path(ns.out) if ns.out else Path(tempfile.mkdtemp(prefix="aidge-models-"))
    for name in ns.models:
        m, x = MODELS[name]()
        for dyn in (True, False):
            p = export(m, x, out / f"{name}_{'dynamo' if dyn else 'torchscript'}.onnx", dyn,
                       external_data=(name == "small_cnn"))
            opset, ops = onnx_op_summary(p)
            params = sum(t.numel() for t in m.state_dict().values())
            print(f"{p.name}: opset {opset}, {params} params, ops: {', '.join(ops)}")
