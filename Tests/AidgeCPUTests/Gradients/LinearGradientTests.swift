import AidgeCore
import XCTest

/// Checks the float32 backward of an operator that is linear in each input separately (matrix products,
/// convolutions): for such an operator a central difference is exact at any step, so float32 finite differences
/// with a large step measure the float32 kernels (the packed GEMM paths, not the float64 loops) up to rounding.
///
/// Also checks that the recorded forward, where the non-constant inputs (weights included) are unknown when the
/// plan is built, matches the forward with every input a constant (weights prepacked).
func checkFloat32Gradients(
    _ type: String, _ attributes: Attributes = [:], inputs: [Tensor?], constants: Set<Int> = [], step: Float = 0.5,
    atol: Double = 1e-4, rtol: Double = 1e-4, file: StaticString = #filePath, line: UInt = #line
) throws {
    _ = cpuRegistered
    let ins = inputs.map { $0?.cast(to: .float32) }
    let folded = try Scheduler.runOperator(type, attributes, inputs: ins, constants: Set(ins.indices))
    let seeds: [Tensor?] = folded.enumerated().map { k, out in
        randomTensor(out.shape, seed: 2000 + UInt64(k)).cast(to: .float32)
    }
    func objective(_ values: [Tensor?]) throws -> Double {
        let outs = try Scheduler.runOperator(type, attributes, inputs: values, constants: constants)
        var sum = 0.0
        for (out, seed) in zip(outs, seeds) {
            guard let seed else { continue }
            for (a, b) in zip(out.doubles(), seed.doubles()) { sum += a * b }
        }
        return sum
    }
    let (outputs, analytic) = try Scheduler.operatorGradients(
        type, attributes, inputs: ins, constants: constants, outputGradients: seeds)
    for (k, (out, reference)) in zip(outputs, folded).enumerated() {
        let (o, r) = (out.doubles(), reference.doubles())
        let scale = r.map { abs($0) }.max() ?? 0
        for e in o.indices where !(abs(o[e] - r[e]) <= 1e-5 * scale + 1e-5 * abs(r[e])) {
            XCTFail(
                "\(type): recorded output \(k)[\(e)] \(o[e]), constant-input forward \(r[e])", file: file, line: line)
            return
        }
    }
    for (i, input) in ins.enumerated() {
        guard let input, !constants.contains(i) else { continue }
        guard let gradient = analytic[i] else {
            XCTFail("\(type): no gradient for input \(i)", file: file, line: line)
            continue
        }
        XCTAssertEqual(gradient.shape, input.shape, "\(type): gradient shape of input \(i)", file: file, line: line)
        let got = gradient.doubles()
        let scale = got.map { abs($0) }.max() ?? 0
        var values = try input.scalars(as: Float.self)
        for e in values.indices {
            let saved = values[e]
            var perturbed = ins
            values[e] = saved + step
            perturbed[i] = try Tensor(values, shape: input.shape)
            let plus = try objective(perturbed)
            values[e] = saved - step
            perturbed[i] = try Tensor(values, shape: input.shape)
            let minus = try objective(perturbed)
            values[e] = saved
            let numeric = (plus - minus) / (2 * Double(step))
            if !(abs(got[e] - numeric) <= atol * max(scale, 1) + rtol * abs(numeric)) {
                XCTFail(
                    "\(type) float32: d/d input \(i)[\(e)]: backward \(got[e]), finite difference \(numeric)",
                    file: file, line: line)
                return
            }
        }
    }
}

final class LinearGradientTests: XCTestCase {
    func testGemmPlain() throws {
        try checkGradients("Gemm", inputs: [randomTensor([3, 4], seed: 1), randomTensor([4, 5], seed: 2)])
    }

    func testGemmTransposesAlphaBeta() throws {
        for (ta, tb) in [(0, 0), (1, 0), (0, 1), (1, 1)] {
            let a = randomTensor(ta == 1 ? [4, 3] : [3, 4], seed: 3)
            let b = randomTensor(tb == 1 ? [5, 4] : [4, 5], seed: 4)
            let attributes: Attributes = [
                "transA": .int(ta), "transB": .int(tb), "alpha": .float(0.5), "beta": .float(1.5),
            ]
            try checkGradients("Gemm", attributes, inputs: [a, b, randomTensor([3, 5], seed: 5)])
            try checkFloat32Gradients("Gemm", attributes, inputs: [a, b, randomTensor([3, 5], seed: 5)])
        }
    }

