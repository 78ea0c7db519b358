import AidgeCore
import XCTest

/// Backward of BatchNormalization (training and evaluation), LayerNormalization and InstanceNormalization
/// against finite differences in float64, and BatchNormalization's running statistics.
final class NormalizationGradientTests: XCTestCase {
    // MARK: BatchNormalization

    /// x, scale, B, running mean, running variance for an input of `shape`.
    private func batchNormInputs(_ shape: [Int], seed: UInt64 = 1) -> [Tensor?] {
        let c = shape[1]
        return [
            randomTensor(shape, seed: seed, scale: 2, shift: 0.5), randomTensor([c], seed: seed + 1, shift: 1),
            randomTensor([c], seed: seed + 2), randomTensor([c], seed: seed + 3),
            randomTensor([c], seed: seed + 4, scale: 0.5, shift: 1),
        ]
    }

    func testBatchNormTrainingGradients() throws {
        // Planes shorter than a vector and longer than four.
        // Only output 0 is seeded: the running statistics carry no gradient.
        try checkGradients("BatchNormalization", inputs: batchNormInputs([3, 2, 3, 2]), seeded: [0], training: true)
        try checkGradients(
            "BatchNormalization", ["epsilon": .float(1e-3)], inputs: batchNormInputs([2, 3, 6, 7], seed: 5),
            outputCount: 3, seeded: [0], training: true)
        try checkGradients("BatchNormalization", inputs: batchNormInputs([5, 4], seed: 9), seeded: [0], training: true)
    }

    /// Evaluation mode: the running statistics normalise, backward is affine.
    func testBatchNormEvaluationGradients() throws {
        try checkGradients("BatchNormalization", inputs: batchNormInputs([2, 3, 4, 5]))
        try checkGradients("BatchNormalization", inputs: batchNormInputs([4, 3], seed: 3))
    }

    /// Batch statistics, and the running ones updated in place with the unbiased variance (PyTorch's rule),
    /// also written to the optional outputs 1 and 2.
    func testBatchNormRunningStatistics() throws {
        _ = cpuRegistered
        let shape = [3, 2, 2, 5]
        let inputs = batchNormInputs(shape, seed: 21)
        let x = inputs[0]!.doubles()
        let (scale, bias) = (inputs[1]!.doubles(), inputs[2]!.doubles())
        let (mean0, variance0) = (inputs[3]!.doubles(), inputs[4]!.doubles())
        let momentum = 0.8
        let (outputs, _) = try Scheduler.operatorGradients(
            "BatchNormalization", ["momentum": .float(Float(momentum)), "epsilon": .float(1e-4)], inputs: inputs,
            outputs: 3, outputGradients: [nil, nil, nil], training: true)
        let y = outputs[0].doubles()
        for c in 0..<2 {
            let indices = (0..<x.count).filter { ($0 / 10) % 2 == c }
            let values = indices.map { x[$0] }
            let mean = values.reduce(0, +) / Double(values.count)
            let variance = values.reduce(0) { $0 + ($1 - mean) * ($1 - mean) } / Double(values.count)
            for i in indices {
                XCTAssertEqual(
                    y[i], (x[i] - mean) / (variance + 1e-4).squareRoot() * scale[c] + bias[c], accuracy: 1e-6)
            }
            let runningMean = mean0[c] * momentum + mean * (1 - momentum)
            let runningVariance = variance0[c] * momentum + variance * 30 / 29 * (1 - momentum)
            XCTAssertEqual(inputs[3]!.doubles()[c], runningMean, accuracy: 1e-7)
            XCTAssertEqual(inputs[4]!.doubles()[c], runningVariance, accuracy: 1e-7)
            XCTAssertEqual(outputs[1].doubles()[c], runningMean, accuracy: 1e-7)
            XCTAssertEqual(outputs[2].doubles()[c], runningVariance, accuracy: 1e-7)
        }
    }

    /// In a model, the running statistics are Producers: a training run updates them in place, evaluation then
    /// normalises with them; backward fills the parameters' gradients (not the statistics').
    func testBatchNormRunningStatisticsOfAModel() throws {
        _ = cpuRegistered
        let inputs = batchNormInputs([4, 2, 3], seed: 51)
        let node = Node(Operator("BatchNormalization", attributes: ["momentum": .float(0.5)]), name: "bn")
        let producers = (1...4).map { Node.producer(inputs[$0]!.copy(), name: "p\($0)") }
        for (i, p) in producers.enumerated() { try node.setInput(i + 1, from: p) }
        let graph = GraphView(nodes: [node])
        graph.add(node)
        graph.inputs = [GraphInput(name: "x", dtype: .float64, shape: nil, consumers: [(node, 0)])]
        graph.outputs = [GraphOutput(name: "y", node: node)]
        let scheduler = Scheduler(graph)
        graph.train()
        let y = try scheduler.forward([inputs[0]!])[0]
        let (reference, _) = try Scheduler.operatorGradients(
            "BatchNormalization", ["momentum": .float(0.5)], inputs: inputs, outputGradients: [nil], training: true)
        XCTAssertEqual(y.doubles(), reference[0].doubles())
        for i in 3...4 {
            XCTAssertEqual(producers[i - 1].producedTensor?.doubles(), inputs[i]!.doubles())
            XCTAssertNotEqual(producers[i - 1].producedTensor?.doubles(), batchNormInputs([4, 2, 3], seed: 51)[i]!.doubles())
        }
        // Backward: gradients for scale and B only.
        _ = try scheduler.backward(try XCTUnwrap(scheduler.lastRecording), outputGradients: [randomTensor([4, 2, 3], seed: 52)])
        XCTAssertNotNil(producers[0].producedTensor?.gradient)
        XCTAssertNotNil(producers[1].producedTensor?.gradient)
        // Evaluation uses the updated running statistics.
        graph.eval()
        let evaluated = try scheduler.forward([inputs[0]!])[0]
        let expected = try Scheduler.runOperator("BatchNormalization", inputs: inputs)[0]
        XCTAssertEqual(evaluated.doubles(), expected.doubles())
    }

