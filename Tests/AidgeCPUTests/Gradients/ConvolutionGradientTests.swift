import AidgeCore
import XCTest

/// Conv in float64 against finite differences (with W and B as graph inputs, unknown when the plan is built),
/// and the float32 kernels with `checkFloat32Gradients`; ConvTranspose, which has no float64 forward, in float32.
final class ConvolutionGradientTests: XCTestCase {
    private func conv(
        _ x: [Int], _ w: [Int], bias: Bool = true, _ attributes: Attributes = [:], constants: Set<Int> = [],
        float32: Bool = true, file: StaticString = #filePath, line: UInt = #line
    ) throws {
        var inputs: [Tensor?] = [randomTensor(x, seed: 1), randomTensor(w, seed: 2, scale: 0.5)]
        if bias { inputs.append(randomTensor([w[0]], seed: 3)) }
        try checkGradients("Conv", attributes, inputs: inputs, constants: constants, file: file, line: line)
        if float32 {
            try checkFloat32Gradients("Conv", attributes, inputs: inputs, constants: constants, file: file, line: line)
        }
    }

    func testConv2DPadded() throws {
        try conv([2, 3, 5, 6], [4, 3, 3, 3], ["pads": .ints([1, 1, 1, 1])])
    }

    func testConv2DStridesDilationsAsymmetricPads() throws {
        try conv(
            [2, 2, 7, 8], [3, 2, 3, 2],
            ["strides": .ints([2, 3]), "dilations": .ints([2, 1]), "pads": .ints([0, 1, 2, 0])])
        try conv([1, 2, 6, 6], [2, 2, 2, 2], bias: false, ["strides": .ints([2, 2]), "pads": .ints([1, 0, 0, 1])])
    }

    func testConvAutoPad() throws {
        for mode in ["SAME_UPPER", "SAME_LOWER", "VALID"] {
            try conv([2, 2, 6, 5], [3, 2, 3, 2], ["auto_pad": .string(mode), "strides": .ints([2, 1])], float32: false)
        }
        try conv([1, 2, 5, 5], [2, 2, 2, 2], ["auto_pad": .string("SAME_LOWER")])
    }

    func testConvGroups() throws {
        try conv([2, 4, 5, 5], [6, 2, 3, 3], ["group": .int(2), "pads": .ints([1, 1, 1, 1])])
    }

    func testConvDepthwise() throws {
        try conv([2, 3, 6, 6], [3, 1, 3, 3], ["group": .int(3), "pads": .ints([1, 1, 1, 1])])
        // Channel multiplier 2, stride 2, dilation.
        try conv(
            [2, 2, 7, 6], [4, 1, 3, 2],
            ["group": .int(2), "strides": .ints([2, 2]), "dilations": .ints([1, 2]), "pads": .ints([1, 0, 1, 2])])
    }

    /// Each path of the bordered-plane loops: unit strides, a row stride, a column stride; 1-D and 3-D.
    func testConvDepthwiseStridesAndRanks() throws {
        try conv([2, 2, 6, 7], [2, 1, 3, 3], ["group": .int(2), "strides": .ints([2, 1]), "pads": .ints([1, 1, 0, 1])])
        try conv([2, 2, 6, 7], [2, 1, 2, 3], ["group": .int(2), "strides": .ints([1, 2]), "dilations": .ints([2, 1])])
        // The last input row and column are past every window (stride 2 over 7 with a 2-tap kernel).
        try conv([1, 2, 7, 7], [2, 1, 2, 2], ["group": .int(2), "strides": .ints([2, 2])])
        try conv([2, 3, 9], [6, 1, 3], ["group": .int(3), "strides": .ints([2]), "pads": .ints([2, 1])])
        try conv(
            [1, 2, 4, 4, 5], [4, 1, 2, 3, 2],
            [
                "group": .int(2), "strides": .ints([2, 1, 1]), "pads": .ints([1, 1, 0, 0, 1, 1]),
                "dilations": .ints([1, 1, 2]),
            ])
    }

    func testConvPointwise() throws {
        try conv([2, 3, 4, 4], [5, 3, 1, 1])
        try conv([2, 4, 3, 3], [4, 2, 1, 1], ["group": .int(2)])
    }

    /// Unit strides (the wide layout) with dilations on both axes and a one-sided pad.
    func testConvUnitStrideDilated() throws {
        try conv([2, 3, 7, 8], [2, 3, 2, 3], ["dilations": .ints([3, 2]), "pads": .ints([0, 1, 0, 0])])
    }

    func testConvSingleInputChannel() throws {
        try conv([3, 1, 6, 6], [4, 1, 3, 3], ["pads": .ints([1, 1, 1, 1])])
    }

    func testConv1D() throws {
        try conv([2, 3, 9], [4, 3, 3], ["strides": .ints([2]), "pads": .ints([1, 2]), "dilations": .ints([2])])
        try conv([2, 4, 8], [4, 1, 3], ["group": .int(4), "pads": .ints([1, 1])])
        try conv([2, 3, 10], [2, 3, 3], ["dilations": .ints([3]), "pads": .ints([2, 0])])
    }

    func testConv3D() throws {
        try conv([1, 2, 4, 5, 4], [3, 2, 2, 3, 2], ["pads": .ints([1, 0, 1, 0, 1, 0]), "strides": .ints([1, 2, 1])])
        // Unit strides (the wide layout), with a dilation and end pads.
        try conv([2, 2, 4, 5, 4], [3, 2, 2, 3, 2], ["pads": .ints([1, 0, 1, 0, 2, 1]), "dilations": .ints([2, 1, 1])])
    }

