"""Backward of the shape and data-movement operators (and Resize) against PyTorch autograd."""

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from gradient_support import check_gradients


def rand(*shape: int, seed: int = 1) -> np.ndarray:
    return np.random.default_rng(seed).standard_normal(shape).astype(np.float32)


def ints(*values: int) -> np.ndarray:
    return np.array(values, dtype=np.int64)


def test_identity_reshape_flatten() -> None:
    x = rand(2, 3, 4)
    check_gradients("Identity", [x], lambda x: x * 1)
    check_gradients("Reshape", [x, ints(4, -1)], lambda x, s: x.reshape(4, -1), constants=(1,))
    check_gradients("Flatten", [x], lambda x: x.reshape(6, 4), axis=2)


def test_squeeze_unsqueeze() -> None:
    check_gradients("Squeeze", [rand(2, 1, 3, 1), ints(1, -1)], lambda x, a: x.squeeze(3).squeeze(1), constants=(1,))
    check_gradients("Unsqueeze", [rand(2, 3), ints(0, 3)], lambda x, a: x.unsqueeze(0).unsqueeze(3), constants=(1,))


def test_transpose() -> None:
    check_gradients("Transpose", [rand(3, 4, 5)], lambda x: x.permute(2, 0, 1), perm=[2, 0, 1])
    check_gradients("Transpose", [rand(2, 70, 45)], lambda x: x.permute(0, 2, 1), perm=[0, 2, 1])


def test_concat() -> None:
    xs = [rand(2, 1, 3, seed=1), rand(2, 4, 3, seed=2), rand(2, 2, 3, seed=3)]
    check_gradients("Concat", xs, lambda *t: torch.cat(t, dim=1), axis=1)
    check_gradients("Concat", [rand(3, 2), rand(3, 5)], lambda a, b: torch.cat([a, b], dim=-1), axis=-1)


def test_split() -> None:
    check_gradients("Split", [rand(2, 7, 3)], lambda x: torch.split(x, [4, 3], dim=1), axis=1, num_outputs=2)
    check_gradients(
        "Split", [rand(4, 6), ints(1, 5)], lambda x, s: torch.split(x, [1, 5], dim=-1), constants=(1,), axis=-1
    )


def test_slice() -> None:
    x = rand(5, 6, 7)
    check_gradients(
        "Slice", [x, ints(1, 0), ints(4, 5)], lambda x, *_: x.narrow(0, 1, 3).narrow(1, 0, 5), constants=(1, 2)
    )

    # x[4:0:-1, 1:7:2, -1::-2] in NumPy terms: flips for the negative steps.
    def reference(x, *_):
        a = torch.flip(x, [0]).narrow(0, 0, 4)  # rows 4, 3, 2, 1
        b = a[:, 1:7:2]
        return torch.flip(b, [2])[:, :, ::2]

    check_gradients(
        "Slice",
        [x, ints(100, 1, -1), ints(0, 7, -100), ints(0, 1, 2), ints(-1, 2, -2)],
        reference,
        constants=(1, 2, 3, 4),
    )


def test_expand_tile() -> None:
    check_gradients("Expand", [rand(3, 1), ints(2, 3, 4)], lambda x, s: x.expand(2, 3, 4), constants=(1,))
    check_gradients("Tile", [rand(2, 1, 3), ints(2, 3, 2)], lambda x, r: x.repeat(2, 3, 2), constants=(1,))


@pytest.mark.parametrize(
    "onnx_mode, torch_mode", [("constant", "constant"), ("reflect", "reflect"), ("edge", "replicate"), ("wrap", "circular")]
)
def test_pad(onnx_mode: str, torch_mode: str) -> None:
    x = rand(2, 3, 5, 6)
    # ONNX: begins then ends per axis; torch: (last begin, last end, previous begin, previous end).
    pads = ints(0, 0, 1, 3, 0, 0, 2, 4)
    check_gradients(
        "Pad", [x, pads], lambda x, p: F.pad(x, (3, 4, 1, 2), mode=torch_mode), constants=(1,), mode=onnx_mode
    )


def test_cast() -> None:
    check_gradients("Cast", [rand(3, 4)], lambda x: x.double(), to=11)
    check_gradients("Cast", [rand(3, 4).astype(np.float64)], lambda x: x.float(), to=1)


def resize(x: np.ndarray, size: tuple[int, ...], torch_fn, **attributes) -> None:
    sizes = ints(*x.shape[:2], *size)
    check_gradients("Resize", [x, None, None, sizes], lambda x, *_: torch_fn(x), constants=(3,), **attributes)


@pytest.mark.parametrize("size", [(7, 9), (2, 3), (5, 4)])
def test_resize_nearest(size: tuple[int, int]) -> None:
    x = rand(2, 3, 4, 5)
    resize(
        x, size, lambda t: F.interpolate(t, size=size, mode="nearest"),
        mode="nearest", coordinate_transformation_mode="asymmetric", nearest_mode="floor",
    )
    resize(
        x, size, lambda t: F.interpolate(t, size=size, mode="nearest-exact"),
        mode="nearest", coordinate_transformation_mode="half_pixel", nearest_mode="round_prefer_ceil",
    )


@pytest.mark.parametrize("size", [(7, 9), (2, 3), (5, 4), (1, 6)])
def test_resize_bilinear(size: tuple[int, int]) -> None:
    x = rand(2, 3, 4, 5)
    interpolate = lambda align: lambda t: F.interpolate(t, size=size, mode="bilinear", align_corners=align)
    resize(x, size, interpolate(False), mode="linear", coordinate_transformation_mode="half_pixel")
    resize(x, size, interpolate(True), mode="linear", coordinate_transformation_mode="align_corners")
    # pytorch_half_pixel samples 0 for an output of length 1, where PyTorch samples the half-pixel coordinate.
    if 1 not in size:
        resize(x, size, interpolate(False), mode="linear", coordinate_transformation_mode="pytorch_half_pixel")


def test_resize_linear_1d_and_bicubic() -> None:
    x = rand(2, 3, 6)
    resize(
        x, (11,), lambda t: F.interpolate(t, size=(11,), mode="linear", align_corners=False),
        mode="linear", coordinate_transformation_mode="half_pixel",
    )
    y = rand(1, 2, 4, 5)
    resize(
        y, (7, 8), lambda t: F.interpolate(t, size=(7, 8), mode="bicubic", align_corners=False),
        mode="cubic", coordinate_transformation_mode="half_pixel",
    )
    resize(
        y, (7, 8), lambda t: F.interpolate(t, size=(7, 8), mode="bicubic", align_corners=True),
        mode="cubic", coordinate_transformation_mode="align_corners",
    )



@pytest.mark.parametrize("size", [(4, 6), (3, 7), (6, 10)])
def test_resize_antialias(size: tuple[int, int]) -> None:
    # PyTorch's antialiasing drops the taps outside the input and renormalises: ONNX's exclude_outside.
    x = rand(1, 2, 8, 12)
    resize(
        x, size, lambda t: F.interpolate(t, size=size, mode="bilinear", antialias=True, align_corners=False),
        mode="linear", antialias=1, exclude_outside=1, coordinate_transformation_mode="half_pixel",
    )
    resize(
        x, size, lambda t: F.interpolate(t, size=size, mode="bicubic", antialias=True, align_corners=False),
        mode="cubic", antialias=1, exclude_outside=1, cubic_coeff_a=-0.5, coordinate_transformation_mode="half_pixel",
    )