    /// Running statistics that are constants are read, not written.
    func testBatchNormConstantStatisticsStayUnchanged() throws {
        _ = cpuRegistered
        let inputs = batchNormInputs([2, 3, 4], seed: 31)
        let before = (inputs[3]!.doubles(), inputs[4]!.doubles())
        _ = try Scheduler.operatorGradients(
            "BatchNormalization", inputs: inputs, constants: [3, 4], outputGradients: [randomTensor([2, 3, 4])],
            training: true)
        XCTAssertEqual(inputs[3]!.doubles(), before.0)
        XCTAssertEqual(inputs[4]!.doubles(), before.1)
    }

    func testBatchNormTrainingNeedsMoreThanOneValuePerChannel() throws {
        _ = cpuRegistered
        XCTAssertThrowsError(
            try Scheduler.operatorGradients(
                "BatchNormalization", inputs: batchNormInputs([1, 3]), outputGradients: [randomTensor([1, 3])],
                training: true)
        ) { error in XCTAssertTrue("\(error)".contains("more than one value"), "\(error)") }
    }

    /// Float32: the training forward matches the double computation, the gradient too.
    func testBatchNormFloat32Training() throws {
        _ = cpuRegistered
        let shape = [4, 3, 5, 6]
        let inputs64 = batchNormInputs(shape, seed: 41)
        let inputs32 = try inputs64.map { try $0.map { try Tensor($0.doubles().map(Float.init), shape: $0.shape) } }
        let dy = randomTensor(shape, seed: 42)
        let dy32 = try Tensor(dy.doubles().map(Float.init), shape: shape)
        let (out64, grads64) = try Scheduler.operatorGradients(
            "BatchNormalization", inputs: inputs64, outputGradients: [dy], training: true)
        let (out32, grads32) = try Scheduler.operatorGradients(
            "BatchNormalization", inputs: inputs32, outputGradients: [dy32], training: true)
        for (a, b) in zip(out32[0].doubles(), out64[0].doubles()) { XCTAssertEqual(a, b, accuracy: 1e-5) }
        for i in 0..<3 {
            for (a, b) in zip(grads32[i]!.doubles(), grads64[i]!.doubles()) { XCTAssertEqual(a, b, accuracy: 1e-4) }
        }
        for i in 3..<5 {
            for (a, b) in zip(inputs32[i]!.doubles(), inputs64[i]!.doubles()) { XCTAssertEqual(a, b, accuracy: 1e-6) }
        }
    }

    // MARK: LayerNormalization

    func testLayerNormGradients() throws {
        try checkGradients(
            "LayerNormalization", inputs: [randomTensor([3, 4, 10]), randomTensor([10], seed: 2, shift: 1),
                                           randomTensor([10], seed: 3)])
        // Two normalised axes, a broadcast scale, no bias.
        try checkGradients(
            "LayerNormalization", ["axis": .int(1)],
            inputs: [randomTensor([2, 3, 9], seed: 4), randomTensor([1, 9], seed: 5, shift: 1)])
        // Scale with a leading 1, bias broadcast along the first normalised axis.
        try checkGradients(
            "LayerNormalization", ["axis": .int(-2), "epsilon": .float(1e-3)],
            inputs: [randomTensor([5, 3, 4], seed: 6), randomTensor([1, 3, 4], seed: 7, shift: 1),
                     randomTensor([4], seed: 8)])
    }

    /// The Mean and InvStdDev outputs reach the loss too (float64 with stash_type 0).
    func testLayerNormStatisticsOutputs() throws {
        try checkGradients(
            "LayerNormalization", ["stash_type": .int(0)],
            inputs: [randomTensor([4, 12], seed: 9), randomTensor([12], seed: 10, shift: 1), randomTensor([12], seed: 11)],
            outputCount: 3)
        try checkGradients(
            "LayerNormalization", ["stash_type": .int(0), "axis": .int(0)],
            inputs: [randomTensor([3, 5], seed: 12), randomTensor([3, 5], seed: 13, shift: 1)], outputCount: 3,
            seeded: [1, 2])
    }

    // MARK: InstanceNormalization

    func testInstanceNormGradients() throws {
        try checkGradients(
            "InstanceNormalization",
            inputs: [randomTensor([2, 3, 4, 5]), randomTensor([3], seed: 2, shift: 1), randomTensor([3], seed: 3)])
        try checkGradients(
            "InstanceNormalization", ["epsilon": .float(1e-2)],
            inputs: [randomTensor([3, 2, 37], seed: 4), randomTensor([2], seed: 5, shift: 1), randomTensor([2], seed: 6)])
    }
}
