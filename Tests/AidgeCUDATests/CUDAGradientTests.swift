import Aidge
import XCTest

/// Backward kernels on CUDA against the CPU backend's: a recorded forward, then the gradients of every float
/// input from seeded output gradients.
final class CUDAGradientTests: XCTestCase {
    override func setUpWithError() throws { try CUDATestDevice.require() }

    /// Runs forward and backward on both backends; compares outputs and input gradients.
    private func assertGradientsMatch(
        _ type: String, _ attributes: Attributes = [:], inputs: [Tensor?], constants: Set<Int> = [],
        training: Bool = false, _ message: String = "", file: StaticString = #filePath, line: UInt = #line
    ) throws {
        let cpu = try Scheduler.operatorGradients(
            type, attributes, inputs: inputs, constants: constants, outputs: 1, outputGradients: [nil],
            training: training)
        let seed = try randomTensor(cpu.outputs[0].shape, seed: 999)
        let reference = try Scheduler.operatorGradients(
            type, attributes, inputs: inputs, constants: constants, outputs: 1, outputGradients: [seed],
            training: training)
        let device = try Scheduler.operatorGradients(
            type, attributes, inputs: inputs, constants: constants, outputs: 1, outputGradients: [seed],
            training: training, backend: "cuda")
        let label = message.isEmpty ? type : message
        assertMatches((reference.outputs, try device.outputs.map { try $0.onHost() }), label + " forward", file: file, line: line)
        for (k, (r, d)) in zip(reference.inputGradients, device.inputGradients).enumerated() {
            XCTAssertEqual(r == nil, d == nil, "\(label): gradient \(k) present on one side only", file: file, line: line)
            guard let r, let d else { continue }
            XCTAssertEqual(d.device, .cuda(0), "\(label): gradient \(k) on the device", file: file, line: line)
            assertMatches(([r], [try d.onHost()]), "\(label) gradient of input \(k)", file: file, line: line)
        }
    }

    func testElementwiseAndActivationGradients() throws {
        let a = try randomTensor([3, 4, 5], seed: 200), b = try randomTensor([4, 1], seed: 201, scale: 2)
        let positive = try Scheduler.runOperator("Abs", inputs: [a])[0]
        for type in ["Add", "Sub", "Mul", "Div"] {
            try assertGradientsMatch(type, inputs: [a, b], "\(type) broadcast")
            try assertGradientsMatch(type, inputs: [a, a], "\(type) same shape")
        }
        for type in ["Neg", "Identity", "Relu", "Sigmoid", "Tanh", "Exp", "Abs", "Erf", "Softplus", "LeakyRelu", "Gelu"] {
            try assertGradientsMatch(type, inputs: [a])
        }
        try assertGradientsMatch("Gelu", ["approximate": .string("tanh")], inputs: [a], "Gelu tanh")
        for type in ["Log", "Sqrt", "Reciprocal"] { try assertGradientsMatch(type, inputs: [positive]) }
        let condition = try Scheduler.runOperator("Less", inputs: [a, b])[0]
        try assertGradientsMatch("Where", inputs: [condition, a, b])
    }

    func testLinearAndSoftmaxGradients() throws {
        let cases: [([Int], [Int])] = [([5, 7], [7, 3]), ([2, 4, 5, 7], [7, 3]), ([3, 5, 7], [3, 7, 4]), ([2, 1, 5, 7], [1, 3, 7, 4]), ([7], [7, 3])]
        for (k, (x, y)) in cases.enumerated() {
            try assertGradientsMatch(
                "MatMul", inputs: [try randomTensor(x, seed: UInt64(210 + k)), try randomTensor(y, seed: UInt64(220 + k))],
                "MatMul \(x) x \(y)")
        }
        for (transA, transB) in [(0, 0), (1, 0), (0, 1), (1, 1)] {
            let a = try randomTensor(transA == 1 ? [6, 4] : [4, 6], seed: 230)
            let b = try randomTensor(transB == 1 ? [5, 6] : [6, 5], seed: 231)
            let attributes: Attributes = ["transA": .int(transA), "transB": .int(transB), "alpha": .float(0.5), "beta": .float(2)]
            try assertGradientsMatch("Gemm", attributes, inputs: [a, b, try randomTensor([5], seed: 232)], "Gemm \(transA)\(transB)")
        }
        let x = try randomTensor([3, 40, 5], seed: 240, scale: 4)
        for axis in [-1, 1] {
            try assertGradientsMatch("Softmax", ["axis": .int(axis)], inputs: [x], "Softmax \(axis)")
            try assertGradientsMatch("LogSoftmax", ["axis": .int(axis)], inputs: [x], "LogSoftmax \(axis)")
        }
        try assertGradientsMatch("Reshape", inputs: [x, Tensor([Int64]([15, -1]))], constants: [1])
        try assertGradientsMatch("Transpose", ["perm": .ints([2, 0, 1])], inputs: [x])
        try assertGradientsMatch("Concat", ["axis": .int(1)], inputs: [x, try randomTensor([3, 2, 5], seed: 241), x])
        try assertGradientsMatch("Expand", inputs: [try randomTensor([4, 1], seed: 242), Tensor([Int64]([3, 4, 6]))], constants: [1])
    }

