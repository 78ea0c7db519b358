import AidgeCPU
import AidgeCore
import XCTest

final class IndexingTests: XCTestCase {
    /// Gather written from the spec with plain loops.
    private func gatherReference<T>(_ data: [T], _ shape: [Int], _ indices: [Int], axis: Int) -> [T] {
        let outer = shape[..<axis].reduce(1, *)
        let inner = shape[(axis + 1)...].reduce(1, *)
        var out: [T] = []
        for o in 0..<outer {
            for i in indices {
                let j = i < 0 ? i + shape[axis] : i
                for r in 0..<inner { out.append(data[(o * shape[axis] + j) * inner + r]) }
            }
        }
        return out
    }

    func testGatherAxes() throws {
        let shape = [3, 4, 5]
        let data = randomFloats(60, seed: 3)
        let x = try Tensor(data, shape: shape)
        for axis in [0, 1, 2, -1, -2] {
            let a = axis < 0 ? axis + 3 : axis
            let indices = [0, shape[a] - 1, -1, 1, -shape[a]]
            let idx = try Tensor(indices.map { Int64($0) }, shape: [5])
            let y = try runOperator("Gather", ["axis": .int(axis)], inputs: [x, idx])[0]
            var outShape = shape
            outShape[a] = 5
            XCTAssertEqual(y.shape, outShape)
            XCTAssertEqual(try y.scalars(as: Float.self), gatherReference(data, shape, indices, axis: a), "axis \(axis)")
        }
    }

    func testGatherIndexShapesAndTypes() throws {
        let shape = [4, 3]
        let data = (0..<12).map { Int64($0 * 10) }
        let x = try Tensor(data, shape: shape)
        // 2-D int32 indices: the output takes their shape in place of the axis.
        let idx = try Tensor([Int32(3), 0, -2, 1], shape: [2, 2])
        let y = try runOperator("Gather", inputs: [x, idx])[0]
        XCTAssertEqual(y.shape, [2, 2, 3])
        XCTAssertEqual(try y.scalars(as: Int64.self), gatherReference(data, shape, [3, 0, -2, 1], axis: 0))
        // A scalar index drops the axis.
        let s = try runOperator("Gather", ["axis": .int(1)], inputs: [x, Tensor(scalar: Int64(-1))], constants: [1])[0]
        XCTAssertEqual(s.shape, [4])
        XCTAssertEqual(try s.scalars(as: Int64.self), [20, 50, 80, 110])
        // Bytes, and no indices at all.
        let b = try runOperator("Gather", inputs: [Tensor([UInt8(5), 6, 7]), Tensor([Int64(2), 2])])[0]
        XCTAssertEqual(try b.scalars(as: UInt8.self), [7, 7])
        let e = try runOperator("Gather", inputs: [x, Tensor([Int64]())])[0]
        XCTAssertEqual(e.shape, [0, 3])
        // Larger rows run in parallel chunks.
        let rows = 2_000
        let big = (0..<(rows * 64)).map { Float($0) }
        let picks = (0..<3_000).map { Int64(($0 * 7919) % rows) }
        let g = try runOperator("Gather", inputs: [Tensor(big, shape: [rows, 64]), Tensor(picks)])[0]
        XCTAssertEqual(try g.scalars(as: Float.self), gatherReference(big, [rows, 64], picks.map { Int($0) }, axis: 0))
    }

    func testGatherErrors() throws {
        let x = try Tensor((0..<6).map { Float($0) }, shape: [2, 3])
        // Out of range when the plan runs (indices are a graph input).
        XCTAssertThrowsError(try runOperator("Gather", ["axis": .int(1)], inputs: [x, Tensor([Int64(1), 3])])) { error in
            XCTAssertTrue("\(error)".contains("index 3"), "\(error)")
            XCTAssertTrue("\(error)".contains("out of range"), "\(error)")
        }
        XCTAssertThrowsError(try runOperator("Gather", inputs: [x, Tensor([Int32(-3)])])) { error in
            XCTAssertTrue("\(error)".contains("out of range"), "\(error)")
        }
        XCTAssertThrowsError(try runOperator("Gather", inputs: [x, Tensor([Float(0)])])) { error in
            XCTAssertTrue("\(error)".contains("indices"), "\(error)")
        }
        XCTAssertThrowsError(try runOperator("Gather", ["axis": .int(2)], inputs: [x, Tensor([Int64(0)])]))
    }