    func testGemmBroadcastC() throws {
        let a = randomTensor([3, 4], seed: 6)
        let b = randomTensor([5, 4], seed: 7)
        for cShape in [[5], [1, 5], [3, 1], [1], [1, 1], [3, 5]] {
            let attributes: Attributes = ["transB": .int(1), "beta": .float(2)]
            try checkGradients("Gemm", attributes, inputs: [a, b, randomTensor(cShape, seed: 8)])
        }
        try checkGradients(
            "Gemm", ["beta": .float(0)], inputs: [a, randomTensor([4, 5], seed: 9), randomTensor([5], seed: 8)])
    }

    func testGemmScalarC() throws {
        let c = try Tensor([0.25], shape: [])
        try checkGradients("Gemm", inputs: [randomTensor([2, 3], seed: 10), randomTensor([3, 4], seed: 11), c])
    }

    /// A fully-connected layer whose input needs no gradient (a first layer): only W and the bias get one.
    func testGemmConstantInput() throws {
        let x = randomTensor([6, 8], seed: 12)
        let w = randomTensor([5, 8], seed: 13)
        let bias = randomTensor([5], seed: 14)
        try checkGradients("Gemm", ["transB": .int(1)], inputs: [x, w, bias], constants: [0])
        try checkFloat32Gradients("Gemm", ["transB": .int(1)], inputs: [x, w, bias], constants: [0])
    }

    /// Large enough that the float32 GEMMs split over threads.
    func testGemmLargeFloat32() throws {
        let x = randomTensor([32, 96], seed: 15)
        let w = randomTensor([70, 96], seed: 16)
        let (_, grads) = try Scheduler.operatorGradients(
            "Gemm", ["transB": .int(1)], inputs: [x.cast(to: .float32), w.cast(to: .float32)],
            outputGradients: [randomTensor([32, 70], seed: 17).cast(to: .float32)])
        let (_, reference) = try Scheduler.operatorGradients(
            "Gemm", ["transB": .int(1)], inputs: [x, w], outputGradients: [randomTensor([32, 70], seed: 17)])
        for i in 0..<2 {
            let got = grads[i]?.doubles() ?? []
            let want = reference[i]?.doubles() ?? []
            XCTAssertEqual(got.count, want.count)
            for (g, r) in zip(got, want) { XCTAssertEqual(g, r, accuracy: 1e-4 * max(1, abs(r))) }
        }
    }

    func testMatMulMatrices() throws {
        try checkGradients("MatMul", inputs: [randomTensor([3, 4], seed: 20), randomTensor([4, 5], seed: 21)])
        try checkFloat32Gradients("MatMul", inputs: [randomTensor([3, 4], seed: 20), randomTensor([4, 5], seed: 21)])
    }

    func testMatMulVectors() throws {
        try checkGradients("MatMul", inputs: [randomTensor([4], seed: 22), randomTensor([4, 5], seed: 23)])
        try checkGradients("MatMul", inputs: [randomTensor([3, 4], seed: 24), randomTensor([4], seed: 25)])
        try checkGradients("MatMul", inputs: [randomTensor([4], seed: 26), randomTensor([4], seed: 27)])
        try checkGradients("MatMul", inputs: [randomTensor([4], seed: 28), randomTensor([2, 4, 3], seed: 29)])
        try checkGradients("MatMul", inputs: [randomTensor([2, 3, 4], seed: 30), randomTensor([4], seed: 31)])
        try checkFloat32Gradients("MatMul", inputs: [randomTensor([4], seed: 28), randomTensor([2, 4, 3], seed: 29)])
    }

    func testMatMulBatched() throws {
        let cases: [([Int], [Int])] = [
            ([2, 3, 4, 5], [5, 6]), ([4, 5], [2, 3, 5, 6]), ([3, 1, 4, 5], [1, 2, 5, 6]), ([2, 3, 4], [2, 4, 5]),
            ([2, 1, 3, 4], [3, 4, 2]), ([1, 3, 4], [2, 1, 4, 2]),
            ([3, 2, 9, 12], [3, 2, 12, 17]),  // attention-sized: 4-row blocks, 8-column vectors and their edges
        ]
        for (k, (sa, sb)) in cases.enumerated() {
            let a = randomTensor(sa, seed: 40 + UInt64(k))
            let b = randomTensor(sb, seed: 50 + UInt64(k))
            try checkGradients("MatMul", inputs: [a, b])
            try checkFloat32Gradients("MatMul", inputs: [a, b])
        }
    }