    func testConvolutionAndPoolingGradients() throws {
        let x = try randomTensor([2, 4, 7, 6], seed: 260)
        let cases: [([Int], Attributes)] = [
            ([3, 4, 3, 3], ["pads": .ints([1, 1, 1, 1])]),
            ([5, 4, 3, 2], ["strides": .ints([2, 1]), "dilations": .ints([2, 1]), "pads": .ints([0, 1, 2, 0])]),
            ([6, 2, 3, 3], ["group": .int(2)]),
            ([4, 1, 3, 3], ["group": .int(4), "pads": .ints([1, 1, 1, 1])]),
        ]
        for (k, (shape, attributes)) in cases.enumerated() {
            let w = try randomTensor(shape, seed: UInt64(261 + k)), b = try randomTensor([shape[0]], seed: UInt64(270 + k))
            try assertGradientsMatch("Conv", attributes, inputs: [x, w, b], "Conv \(k)")
        }
        try assertGradientsMatch(
            "MaxPool", ["kernel_shape": .ints([3, 3]), "strides": .ints([2, 2]), "pads": .ints([1, 1, 1, 1])], inputs: [x])
        for include in [0, 1] {
            try assertGradientsMatch(
                "AveragePool", ["kernel_shape": .ints([3, 2]), "pads": .ints([1, 0, 1, 1]), "count_include_pad": .int(include)],
                inputs: [x], "AveragePool count_include_pad \(include)")
        }
        try assertGradientsMatch("GlobalAveragePool", inputs: [x])
    }

    func testBatchNormalizationInTrainingAndEvaluation() throws {
        let x = try randomTensor([3, 4, 5, 2], seed: 280, scale: 3)
        let parameters = try (0..<4).map { k -> Tensor in
            let t = try randomTensor([4], seed: UInt64(281 + k))
            return k == 3 ? try Scheduler.runOperator("Abs", inputs: [t])[0] : t
        }
        for training in [true, false] {
            try assertGradientsMatch(
                "BatchNormalization", ["momentum": .float(0.8)], inputs: [x] + parameters, constants: [3, 4],
                training: training, "BatchNormalization training \(training)")
        }
    }

    func testTransformerOperatorGradients() throws {
        let tokens = try randomTensor([2, 5, 96], seed: 290, scale: 2)
        let scale = try randomTensor([96], seed: 291), bias = try randomTensor([96], seed: 292)
        try assertGradientsMatch("LayerNormalization", inputs: [tokens, scale, bias], "LayerNormalization")
        try assertGradientsMatch("LayerNormalization", ["axis": .int(1)], inputs: [tokens, try randomTensor([5, 96], seed: 293)],
                                 "LayerNormalization axis 1 without bias")
        let table = try randomTensor([10, 6], seed: 294)
        try assertGradientsMatch("Gather", inputs: [table, Tensor([Int64]([3, -1, 3, 0, 9]))], constants: [1], "Gather repeated")
        try assertGradientsMatch("Gather", ["axis": .int(1)], inputs: [table, try Tensor([Int32]([1, 1, 5]), shape: [3])], constants: [1])
        let x = try randomTensor([4, 6, 5], seed: 295)
        try assertGradientsMatch(
            "Slice", inputs: [x, Tensor([Int64]([1, 5])), Tensor([Int64]([4, 0])), Tensor([Int64]([0, 1])), Tensor([Int64]([2, -2]))],
            constants: [1, 2, 3, 4], "Slice")
        let split = try Scheduler.operatorGradients(
            "Split", ["axis": .int(1)], inputs: [x, Tensor([Int64]([2, 4]))], constants: [1], outputs: 2,
            outputGradients: [try randomTensor([4, 2, 5], seed: 296), try randomTensor([4, 4, 5], seed: 297)])
        let device = try Scheduler.operatorGradients(
            "Split", ["axis": .int(1)], inputs: [x, Tensor([Int64]([2, 4]))], constants: [1], outputs: 2,
            outputGradients: [try randomTensor([4, 2, 5], seed: 296), try randomTensor([4, 4, 5], seed: 297)],
            backend: "cuda")
        assertMatches(([try XCTUnwrap(split.inputGradients[0])], [try XCTUnwrap(device.inputGradients[0]).onHost()]), "Split")
    }

