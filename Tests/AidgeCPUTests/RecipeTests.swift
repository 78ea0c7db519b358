import AidgeCPU
import AidgeCore
import XCTest

final class RecipeTests: XCTestCase {
    override func setUp() { _ = cpuRegistered }

    private func fill(_ node: Node, _ name: String, _ values: [Float]) throws {
        guard let producer = try node.input(named: name)?.node, let old = producer.producedTensor else {
            return XCTFail("\(node.name) has no \(name)")
        }
        producer.setProducedTensor(try Tensor(values, shape: old.shape))
    }

    /// Conv -> BatchNorm -> Relu, run before and after fusing: same outputs, one node fewer.
    func testFuseBatchNormKeepsOutputs() throws {
        let conv = Conv2D(inChannels: 2, outChannels: 3, kernelDims: [3, 3], name: "fc_conv")
        let bn = BatchNorm2D(nbFeatures: 3, name: "fc_bn")
        let graph = try GraphView.sequential([conv, bn, ReLU(name: "fc_relu")])
        graph.inputs[0].shape = [.fixed(1), .fixed(2), .fixed(5), .fixed(5)]
        try fill(conv, "W", randomFloats(54, seed: 1))
        try fill(conv, "B", [0.1, -0.2, 0.3])
        let bnNames = bn.inputNames
        try fill(bn, bnNames[1], [1.5, 0.5, -1])
        try fill(bn, bnNames[2], [0.1, 0.2, 0.3])
        try fill(bn, bnNames[3], [0.05, -0.1, 0.2])
        try fill(bn, bnNames[4], [0.9, 1.1, 0.5])
        let x = try Tensor(randomFloats(50, seed: 9), shape: [1, 2, 5, 5])
        let before = try Scheduler(graph).forward([x])[0].converted(to: Float.self)
        XCTAssertEqual(try Recipes.fuseBatchNorm(graph), 1)
        XCTAssertFalse(graph.nodes.contains { $0.type == "BatchNormalization" })
        XCTAssertEqual(conv.outputNames, bn.outputNames, "the fused convolution carries the normalised value's name")
        let after = try Scheduler(graph).forward([x])[0].converted(to: Float.self)
        assertClose(after, before, atol: 1e-5, rtol: 1e-5)
    }

    func testRemoveIdentityAndDropout() throws {
        let graph = try GraphView.sequential([ReLU(name: "ri_r"), Identity(name: "ri_id"), Node(Operator("Dropout"), name: "ri_do"), Tanh(name: "ri_t")])
        graph.inputs[0].shape = [.fixed(4)]
        let x = try Tensor(randomFloats(4), shape: [4])
        let before = try Scheduler(graph).forward([x])[0].converted(to: Float.self)
        XCTAssertEqual(try Recipes.removeIdentity(graph), 1)
        XCTAssertEqual(try Recipes.removeDropout(graph), 1)
        XCTAssertEqual(graph.nodes.map(\.type), ["Relu", "Tanh"])
        XCTAssertEqual(try Scheduler(graph).forward([x])[0].converted(to: Float.self), before)
    }

    func testConstantFoldingReplacesConstantSubgraphs() throws {
        // y = x + relu(c) where c is a Producer: relu(c) folds into a Producer.
        let c = Producer(try Tensor([-1, 2, -3, 4] as [Float], shape: [4]), name: "cf_c")
        let relu = ReLU(name: "cf_relu")
        try relu.setInput(0, from: c)
        let add = Add(name: "cf_add")
        try add.setInput(1, from: relu)
        let graph = GraphView(nodes: [c, relu, add])
        graph.inputs = [GraphInput(name: "x", dtype: .float32, shape: [.fixed(4)], consumers: [(add, 0)])]
        graph.outputs = [GraphOutput(name: "y", node: add)]
        XCTAssertEqual(try Recipes.constantFolding(graph), 1)
        XCTAssertFalse(graph.nodes.contains { $0.type == "Relu" })
        let y = try Scheduler(graph).forward([try Tensor([1, 1, 1, 1] as [Float], shape: [4])])
        XCTAssertEqual(y[0].converted(to: Float.self), [1, 3, 1, 5])
    }
}
