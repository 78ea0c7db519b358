import AidgeCore
import XCTest

final class GraphTests: XCTestCase {
    func testDefaultNamesAreUnique() {
        let a = Node(Operator("Relu"))
        let b = Node(Operator("Relu"))
        XCTAssertTrue(a.name.hasPrefix("Relu_"))
        XCTAssertNotEqual(a.name, b.name)
        XCTAssertEqual(Node(Operator("Relu"), name: "act").name, "act")
    }

    func testFactoryProducersAndInputsByName() throws {
        let conv = Conv2D(inChannels: 3, outChannels: 8, kernelDims: [3, 3], name: "conv1")
        XCTAssertEqual(conv.type, "Conv")
        let weight = try XCTUnwrap(try conv.input(named: "W"))
        XCTAssertEqual(weight.node.name, "conv1_w")
        XCTAssertEqual(weight.node.producedTensor?.shape, [8, 3, 3, 3])
        XCTAssertEqual(try conv.input(named: "B")?.node.producedTensor?.shape, [8])
        XCTAssertThrowsError(try conv.input(named: "nope")) { XCTAssertTrue("\($0)".contains("W")) }
        let fc = FC(inChannels: 16, outChannels: 4, noBias: true, name: "fc")
        XCTAssertEqual(fc.parents.compactMap { $0?.producedTensor?.shape }, [[4, 16]])
    }

    func testSequentialConnectsAndDerivesInputsOutputs() throws {
        let conv = Conv2D(inChannels: 1, outChannels: 2, kernelDims: [3, 3], name: "c")
        let relu = ReLU(name: "r")
        let fc = FC(inChannels: 8, outChannels: 3, name: "f")
        let graph = try GraphView.sequential([conv, relu, Flatten(name: "flat"), fc])
        XCTAssertEqual(graph.inputs.count, 1)
        XCTAssertTrue(graph.inputs[0].consumers[0].node === conv)
        XCTAssertEqual(graph.outputs.count, 1)
        XCTAssertTrue(graph.outputs[0].node === fc)
        XCTAssertTrue(relu.parents[0] === conv)
        XCTAssertEqual(graph.nodes.filter { $0.type == "Producer" }.count, 4)
        let order = try graph.topologicalOrder().map(\.name)
        XCTAssertLessThan(try XCTUnwrap(order.firstIndex(of: "c")), try XCTUnwrap(order.firstIndex(of: "r")))
        XCTAssertLessThan(try XCTUnwrap(order.firstIndex(of: "c_w")), try XCTUnwrap(order.firstIndex(of: "c")))
    }

    func testParallelThenConcatAndResidual() throws {
        let a = ReLU(name: "pa")
        let b = Sigmoid(name: "pb")
        let cat = Concat(nbInputs: 2, axis: 1, name: "cat")
        let graph = try GraphView.sequential([Identity(name: "in"), GraphView.parallel([a, b]), cat])
        XCTAssertTrue(a.parents[0]?.name == "in" && b.parents[0]?.name == "in")
        XCTAssertTrue(cat.parents[0] === a && cat.parents[1] === b)
        XCTAssertEqual(graph.outputs.map(\.node.name), ["cat"])

        let residual = try GraphView.residual([ReLU(name: "r1"), Tanh(name: "t1")], name: "block")
        let add = try XCTUnwrap(residual.node(named: "block_add"))
        XCTAssertEqual(residual.inputs.count, 1)
        XCTAssertEqual(residual.inputs[0].consumers.count, 2)
        XCTAssertTrue(residual.inputs[0].consumers.contains { $0.node === add && $0.index == 1 })
        XCTAssertTrue(add.parents[0]?.name == "t1")
    }

    func testCycleIsReported() throws {
        let a = ReLU(name: "ca")
        let b = ReLU(name: "cb")
        try a.addChild(b)
        try b.addChild(a)
        let graph = GraphView(nodes: [a, b])
        XCTAssertThrowsError(try graph.topologicalOrder()) { XCTAssertTrue("\($0)".contains("cycle")) }
    }

    func testCloneIsDeep() throws {
        let graph = try GraphView.sequential([ReLU(name: "x1"), Tanh(name: "x2")])
        let copy = graph.clone()
        XCTAssertEqual(copy.nodes.map(\.name), graph.nodes.map(\.name))
        XCTAssertFalse(copy.nodes[0] === graph.nodes[0])
        XCTAssertTrue(copy.nodes[1].parents[0] === copy.nodes[0])
        XCTAssertTrue(copy.outputs[0].node === copy.nodes[1])
        XCTAssertTrue(copy.inputs[0].consumers[0].node === copy.nodes[0])
    }

    func testBypassAndReplace() throws {
        let r = ReLU(name: "br")
        let id = Identity(name: "bid")
        let t = Tanh(name: "bt")
        let graph = try GraphView.sequential([r, id, t])
        XCTAssertTrue(try graph.bypass(id))
        XCTAssertTrue(t.parents[0] === r)
        XCTAssertFalse(graph.contains(id))

        let s = Sigmoid(name: "bs")
        try graph.replace([t], with: [s])
        XCTAssertTrue(s.parents[0] === r)
        XCTAssertTrue(graph.outputs[0].node === s)
        XCTAssertFalse(graph.contains(t))
    }

    func testMermaidNamesEveryNode() throws {
        let graph = try GraphView.sequential([Conv2D(inChannels: 1, outChannels: 1, kernelDims: [1, 1], name: "mc"), ReLU(name: "mr")])
        let text = graph.mermaid()
        XCTAssertTrue(text.hasPrefix("%%{init"))
        for node in graph.nodes { XCTAssertTrue(text.contains(node.name), node.name) }
        XCTAssertTrue(text.contains("-->"))
    }

    func testShapeInferenceErrorNamesTheOperator() throws {
        guard let schema = OperatorSchema.registry["Conv"] else { return }
        XCTAssertThrowsError(try schema.outputs([:], [])) { XCTAssertTrue("\($0)".contains("Conv")) }
    }
}

final class MemoryPlannerTests: XCTestCase {
    func testOverlappingLifetimesNeverShareBytes() {
        var planner = MemoryPlanner()
        // A chain a -> b -> c -> d, each read by the next step only, plus a long-lived buffer.
        let a = planner.add(bytes: 1000, first: 0, last: 1)
        let b = planner.add(bytes: 1000, first: 1, last: 2)
        let c = planner.add(bytes: 1000, first: 2, last: 3)
        let d = planner.add(bytes: 1000, first: 3, last: 4)
        let long = planner.add(bytes: 500, first: 0, last: 4)
        let (offsets, size) = planner.plan()
        func overlaps(_ i: Int, _ j: Int) -> Bool {
            let ri = planner.requests[i], rj = planner.requests[j]
            let live = ri.first <= rj.last && rj.first <= ri.last
            let bytes = offsets[i] < offsets[j] + rj.bytes && offsets[j] < offsets[i] + ri.bytes
            return live && bytes
        }
        for i in [a, b, c, d, long] {
            XCTAssertEqual(offsets[i] % Storage.alignment, 0)
            for j in [a, b, c, d, long] where i != j { XCTAssertFalse(overlaps(i, j), "\(i) and \(j)") }
        }
        // Reuse: a and c (disjoint lifetimes) fit in the space of two buffers plus the long one.
        XCTAssertLessThanOrEqual(size, 2 * 1024 + 512)
    }
}