    func testDropoutTrainsOnTheDevice() throws {
        let x = try Scheduler.runOperator("Abs", inputs: [try randomTensor([100, 100], seed: 253)])[0]
        let dy = try randomTensor([100, 100], seed: 254)
        let ratio = Tensor(scalar: Float(0.3))
        func run(seed: Int) throws -> (y: [Float], dx: [Float]) {
            let r = try Scheduler.operatorGradients(
                "Dropout", ["seed": .int(seed)], inputs: [x, ratio], constants: [1], outputs: 1, outputGradients: [dy],
                training: true, backend: "cuda")
            return (try r.outputs[0].onHost().scalars(), try XCTUnwrap(r.inputGradients[0]).onHost().scalars())
        }
        let (y, dx) = try run(seed: 7)
        let xs = try x.scalars(as: Float.self), gs = try dy.scalars(as: Float.self)
        let dropped = y.filter { $0 == 0 }.count
        XCTAssertEqual(Double(dropped) / Double(y.count), 0.3, accuracy: 0.02, "the ratio of dropped elements")
        for i in 0..<y.count {
            let kept = y[i] != 0
            XCTAssertEqual(y[i], kept ? xs[i] / 0.7 : 0, accuracy: 1e-5 * max(1, abs(y[i])), "element \(i)")
            XCTAssertEqual(dx[i], kept ? gs[i] / 0.7 : 0, accuracy: 1e-5 * max(1, abs(dx[i])), "the mask of element \(i) again")
        }
        XCTAssertEqual(try run(seed: 7).y, y, "the same seed draws the same mask")
        XCTAssertNotEqual(try run(seed: 8).y, y, "another seed draws another mask")
        let evaluation = try Scheduler.operatorGradients(
            "Dropout", inputs: [x, ratio], constants: [1], outputs: 1, outputGradients: [dy], training: false, backend: "cuda")
        XCTAssertEqual(try evaluation.outputs[0].onHost().scalars(as: Float.self), xs, "identity in evaluation")
    }

    func testTrainingModeNeedsAnOperatorsTrainingForm() throws {
        // A backend with Dropout's inference kernel alone: training refuses it instead of running the identity.
        KernelRegistry.shared.register("Dropout", backend: "inference-only") { _ in IdentityKernel() }
        let x = try randomTensor([4, 6], seed: 255)
        XCTAssertTrue(
            errorMessage {
                try Scheduler.operatorGradients(
                    "Dropout", inputs: [x], outputs: 1, outputGradients: [x], training: true, backend: "inference-only")
            }.contains("has no training form on the inference-only backend"))
    }

    func testAnOperatorWithoutACUDABackwardIsAClearError() throws {
        let x = try randomTensor([2, 6], seed: 250)
        XCTAssertTrue(
            errorMessage {
                try Scheduler.operatorGradients(
                    "ReduceMean", inputs: [x], outputs: 1, outputGradients: [try randomTensor([1, 1], seed: 252)],
                    backend: "cuda")
            }.contains("ReduceMean"), "names the operator")
    }
}

/// Copies its input: an inference kernel with no training form.
private final class IdentityKernel: Kernel {
    func run(_ inputs: [Tensor?], _ outputs: [Tensor]) throws {
        guard let x = inputs.first ?? nil else { return }
        copyElements(from: x, to: outputs[0])
    }
}