    /// A first layer: the image needs no gradient.
    func testConvConstantInput() throws {
        try conv([2, 3, 5, 5], [4, 3, 3, 3], ["pads": .ints([1, 1, 1, 1])], constants: [0])
        try conv([2, 3, 5, 5], [3, 1, 3, 3], ["group": .int(3)], constants: [0])
    }

    /// More images than threads, and a batch of one: the batch split over threads and the single-part path.
    func testConvBatchSplits() throws {
        try conv([9, 2, 4, 4], [3, 2, 3, 3], ["pads": .ints([1, 1, 1, 1])], float32: false)
        try conv([1, 3, 5, 5], [4, 3, 3, 3], ["pads": .ints([1, 1, 1, 1])])
    }

    /// Large enough for the float32 GEMMs to use their full tiles and several K blocks (a 20x19 image), one
    /// image (GEMMs split over threads) and a strided case; compared with the float64 backward.
    func testConvFloat32MatchesFloat64() throws {
        _ = cpuRegistered
        let cases: [([Int], [Int], Attributes)] = [
            ([4, 16, 10, 10], [32, 16, 3, 3], ["pads": .ints([1, 1, 1, 1])]),
            ([2, 5, 20, 19], [12, 5, 3, 3], ["pads": .ints([1, 1, 1, 1])]),
            ([1, 8, 24, 24], [40, 8, 3, 3], ["pads": .ints([1, 2, 0, 1])]),
            ([3, 8, 12, 12], [16, 8, 3, 3], ["pads": .ints([1, 1, 1, 1]), "strides": .ints([2, 2])]),
        ]
        for (k, (xs, ws, attributes)) in cases.enumerated() {
            let seed = UInt64(10 * k)
            let inputs = [
                randomTensor(xs, seed: seed + 4), randomTensor(ws, seed: seed + 5, scale: 0.2),
                randomTensor([ws[0]], seed: seed + 6),
            ]
            let (outputs, _) = try Scheduler.operatorGradients(
                "Conv", attributes, inputs: inputs, outputGradients: [nil])
            let dy = randomTensor(outputs[0].shape, seed: seed + 7)
            let (_, reference) = try Scheduler.operatorGradients(
                "Conv", attributes, inputs: inputs, outputGradients: [dy])
            let (_, grads) = try Scheduler.operatorGradients(
                "Conv", attributes, inputs: inputs.map { $0.cast(to: .float32) },
                outputGradients: [dy.cast(to: .float32)])
            for i in 0..<3 {
                let want = reference[i]?.doubles() ?? []
                let got = grads[i]?.doubles() ?? []
                XCTAssertEqual(got.count, want.count)
                let scale = want.map { abs($0) }.max() ?? 1
                for (e, (a, b)) in zip(got, want).enumerated() where abs(a - b) > 1e-5 * scale + 1e-4 * abs(b) {
                    XCTFail("Conv case \(k) float32 gradient of input \(i)[\(e)]: \(a) vs float64 \(b)")
                    break
                }
            }
        }
    }

    private func convTranspose(
        _ x: [Int], _ w: [Int], outChannels: Int, bias: Bool = true, _ attributes: Attributes = [:],
        file: StaticString = #filePath, line: UInt = #line
    ) throws {
        var inputs: [Tensor?] = [randomTensor(x, seed: 11), randomTensor(w, seed: 12, scale: 0.5)]
        if bias { inputs.append(randomTensor([outChannels], seed: 13)) }
        try checkFloat32Gradients("ConvTranspose", attributes, inputs: inputs, file: file, line: line)
    }

    func testConvTransposeBasic() throws {
        try convTranspose([2, 3, 4, 5], [3, 2, 3, 3], outChannels: 2)
    }

    func testConvTransposeStridesPadsOutputPadding() throws {
        try convTranspose(
            [2, 2, 3, 4], [2, 3, 3, 2], outChannels: 3,
            ["strides": .ints([2, 3]), "pads": .ints([1, 0, 0, 1]), "output_padding": .ints([1, 2])])
        try convTranspose(
            [1, 2, 4, 4], [2, 2, 3, 3], outChannels: 2, bias: false,
            ["dilations": .ints([2, 1]), "pads": .ints([1, 1, 2, 0])])
    }

    func testConvTransposeGroups() throws {
        try convTranspose([2, 4, 3, 3], [4, 3, 2, 2], outChannels: 6, ["group": .int(2), "strides": .ints([2, 2])])
        try convTranspose([2, 3, 4, 4], [3, 1, 3, 3], outChannels: 3, ["group": .int(3), "pads": .ints([1, 1, 1, 1])])
    }

    func testConvTransposeAutoPadAndOutputShape() throws {
        for mode in ["SAME_UPPER", "SAME_LOWER"] {
            try convTranspose(
                [1, 2, 3, 3], [2, 2, 3, 3], outChannels: 2, ["auto_pad": .string(mode), "strides": .ints([2, 2])])
        }
        try convTranspose(
            [1, 2, 3, 3], [2, 2, 3, 3], outChannels: 2, ["output_shape": .ints([6, 7]), "strides": .ints([2, 2])])
    }

    func testConvTranspose1DAnd3D() throws {
        try convTranspose(
            [2, 3, 5], [3, 2, 3], outChannels: 2,
            ["strides": .ints([2]), "pads": .ints([1, 0]), "output_padding": .ints([1])])
        try convTranspose(
            [1, 2, 2, 3, 2], [2, 2, 2, 2, 3], outChannels: 2,
            ["strides": .ints([2, 1, 2]), "pads": .ints([0, 1, 0, 0, 0, 1])])
    }
}
