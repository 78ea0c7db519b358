import Aidge
import XCTest

/// The kernels of convolutional and transformer networks, each against the CPU backend.
final class CUDANetworkKernelTests: XCTestCase {
    override func setUpWithError() throws { try CUDATestDevice.require() }

    func testConvolutionFormsThroughCuDNN() throws {
        XCTAssertTrue(try CUDABackend.device().hasCuDNN, "cuDNN (or its emulation) loads")
        try checkConvolutionForms()
    }

    func testConvolutionFormsWithoutCuDNN() throws {
        CUDABackend.usesCuDNN = false
        defer { CUDABackend.usesCuDNN = true }
        try checkConvolutionForms()
    }

    func testTF32ConvolutionsAndProductsStayWithinTheirTolerance() throws {
        let x = try randomTensor([2, 16, 12, 12], seed: 160), w = try randomTensor([8, 16, 3, 3], seed: 161)
        let a = try randomTensor([64, 96], seed: 162), b = try randomTensor([96, 48], seed: 163)
        let exact = (try runBoth("Conv", inputs: [x, w], constants: [1]), try runBoth("MatMul", inputs: [a, b]))
        CUDABackend.allowsTF32Convolutions = true
        CUDABackend.allowsTF32 = true
        defer {
            CUDABackend.allowsTF32Convolutions = false
            CUDABackend.allowsTF32 = false
        }
        for usesCuDNN in [true, false] {
            CUDABackend.usesCuDNN = usesCuDNN
            defer { CUDABackend.usesCuDNN = true }
            let conv = try runBoth("Conv", inputs: [x, w], constants: [1])
            assertMatches(conv, rtol: 1e-3, atol: 1e-3, "Conv TF32 cuDNN \(usesCuDNN)")
            XCTAssertNotEqual(conv.cuda[0].doubles(), exact.0.cuda[0].doubles(), "TF32 reaches the convolution")
        }
        let product = try runBoth("MatMul", inputs: [a, b])
        assertMatches(product, rtol: 1e-3, atol: 1e-3, "MatMul TF32")
        XCTAssertNotEqual(product.cuda[0].doubles(), exact.1.cuda[0].doubles(), "TF32 reaches the product")
    }

    private func checkConvolutionForms() throws {
        let x = try randomTensor([2, 6, 9, 8], seed: 70)
        let cases: [(String, [Int], Attributes)] = [
            ("3x3 padded", [4, 6, 3, 3], ["pads": .ints([1, 1, 1, 1])]),
            ("strided dilated", [5, 6, 3, 2], ["strides": .ints([2, 1]), "dilations": .ints([2, 1]), "pads": .ints([0, 1, 2, 0])]),
            ("pointwise", [7, 6, 1, 1], [:]),
            ("grouped", [4, 3, 3, 3], ["group": .int(2), "pads": .ints([1, 1, 1, 1])]),
            ("depthwise", [6, 1, 3, 3], ["group": .int(6), "pads": .ints([1, 1, 1, 1]), "strides": .ints([2, 2])]),
            ("channel multiplier", [12, 1, 3, 3], ["group": .int(6)]),
        ]
        for (k, (label, weightShape, attributes)) in cases.enumerated() {
            let w = try randomTensor(weightShape, seed: UInt64(80 + k))
            let b = try randomTensor([weightShape[0]], seed: UInt64(90 + k))
            assertMatches(try runBoth("Conv", attributes, inputs: [x, w, b], constants: [1, 2]), "Conv \(label)")
            assertMatches(try runBoth("Conv", attributes, inputs: [x, w], constants: [1]), "Conv \(label) no bias")
        }
        let relu: Attributes = ["activation": .string("Relu"), "pads": .ints([1, 1, 1, 1])]
        let w = try randomTensor([4, 6, 3, 3], seed: 99)
        assertMatches(try runBoth("Conv", relu, inputs: [x, w], constants: [1]), "Conv with fused Relu")
        let clip: Attributes = ["activation": .string("Clip"), "activation_params": .floats([0, 0.5]), "group": .int(6)]
        assertMatches(
            try runBoth("Conv", clip, inputs: [x, try randomTensor([6, 1, 3, 3], seed: 98)], constants: [1]),
            "depthwise Conv with fused Clip")
        let x1 = try randomTensor([3, 4, 17], seed: 71), w1 = try randomTensor([5, 4, 3], seed: 72)
        assertMatches(try runBoth("Conv", ["pads": .ints([1, 1])], inputs: [x1, w1], constants: [1]), "Conv 1-D")
        assertMatches(
            try runBoth("Conv", ["pads": .ints([1, 1, 1, 1])], inputs: [x.cast(to: .float16), w.cast(to: .float16)], constants: [1]),
            "Conv float16")
    }