    func testGatherElements() throws {
        let shape = [3, 4]
        let data = (0..<12).map { Float($0) }
        let x = try Tensor(data, shape: shape)
        let indices: [Int] = [2, -1, 0, 1, 1, 0]
        for (axis, idxShape) in [(0, [2, 3]), (1, [3, 2]), (-1, [1, 6])] {
            let a = axis < 0 ? axis + 2 : axis
            if idxShape[1 - a] > shape[1 - a] { continue }
            let idx = try Tensor(indices.map { Int64($0) }, shape: idxShape)
            let y = try runOperator("GatherElements", ["axis": .int(axis)], inputs: [x, idx])[0]
            XCTAssertEqual(y.shape, idxShape)
            var expected: [Float] = []
            for i in 0..<idxShape[0] {
                for j in 0..<idxShape[1] {
                    var v = indices[i * idxShape[1] + j]
                    if v < 0 { v += shape[a] }
                    expected.append(a == 0 ? data[v * 4 + j] : data[i * 4 + v])
                }
            }
            XCTAssertEqual(try y.scalars(as: Float.self), expected, "axis \(axis)")
        }
        // 3-D, middle axis, int32 indices.
        let d3 = (0..<(2 * 3 * 4)).map { Int16($0) }
        let i3 = (0..<(2 * 5 * 4)).map { Int32(($0 * 5) % 3) }
        let y3 = try runOperator(
            "GatherElements", ["axis": .int(1)],
            inputs: [Tensor(d3, shape: [2, 3, 4]), Tensor(i3, shape: [2, 5, 4])])[0]
        var e3: [Int16] = []
        for a in 0..<2 {
            for b in 0..<5 {
                for c in 0..<4 { e3.append(d3[(a * 3 + Int(i3[(a * 5 + b) * 4 + c])) * 4 + c]) }
            }
        }
        XCTAssertEqual(try y3.scalars(as: Int16.self), e3)
        XCTAssertThrowsError(
            try runOperator("GatherElements", inputs: [x, Tensor([Int64(0), 3, 0, 0], shape: [1, 4])])
        ) { error in
            XCTAssertTrue("\(error)".contains("out of range"), "\(error)")
        }
        XCTAssertThrowsError(try runOperator("GatherElements", inputs: [x, Tensor([Int64(0)])])) { error in
            XCTAssertTrue("\(error)".contains("rank"), "\(error)")
        }
    }

    /// Indices that user data brings out of range are clear errors, not out-of-bounds accesses.
    func testScatterAndGatherNDIndexErrors() throws {
        let data = Tensor([Float](repeating: 0, count: 4))
        let index = Tensor([Int64(7)])
        XCTAssertThrowsError(
            try runOperator(
                "ScatterElements", inputs: [data, index, Tensor([Float(1)])])
        ) { XCTAssertTrue("\($0)".contains("ScatterElements index 7 is out of range"), "\($0)") }
        XCTAssertThrowsError(
            try runOperator("ScatterND", inputs: [data, try Tensor([Int64(-5)], shape: [1, 1]), Tensor([Float(1)])])
        ) { XCTAssertTrue("\($0)".contains("ScatterND index -5 is out of range"), "\($0)") }
        XCTAssertThrowsError(
            try runOperator("GatherND", inputs: [data, try Tensor([Int64(4)], shape: [1, 1])])
        ) { XCTAssertTrue("\($0)".contains("GatherND index 4 is out of range"), "\($0)") }
        // In range, negative indices count from the end; a later duplicate wins; add accumulates.
        let scattered = try runOperator(
            "ScatterElements", inputs: [data, Tensor([Int64(-1), 0, -1]), Tensor([Float(1), 2, 3])])[0]
        XCTAssertEqual(try scattered.scalars(as: Float.self), [2, 0, 0, 3])
        let added = try runOperator(
            "ScatterElements", ["reduction": .string("add")],
            inputs: [data, Tensor([Int64(-1), 0, -1]), Tensor([Float(1), 2, 3])])[0]
        XCTAssertEqual(try added.scalars(as: Float.self), [2, 0, 0, 4])
    }

    /// Shape -> Gather -> Unsqueeze -> Concat -> Reshape, all int64, as exporters write "flatten all but the batch
    /// dimension": the planner evaluates the shape arithmetic ahead of time and only the Reshape copy runs.
    func testShapeArithmeticChainIsPlannedAheadOfTime() throws {
        _ = cpuRegistered
        let shape = Node(Operator("Shape"), name: "shape")
        let gather = Node(Operator("Gather", attributes: ["axis": .int(0)]), name: "batch")
        let unsqueeze = Node(Operator("Unsqueeze"), name: "unsqueeze")
        let concat = Node(Operator("Concat", attributes: ["axis": .int(0)]), name: "concat", inputCount: 2)
        let reshape = Node(Operator("Reshape"), name: "reshape")
        let zero = Node.producer(Tensor(scalar: Int64(0)), name: "zero")
        let axes = Node.producer(Tensor([Int64(0)]), name: "axes")
        let minusOne = Node.producer(Tensor([Int64(-1)]), name: "minus_one")
        try gather.setInput(0, from: shape)
        try gather.setInput(1, from: zero)
        try unsqueeze.setInput(0, from: gather)
        try unsqueeze.setInput(1, from: axes)
        try concat.setInput(0, from: unsqueeze)
        try concat.setInput(1, from: minusOne)
        try reshape.setInput(1, from: concat)
        let graph = GraphView(name: "flatten")
        for node in [shape, gather, unsqueeze, concat, reshape, zero, axes, minusOne] {
            graph.add(node, includeProducers: false)
        }
        graph.inputs = [GraphInput(name: "x", dtype: .float32, shape: nil, consumers: [(shape, 0), (reshape, 0)])]
        graph.outputs = [GraphOutput(name: "y", node: reshape)]
        let scheduler = Scheduler(graph)
        let data = randomFloats(3 * 4 * 5)
        let y = try scheduler.forward([Tensor(data, shape: [3, 4, 5])])[0]
        XCTAssertEqual(y.shape, [3, 20])
        XCTAssertEqual(try y.scalars(as: Float.self), data)
        let plan = try scheduler.plan(for: [[3, 4, 5]])
        XCTAssertEqual(plan.order, ["reshape"])
        // Another batch size: a new plan with the new shape arithmetic.
        let z = try scheduler.forward([Tensor(zeros: [2, 6, 2])])[0]
        XCTAssertEqual(z.shape, [2, 12])
    }
}
