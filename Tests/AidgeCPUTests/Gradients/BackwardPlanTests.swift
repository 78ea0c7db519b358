import AidgeCore
import XCTest

/// The scheduler's backward: seeding, accumulation of a value read twice, parameters, and errors.
final class BackwardPlanTests: XCTestCase {
    /// y = relu(x) read by two Relu nodes whose outputs are both graph outputs: dx = (g1 + g2) where x > 0.
    func testValueReadTwiceGetsTheSum() throws {
        _ = cpuRegistered
        let a = Node(Operator("Relu"), name: "a")
        let b = Node(Operator("Relu"), name: "b")
        let c = Node(Operator("Relu"), name: "c")
        try b.setInput(0, from: a)
        try c.setInput(0, from: a)
        let graph = GraphView(nodes: [a, b, c])
        graph.inputs = [GraphInput(name: "x", dtype: .float32, shape: nil, consumers: [(a, 0)])]
        graph.outputs = [GraphOutput(name: "b", node: b), GraphOutput(name: "c", node: c)]
        let x = try Tensor([Float(-1), 2, -3, 4], shape: [4])
        let scheduler = Scheduler(graph)
        let recording = try scheduler.forward([x], mode: PlanMode(recording: true))
        let g1 = try Tensor([Float(1), 10, 100, 1000], shape: [4])
        let g2 = try Tensor([Float(2), 20, 200, 2000], shape: [4])
        let grads = try scheduler.backward(recording, outputGradients: [g1, g2], inputs: [0])
        XCTAssertEqual(try grads[0]?.scalars(as: Float.self), [0, 30, 0, 3000])
        // Only one output seeded.
        let only = try scheduler.backward(recording, outputGradients: [nil, g2], inputs: [0])
        XCTAssertEqual(try only[0]?.scalars(as: Float.self), [0, 20, 0, 2000])
    }

    func testMissingBackwardIsReportedAtBackward() throws {
        _ = cpuRegistered
        // Mod (fmod) has no backward: its gradient is undefined at every jump.
        let node = Node(Operator("Mod", attributes: ["fmod": .int(1)]), name: "remainder")
        let graph = GraphView(nodes: [node])
        graph.updateInputsOutputs()
        let scheduler = Scheduler(graph)
        let x = try Tensor([Float(5)], shape: [1])
        let recording = try scheduler.forward([x, x], mode: PlanMode(recording: true))
        XCTAssertThrowsError(
            try scheduler.backward(recording, outputGradients: [try Tensor([Float(1)], shape: [1])], inputs: [0])
        ) { error in
            XCTAssertTrue("\(error)".contains("Mod") && "\(error)".contains("remainder"), "\(error)")
        }
    }

    /// Every operator that a trainable model uses (the training issue's list) has a CPU backward.
    func testTrainableOperatorsHaveBackward() {
        _ = cpuRegistered
        let required = [
            "Conv", "ConvTranspose", "Gemm", "MatMul", "Add", "Sub", "Mul", "Div", "Pow", "Sum", "Mean", "Max", "Min",
            "Relu", "LeakyRelu", "Sigmoid", "Tanh", "HardSigmoid", "HardSwish", "Gelu", "Softmax", "LogSoftmax", "Erf",
            "Exp", "Log", "Sqrt", "Clip", "PRelu", "MaxPool", "AveragePool", "GlobalAveragePool", "GlobalMaxPool",
            "BatchNormalization", "LayerNormalization", "InstanceNormalization", "Dropout", "Reshape", "Flatten",
            "Transpose", "Concat", "Split", "Slice", "Gather", "Squeeze", "Unsqueeze", "Expand", "Pad", "Resize",
            "ReduceMean", "ReduceSum", "LSTM", "GRU", "Identity", "Where", "Neg", "Abs",
        ]
        let missing = required.filter { KernelRegistry.shared.gradientFactory($0, backend: "cpu") == nil }
        XCTAssertEqual(missing, [], "operators without a backward")
    }

    func testBackwardBeforeForwardIsAnError() throws {
        _ = cpuRegistered
        let node = Node(Operator("Relu"))
        let graph = GraphView(nodes: [node])
        graph.updateInputsOutputs()
        XCTAssertThrowsError(try Scheduler(graph).backward()) { error in
            XCTAssertTrue("\(error)".contains("forward"), "\(error)")
        }
    }
}
