import AidgeCPU
import AidgeCore
import XCTest

final class SchedulerTests: XCTestCase {
    override func setUp() { _ = cpuRegistered }

    /// x -> Relu -> Tanh -> Relu -> Add(x) : a chain whose intermediates can share memory.
    private func chain() throws -> GraphView {
        let r1 = ReLU(name: "s_r1")
        let t = Tanh(name: "s_t")
        let r2 = ReLU(name: "s_r2")
        let add = Add(name: "s_add")
        try r1.addChild(t)
        try t.addChild(r2)
        try r2.addChild(add, input: 0)
        let graph = GraphView(nodes: [r1, t, r2, add])
        graph.inputs = [GraphInput(name: "x", dtype: .float32, shape: [.symbolic("N"), .fixed(4)], consumers: [(r1, 0), (add, 1)])]
        graph.outputs = [GraphOutput(name: "y", node: add)]
        return graph
    }

    private func reference(_ x: [Float]) -> [Float] {
        x.map { v in max(Float(tanh(Double(max(v, 0)))), 0) + v }
    }

    func testRunsAndMatchesReference() throws {
        let graph = try chain()
        let x = randomFloats(8)
        let y = try Scheduler(graph).forward([try Tensor(x, shape: [2, 4])])
        XCTAssertEqual(y[0].shape, [2, 4])
        assertClose(y[0].converted(to: Float.self), reference(x))
    }

    func testPlanIsCachedPerShapeAndReusesMemory() throws {
        let scheduler = Scheduler(try chain())
        let a = try scheduler.plan(for: [[2, 4]])
        XCTAssertTrue(a === (try scheduler.plan(for: [[2, 4]])))
        let b = try scheduler.plan(for: [[3, 4]])
        XCTAssertFalse(a === b)
        XCTAssertEqual(a.stepCount, 4)
        // Three intermediates of 32 bytes each, but at most two are alive at once.
        XCTAssertLessThanOrEqual(a.arenaBytes, 2 * Storage.alignment)
        let x3 = randomFloats(12, seed: 7)
        let y3 = try scheduler.forward([try Tensor(x3, shape: [3, 4])])
        assertClose(y3[0].converted(to: Float.self), reference(x3))
    }

    /// x -> Reshape(shape) -> Relu, the target shape given as a graph input (flattened and squeezed first).
    private func reshapeFedShape() throws -> GraphView {
        let reshape = Node(Operator("Reshape"), inputCount: 2)
        let flatten = Node(Operator("Flatten", attributes: ["axis": .int(0)]))
        let squeeze = Node(Operator("Squeeze"), inputCount: 1)
        let relu = ReLU(name: "relu")
        try flatten.addChild(squeeze)
        try squeeze.addChild(reshape, input: 1)
        try reshape.addChild(relu)
        let graph = GraphView(name: "fed")
        for node in [flatten, squeeze, reshape, relu] { graph.add(node, includeProducers: false) }
        graph.inputs = [
            GraphInput(name: "x", dtype: .float32, shape: nil, consumers: [(reshape, 0)]),
            GraphInput(name: "shape", dtype: .int64, shape: nil, consumers: [(flatten, 0)]),
        ]
        graph.outputs = [GraphOutput(name: "y", node: relu)]
        return graph
    }

    func testShapeDecidingGraphInputsPlanPerValue() throws {
        let scheduler = Scheduler(try reshapeFedShape())
        let values = randomFloats(6)
        let x = try Tensor(values, shape: [6])
        for target in [[2, 3], [3, 2], [6, 1], [2, 3]] {
            let y = try scheduler.forward([x, Tensor(target.map(Int64.init))])[0]
            XCTAssertEqual(y.shape, target)
            XCTAssertEqual(y.converted(to: Float.self), values.map { max($0, 0) })
        }
        XCTAssertThrowsError(try scheduler.forward([x, Tensor([Int64(4), 2])])) { error in
            XCTAssertTrue("\(error)".contains("cannot reshape"), "\(error)")
        }
        // A shape held in a matrix is not taken as shape-deciding; Reshape reads it computed (flattened,
        // squeezed), so the graph is split before Reshape and the rest planned per value.
        let matrix = Scheduler(try reshapeFedShape())
        for target in [[2, 3], [3, 2]] {
            let shape = try Tensor(target.map(Int64.init), shape: [1, 2])
            let y = try matrix.forward([x, shape])[0]
            XCTAssertEqual(y.shape, target)
            XCTAssertEqual(y.converted(to: Float.self), values.map { max($0, 0) })
        }
    }

    func testOutputsStayValidAfterLaterRuns() throws {
        let scheduler = Scheduler(try chain())
        let x1 = randomFloats(8, seed: 1)
        let first = try scheduler.forward([try Tensor(x1, shape: [2, 4])])
        _ = try scheduler.forward([try Tensor(randomFloats(8, seed: 2), shape: [2, 4])])
        assertClose(first[0].converted(to: Float.self), reference(x1))
    }

