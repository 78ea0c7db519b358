import AidgeCore
import XCTest

/// ai.onnx.preview FlexAttention: the plain form against Attention, a score modifier, and bad inputs refused with
/// an error that says what is wrong (the conformance suite and tests/python cover the rest).
final class FlexAttentionTests: XCTestCase {
    private let type = "ai.onnx.preview.FlexAttention"

    /// A modifier subgraph of one node fed the scores (and `constant` as its second input, when given).
    private func modifier(_ op: Operator, constant: Tensor? = nil) throws -> AttributeValue {
        let node = Node(op, name: "modify", inputCount: constant == nil ? 1 : 2)
        let graph = GraphView(name: "modifier")
        graph.add(node, includeProducers: false)
        if let constant {
            let producer = Node.producer(constant, name: "constant", constant: true)
            try node.setInput(1, from: producer)
            graph.add(producer, includeProducers: false)
        }
        graph.inputs = [GraphInput(name: "scores", dtype: .float32, shape: nil, consumers: [(node, 0)])]
        graph.outputs = [GraphOutput(name: "modified", node: node)]
        return .graph(Subgraph(graph, formalInputCount: 1))
    }

    private func qkv(heads: Int = 4, kvHeads: Int = 2) throws -> [Tensor] {
        [
            try Tensor(randomFloats(2 * heads * 3 * 8, seed: 1), shape: [2, heads, 3, 8]),
            try Tensor(randomFloats(2 * kvHeads * 5 * 8, seed: 2), shape: [2, kvHeads, 5, 8]),
            try Tensor(randomFloats(2 * kvHeads * 5 * 6, seed: 3), shape: [2, kvHeads, 5, 6]),
        ]
    }

    func testGroupedHeadsMatchAttention() throws {
        let inputs = try qkv()
        let flex = try runOperator(type, ["scale": .float(0.4)], inputs: inputs)[0]
        let attention = try runOperator("Attention", ["scale": .float(0.4)], inputs: inputs, outputs: 1)[0]
        XCTAssertEqual(flex.shape, [2, 4, 3, 6])
        assertClose(try flex.scalars(as: Float.self), try attention.scalars(as: Float.self))
    }

    func testScoreModDoublingTheScoresDoublesTheScale() throws {
        let inputs = try qkv()
        let doubling = try modifier(Operator("Mul"), constant: Tensor(scalar: Float(2)))
        let modified = try runOperator(type, ["scale": .float(0.25), "score_mod": doubling], inputs: inputs)[0]
        let scaled = try runOperator(type, ["scale": .float(0.5)], inputs: inputs)[0]
        assertClose(try modified.scalars(as: Float.self), try scaled.scalars(as: Float.self))
    }

    func testRefusesQueryAndKeyHeadSizesThatDiffer() throws {
        let text = errorMessage {
            try runOperator(type, inputs: [Tensor(zeros: [1, 2, 3, 4]), Tensor(zeros: [1, 2, 3, 5]), Tensor(zeros: [1, 2, 3, 4])])
        }
        XCTAssertTrue(text.contains("FlexAttention Q and K head sizes differ: Q 1x2x3x4, K 1x2x3x5"), text)
    }

    func testRefusesAScoreModOfTheWrongShape() throws {
        // Transposed scores are (B, H, S, L): not the shape fed.
        let transpose = try modifier(Operator("Transpose", attributes: ["perm": .ints([0, 1, 3, 2])]))
        let text = errorMessage { try runOperator(self.type, ["score_mod": transpose], inputs: try self.qkv()) }
        XCTAssertTrue(
            text.contains("score_mod must give one float32 tensor of shape 2x4x3x5, as it is fed; it gives float32 2x4x5x3"),
            text)
    }

    func testRefusesASoftmaxPrecisionThatIsNotAFloatType() throws {
        let text = errorMessage { try runOperator(self.type, ["softmax_precision": .int(7)], inputs: try self.qkv()) }
        XCTAssertTrue(text.contains("softmax_precision 7 is not a float type"), text)
    }
}