    func testPooling() throws {
        let x = try randomTensor([2, 3, 9, 10], seed: 100)
        assertMatches(try runBoth("MaxPool", ["kernel_shape": .ints([3, 3]), "strides": .ints([2, 2]), "pads": .ints([1, 1, 1, 1])], inputs: [x], outputs: 1), "MaxPool")
        assertMatches(try runBoth("MaxPool", ["kernel_shape": .ints([2, 3]), "ceil_mode": .int(1), "strides": .ints([2, 2])], inputs: [x], outputs: 1), "MaxPool ceil")
        for include in [0, 1] {
            assertMatches(
                try runBoth(
                    "AveragePool", ["kernel_shape": .ints([3, 3]), "pads": .ints([1, 1, 1, 1]), "count_include_pad": .int(include)],
                    inputs: [x]), "AveragePool count_include_pad \(include)")
        }
        assertMatches(try runBoth("GlobalAveragePool", inputs: [x]), "GlobalAveragePool")
        assertMatches(try runBoth("GlobalMaxPool", inputs: [x]), "GlobalMaxPool")
    }

    func testReductionsOverAnyAxes() throws {
        let x = try randomTensor([3, 4, 5, 6], seed: 110)
        let positive = try Scheduler.runOperator("Abs", inputs: [x])[0]
        for type in ["ReduceSum", "ReduceMean", "ReduceMax", "ReduceMin", "ReduceProd", "ReduceL1", "ReduceL2",
                     "ReduceSumSquare", "ReduceLogSumExp"] {
            for (axes, keep) in [([1, 3], 1), ([0], 0), ([], 1)] {
                let inputs: [Tensor?] = axes.isEmpty ? [x] : [x, Tensor(axes.map(Int64.init))]
                assertMatches(
                    try runBoth(type, ["keepdims": .int(keep)], inputs: inputs, constants: axes.isEmpty ? [] : [1]),
                    "\(type) axes \(axes) keepdims \(keep)")
            }
        }
        assertMatches(try runBoth("ReduceLogSum", inputs: [positive, Tensor([Int64(2)])], constants: [1]), "ReduceLogSum")
        let i = try Tensor([Int64]([4, -2, 9, 1, 0, 7]), shape: [2, 3])
        assertMatches(try runBoth("ReduceSum", inputs: [i, Tensor([Int64(1)])], constants: [1]), "ReduceSum int64")
    }

    func testNormalizations() throws {
        let x = try randomTensor([2, 5, 4, 3], seed: 120, scale: 3)
        let parameters = try (0..<4).map { k -> Tensor in
            let t = try randomTensor([5], seed: UInt64(121 + k))
            return k == 3 ? try Scheduler.runOperator("Abs", inputs: [t])[0] : t
        }
        assertMatches(
            try runBoth("BatchNormalization", ["epsilon": .float(1e-3)], inputs: [x] + parameters, constants: [1, 2, 3, 4], outputs: 1),
            "BatchNormalization")
        let tokens = try randomTensor([2, 7, 300], seed: 130, scale: 2)
        let scale = try randomTensor([300], seed: 131), bias = try randomTensor([300], seed: 132)
        assertMatches(try runBoth("LayerNormalization", inputs: [tokens, scale, bias], constants: [1, 2]), "LayerNorm")
        assertMatches(
            try runBoth("LayerNormalization", ["axis": .int(1)], inputs: [tokens, try randomTensor([7, 300], seed: 133)],
                        constants: [1]), "LayerNorm axis 1 without bias")
        assertMatches(
            try runBoth("LayerNormalization", inputs: [tokens, scale, bias], constants: [1, 2], outputs: 3),
            "LayerNorm with Mean and InvStdDev")
    }

    func testDataMovement() throws {
        let x = try randomTensor([4, 5, 6], seed: 140)
        assertMatches(try runBoth("Expand", inputs: [try randomTensor([5, 1], seed: 141), Tensor([Int64]([3, 5, 4]))], constants: [1]), "Expand")
        assertMatches(
            try runBoth("Slice", inputs: [x, Tensor([Int64]([1, 5])), Tensor([Int64]([3, 0])), Tensor([Int64]([0, 2])), Tensor([Int64]([1, -2]))],
                        constants: [1, 2, 3, 4]), "Slice with a negative step")
        let y = try randomTensor([4, 2, 6], seed: 142)
        assertMatches(try runBoth("Concat", ["axis": .int(1)], inputs: [x, y, x]), "Concat")
        assertMatches(try runBoth("Split", ["axis": .int(2)], inputs: [x, Tensor([Int64]([1, 3, 2]))], constants: [1], outputs: 3), "Split")
        let indices = try Tensor([Int64]([3, -1, 0, 2, 2]), shape: [5])
        assertMatches(try runBoth("Gather", ["axis": .int(1)], inputs: [x, indices], constants: [1]), "Gather")
        assertMatches(try runBoth("Gather", inputs: [x, try Tensor([Int32]([1, 0, 3, 3]), shape: [2, 2])]), "Gather int32 indices")
    }