    func testBadInputsAreRejected() throws {
        let scheduler = Scheduler(try chain())
        XCTAssertThrowsError(try scheduler.forward([])) { XCTAssertTrue("\($0)".contains("takes 1 inputs")) }
        XCTAssertThrowsError(try scheduler.forward([Tensor(zeros: [2, 4], dtype: .float64)])) {
            XCTAssertTrue("\($0)".contains("float32") && "\($0)".contains("float64"))
        }
        XCTAssertThrowsError(try scheduler.forward([Tensor(zeros: [2, 5])])) { XCTAssertTrue("\($0)".contains("shape")) }
        XCTAssertThrowsError(try scheduler.forward([Tensor(zeros: [2, 4, 1])])) { XCTAssertTrue("\($0)".contains("shape")) }
    }

    func testStridedInputIsRead() throws {
        let graph = try chain()
        let x = randomFloats(8, seed: 3)
        let t = try Tensor(x, shape: [4, 2]).permuted([1, 0])  // a [2, 4] view, not contiguous
        let y = try Scheduler(graph).forward([t])
        XCTAssertEqual(y[0].shape, [2, 4])
        XCTAssertEqual(y[0].converted(to: Float.self), try Scheduler(graph).forward([t.contiguous()])[0].converted(to: Float.self))
    }

    /// Reshapes and a leading-axis Gather are placed inside their input's buffer, which must then live as long as
    /// they are read: `a` would otherwise reuse `r`'s bytes while the view `v` of `r` is still to be added.
    func testWindowsShareTheirInputBuffer() throws {
        func node(_ type: String, _ name: String, _ attributes: Attributes = [:], inputs: Int = 1) -> Node {
            Node(Operator(type, attributes: attributes), name: name, inputCount: inputs)
        }
        let r = node("Relu", "r"), a = node("Tanh", "a"), s = node("Add", "s", inputs: 2)
        let v = node("Reshape", "v", inputs: 2), b = node("Reshape", "b", inputs: 2), p = node("Reshape", "p", inputs: 2)
        let kept = node("Reshape", "kept", inputs: 2)
        let g = node("Gather", "g", ["axis": .int(0)], inputs: 2), other = node("Gather", "other", ["axis": .int(1)], inputs: 2)
        let neg = node("Neg", "neg"), abs = node("Abs", "abs")
        let flat = Node.producer(Tensor([Int64(24)]), name: "flat")
        let cube = Node.producer(Tensor([Int64(2), 3, 4]), name: "cube")
        let tall = Node.producer(Tensor([Int64(6), 4]), name: "tall")
        let one = Node.producer(Tensor(scalar: Int64(1)), name: "one")
        let last = Node.producer(Tensor([Int64(-1)]), name: "last")
        try v.setInput(0, from: r); try v.setInput(1, from: flat)
        try b.setInput(0, from: a); try b.setInput(1, from: flat)
        try s.setInput(0, from: v); try s.setInput(1, from: b)
        try p.setInput(0, from: s); try p.setInput(1, from: cube)
        try g.setInput(0, from: p); try g.setInput(1, from: one)
        try other.setInput(0, from: p); try other.setInput(1, from: last)
        try neg.setInput(0, from: g)
        try abs.setInput(0, from: other)
        try kept.setInput(0, from: r); try kept.setInput(1, from: tall)
        let graph = GraphView(name: "windows")
        for n in [r, a, v, b, s, p, g, other, neg, abs, kept, flat, cube, tall, one, last] {
            graph.add(n, includeProducers: false)
        }
        graph.inputs = [GraphInput(name: "x", dtype: .float32, shape: nil, consumers: [(r, 0), (a, 0)])]
        graph.outputs = [
            GraphOutput(name: "neg", node: neg), GraphOutput(name: "abs", node: abs), GraphOutput(name: "kept", node: kept),
        ]
        let x = randomFloats(24, seed: 5)
        let sum = x.map { max($0, 0) + Float(tanh(Double($0))) }  // s = p, as [2, 3, 4]
        let scheduler = Scheduler(graph)
        let y = try scheduler.forward([try Tensor(x, shape: [4, 6])])
        XCTAssertEqual(y[0].shape, [3, 4])
        assertClose(y[0].converted(to: Float.self), sum[12..<24].map { -$0 })
        XCTAssertEqual(y[1].shape, [2, 1, 4])
        assertClose(y[1].converted(to: Float.self), (0..<8).map { Swift.abs(sum[$0 / 4 * 12 + 8 + $0 % 4]) })
        XCTAssertEqual(y[2].shape, [6, 4])
        XCTAssertEqual(y[2].converted(to: Float.self), x.map { max($0, 0) })
        // r (with v), a (with b) and s (with p and g): three 128-byte buffers (four without windows).
        let plan = try scheduler.plan(for: [[4, 6]])
        XCTAssertLessThanOrEqual(plan.arenaBytes, 3 * 128)
        XCTAssertEqual(plan.stepCount, 11)
    }
}