    func testMatMulConstantOperand() throws {
        let a = randomTensor([2, 3, 4], seed: 60)
        let b = randomTensor([4, 5], seed: 61)
        try checkGradients("MatMul", inputs: [a, b], constants: [1])
        try checkGradients("MatMul", inputs: [a, b], constants: [0])
    }

    /// The engine's Linear (Y = X Wᵀ + B over X's last axis): backward by finite differences in float64 and
    /// float32, forward against MatMul by the transposed weights plus the bias.
    func testLinear() throws {
        let x = randomTensor([2, 3, 4], seed: 70)
        let w = randomTensor([5, 4], seed: 71)
        let b = randomTensor([5], seed: 72)
        try checkGradients("Linear", inputs: [x, w, b])
        try checkGradients("Linear", inputs: [randomTensor([4], seed: 73), w])
        try checkFloat32Gradients("Linear", inputs: [x, w, b])
        try checkFloat32Gradients("Linear", inputs: [randomTensor([33, 70], seed: 74), randomTensor([37, 70], seed: 75), nil])
        let linear = try Scheduler.runOperator(
            "Linear", inputs: [x, w, b].map { $0.cast(to: .float32) }, constants: [])[0]
        let product = try Scheduler.runOperator(
            "MatMul", inputs: [x.cast(to: .float32), try w.permuted([1, 0]).contiguous().cast(to: .float32)],
            constants: [])[0]
        XCTAssertEqual(linear.shape, [2, 3, 5])
        let bias = b.doubles()
        for (i, (got, want)) in zip(linear.doubles(), product.doubles()).enumerated() {
            XCTAssertEqual(got, want + bias[i % 5], accuracy: 1e-5)
        }
    }

    /// `Recipes.fuseLinear` turns MatMul(X, Transpose(W)) + bias into one Linear on a trainable graph: same outputs
    /// and the same parameter gradients, the weight and bias Producers kept.
    func testFuseLinearRecipeKeepsTraining() throws {
        _ = cpuRegistered
        let x = randomTensor([2, 3, 4], seed: 80).cast(to: .float32)
        func build() throws -> (GraphView, [Node]) {
            let w = Node.producer(randomTensor([5, 4], seed: 81).cast(to: .float32), name: "w")
            let b = Node.producer(randomTensor([5], seed: 82).cast(to: .float32), name: "b")
            let transpose = Node(Operator("Transpose", attributes: ["perm": .ints([1, 0])]))
            try transpose.setInput(0, from: w)
            let matmul = Node(Operator("MatMul"))
            try matmul.setInput(1, from: transpose)
            let add = Node(Operator("Add"))
            try add.setInput(0, from: b)
            try add.setInput(1, from: matmul)
            let graph = GraphView(name: "linear")
            for node in [transpose, matmul, add] { graph.add(node, includeProducers: true) }
            graph.inputs.append(GraphInput(name: "x", dtype: .float32, shape: nil, consumers: [(matmul, 0)]))
            graph.outputs = [GraphOutput(name: "y", node: add, index: 0)]
            graph.train()
            return (graph, [w, b])
        }
        func run(_ graph: GraphView, _ parameters: [Node]) throws -> (Tensor, [[Double]]) {
            let scheduler = Scheduler(graph)
            let recording = try scheduler.forward([x], mode: scheduler.currentMode)
            let seed = randomTensor(recording.outputs[0].shape, seed: 83).cast(to: .float32)
            _ = try scheduler.backward(recording, outputGradients: [seed], inputs: [])
            return (recording.outputs[0], parameters.map { $0.producedTensor?.gradient?.tensor?.doubles() ?? [] })
        }
        let (reference, parameters) = try build()
        let (expected, expectedGradients) = try run(reference, parameters)
        let (graph, fusedParameters) = try build()
        XCTAssertEqual(try Recipes.fuseLinear(graph), 1)
        XCTAssertEqual(graph.nodes.filter { $0.type != "Producer" }.map(\.type), ["Linear"])
        let (got, gradients) = try run(graph, fusedParameters)
        assertClose(try got.scalars(as: Float.self), try expected.scalars(as: Float.self), "Linear output")
        for (g, e) in zip(gradients, expectedGradients) {
            XCTAssertEqual(g.count, e.count)
            for (a, b) in zip(g, e) { XCTAssertEqual(a, b, accuracy: 1e-5 * max(1, abs(b))) }
        }
    }
}