    func testTheRemainingEngineOperators() throws {
        let x = try randomTensor([2, 3, 5, 6], seed: 170)
        for mode in ["constant", "reflect", "edge", "wrap"] {
            let pads = Tensor([Int64]([0, 1, 2, 1, 0, 0, 1, 3]))
            assertMatches(try runBoth("Pad", ["mode": .string(mode)], inputs: [x, pads, Tensor(scalar: Float(1.5))], constants: [1]), "Pad \(mode)")
        }
        assertMatches(try runBoth("Pad", inputs: [x, Tensor([Int64]([0, 0, -1, 2, 0, -1, 0, -2]))], constants: [1]), "Pad cropping")
        let scale = try randomTensor([3], seed: 171), bias = try randomTensor([3], seed: 172)
        assertMatches(try runBoth("InstanceNormalization", inputs: [x, scale, bias], constants: [1, 2]), "InstanceNormalization")
        let cases: [([Int], Attributes)] = [
            ([3, 4, 3, 3], ["strides": .ints([2, 2]), "pads": .ints([1, 1, 1, 1]), "output_padding": .ints([1, 0])]),
            ([3, 2, 2, 3], ["group": .int(3), "dilations": .ints([2, 1])]),
        ]
        for (k, (weightShape, attributes)) in cases.enumerated() {
            let w = try randomTensor(weightShape, seed: UInt64(173 + k))
            let b = try randomTensor([weightShape[1] * ((try? attributes.int("group", default: 1)) ?? 1)], seed: 180)
            assertMatches(try runBoth("ConvTranspose", attributes, inputs: [x, w, b], constants: [1, 2]), "ConvTranspose \(k)")
        }
        let x1 = try randomTensor([2, 3, 7], seed: 181), w1 = try randomTensor([3, 2, 3], seed: 182)
        assertMatches(try runBoth("ConvTranspose", ["strides": .ints([3])], inputs: [x1, w1], constants: [1]), "ConvTranspose 1-D")
        let value = try Tensor([Int32]([7]), shape: [1])
        assertMatches(try runBoth("ConstantOfShape", ["value": .tensor(value)], inputs: [Tensor([Int64]([2, 5]))], constants: [0]), "ConstantOfShape")
        assertMatches(try runBoth("Range", inputs: [Tensor(scalar: Float(0.5)), Tensor(scalar: Float(7)), Tensor(scalar: Float(0.3))]), "Range float")
        assertMatches(try runBoth("Range", inputs: [Tensor(scalar: Int64(10)), Tensor(scalar: Int64(-3)), Tensor(scalar: Int64(-4))]), "Range int64")
        let i = try Tensor([Int32]([7, -7, 7, -7, 0, 5]), shape: [6]), j = try Tensor([Int32]([3, 3, -3, -3, 4, 0]), shape: [6])
        for fmod in [0, 1] {
            assertMatches(try runBoth("Mod", ["fmod": .int(fmod)], inputs: [i, j]), "Mod int32 fmod \(fmod)")
        }
        let f = try randomTensor([4, 5], seed: 183, scale: 9), g = try randomTensor([5], seed: 184, scale: 3)
        for fmod in [0, 1] {
            assertMatches(try runBoth("Mod", ["fmod": .int(fmod)], inputs: [f, g]), "Mod float fmod \(fmod)")
        }
        let h = try randomTensor([3, 4, 5], seed: 185)
        for type in ["Sum", "Max", "Min", "Mean"] {
            assertMatches(try runBoth(type, inputs: [f, g, h]), "\(type) of 3")
            assertMatches(try runBoth(type, inputs: [f]), "\(type) of 1")
        }
    }

    func testResizeModes() throws {
        let x = try randomTensor([2, 3, 5, 7], seed: 190)
        let scales = Tensor([Float]([1, 1, 2, 1.5]))
        let sizes = Tensor([Int64]([2, 3, 4, 11]))
        let forms: [Attributes] = [
            ["mode": .string("nearest")],
            ["mode": .string("nearest"), "coordinate_transformation_mode": .string("asymmetric"), "nearest_mode": .string("floor")],
            ["mode": .string("linear")],
            ["mode": .string("linear"), "coordinate_transformation_mode": .string("align_corners")],
            ["mode": .string("linear"), "coordinate_transformation_mode": .string("pytorch_half_pixel")],
            ["mode": .string("cubic"), "cubic_coeff_a": .float(-0.75)],
            ["mode": .string("linear"), "antialias": .int(1)],
        ]
        for (k, attributes) in forms.enumerated() {
            assertMatches(try runBoth("Resize", attributes, inputs: [x, nil, scales], constants: [2]), "Resize scales \(k)")
            assertMatches(try runBoth("Resize", attributes, inputs: [x, nil, nil, sizes], constants: [3]), "Resize sizes \(k)")
        }
        let roi = Tensor([Float]([0, 0, 0.1, -0.2, 1, 1, 0.9, 1.3]))
        assertMatches(
            try runBoth("Resize", ["mode": .string("linear"), "coordinate_transformation_mode": .string("tf_crop_and_resize"),
                                   "extrapolation_value": .float(-3)], inputs: [x, roi, nil, sizes], constants: [1, 3]),
            "Resize tf_crop_and_resize")
    }
}
