import Aidge
import SwiftProtobuf
import XCTest

/// Malformed models are refused at load, with an error that names the node and the problem.
final class ModelValidationTests: XCTestCase {
    private typealias M = ModelMaker

    private func assertRefused(
        _ model: Onnx_ModelProto, _ fragments: [String], file: StaticString = #filePath, line: UInt = #line
    ) throws {
        XCTAssertThrowsError(try ONNX.load(bytes: try M.bytes(model)), file: file, line: line) { error in
            guard case AidgeError.invalidModel(let message) = error else {
                return XCTFail("not an invalidModel error: \(error)", file: file, line: line)
            }
            for fragment in fragments {
                XCTAssertTrue(message.contains(fragment), "'\(fragment)' not in: \(message)", file: file, line: line)
            }
        }
    }

    private func conv(_ inputs: [String], _ attributes: [Onnx_AttributeProto] = []) -> Onnx_ModelProto {
        M.model(
            nodes: [M.node("Conv", inputs, ["y"], name: "conv1", attributes)],
            inputs: [M.valueInfo("x", .float, [1, 1, 3, 3])], outputs: [M.valueInfo("y", .float, [1, 1, 2, 2])],
            initializers: [M.floatTensor("w", [1, 1, 2, 2], [1, 1, 1, 1])], opset: 17)
    }

    func testWellFormedModelStillLoads() throws {
        let graph = try ONNX.load(bytes: try M.bytes(conv(["x", "w"], [M.int("group", 1)])))
        XCTAssertEqual(graph.nodes.filter { $0.type == "Conv" }.count, 1)
    }

    func testOpsetNewerThanSupportedIsRefused() throws {
        let model = M.model(
            nodes: [M.node("Relu", ["x"], ["y"], name: "relu")], inputs: [M.valueInfo("x", .float, [1])],
            outputs: [M.valueInfo("y", .float, [1])], opset: ONNX.maxSupportedOpset + 1)
        try assertRefused(model, ["opset \(ONNX.maxSupportedOpset + 1)", "up to \(ONNX.maxSupportedOpset)"])
    }

    func testWrongAttributeTypeIsRefused() throws {
        var group = Onnx_AttributeProto()
        group.name = "group"
        group.type = .float
        group.f = 1
        try assertRefused(conv(["x", "w"], [group]), ["conv1", "Conv", "'group'", "must be INT", "got FLOAT"])

        // Older files leave the type unset: the filled field tells it.
        var strides = Onnx_AttributeProto()
        strides.name = "strides"
        strides.f = 1
        try assertRefused(conv(["x", "w"], [strides]), ["conv1", "'strides'", "must be INTS", "got FLOAT"])
    }

    func testMissingRequiredAttributeIsRefused() throws {
        let model = M.model(
            nodes: [M.node("Cast", ["x"], ["y"], name: "cast1")], inputs: [M.valueInfo("x", .float, [2])],
            outputs: [M.valueInfo("y", .int64, [2])])
        try assertRefused(model, ["node cast1 (Cast) is missing required attribute 'to' (INT)"])
    }

    func testMissingRequiredInputIsRefused() throws {
        try assertRefused(conv(["x"]), ["node conv1 (Conv) is missing required input 1 (W)"])
        try assertRefused(conv(["x", ""]), ["node conv1 (Conv) is missing required input 1 (W)"])
        // An unnamed node is described by its position and output.
        let model = M.model(
            nodes: [M.node("Relu", ["x"], ["r"]), M.node("Add", ["r"], ["y"])], inputs: [M.valueInfo("x", .float, [2])],
            outputs: [M.valueInfo("y", .float, [2])])
        try assertRefused(model, ["node #1 (Add, output 'y') is missing required input 1 (B)"])
    }

    func testTooManyInputsAreRefused() throws {
        let model = M.model(
            nodes: [M.node("Relu", ["x", "x"], ["y"], name: "relu")], inputs: [M.valueInfo("x", .float, [2])],
            outputs: [M.valueInfo("y", .float, [2])])
        try assertRefused(model, ["node relu (Relu) has 2 inputs, Relu-14 takes at most 1"])
    }

    func testSchemaOfTheModelsOpsetIsUsed() throws {
        // Squeeze-11 takes `axes` as an attribute, Squeeze-13 as an input: each loads in its own opset.
        let old = M.model(
            nodes: [M.node("Squeeze", ["x"], ["y"], name: "sq", [M.ints("axes", [0])])],
            inputs: [M.valueInfo("x", .float, [1, 2])], outputs: [M.valueInfo("y", .float, [2])], opset: 11)
        XCTAssertNoThrow(try ONNX.load(bytes: try M.bytes(old)))
        // Cast-1 names the type with a string: an INT `to` is wrong there.
        let cast = M.model(
            nodes: [M.node("Cast", ["x"], ["y"], name: "c", [M.int("to", 7)])], inputs: [M.valueInfo("x", .float, [2])],
            outputs: [M.valueInfo("y", .int64, [2])], opset: 5)
        try assertRefused(cast, ["node c (Cast)", "'to' must be STRING (Cast-1), got INT"])
    }

    func testCustomDomainsAndUnknownTypesAreNotChecked() throws {
        var custom = M.node("Relu", ["x", "x", "x"], ["y"], name: "mine")
        custom.domain = "com.example"
        let model = M.model(
            nodes: [custom], inputs: [M.valueInfo("x", .float, [2])], outputs: [M.valueInfo("y", .float, [2])])
        XCTAssertNoThrow(try ONNX.load(bytes: try M.bytes(model)))
    }

    func testCyclicGraphIsRefused() throws {
        let model = M.model(
            nodes: [
                M.node("Add", ["x", "c"], ["a"], name: "add"), M.node("Relu", ["a"], ["b"], name: "relu"),
                M.node("Neg", ["b"], ["c"], name: "neg"), M.node("Identity", ["a"], ["y"], name: "out"),
            ],
            inputs: [M.valueInfo("x", .float, [2])], outputs: [M.valueInfo("y", .float, [2])])
        try assertRefused(model, ["the graph has a cycle through node "])
        XCTAssertThrowsError(try ONNX.load(bytes: try M.bytes(model))) { error in
            let named = ["add", "relu", "neg"].filter { "\(error)".hasSuffix("node \($0)") }
            XCTAssertEqual(named.count, 1, "\(error)")
        }

        let selfLoop = M.model(
            nodes: [M.node("Add", ["x", "y"], ["y"], name: "acc")], inputs: [M.valueInfo("x", .float, [2])],
            outputs: [M.valueInfo("y", .float, [2])])
        try assertRefused(selfLoop, ["the graph has a cycle through node acc"])
    }

    func testTensorWhoseDataDoesNotMatchItsShapeIsRefused() throws {
        // An initializer with typed values: 3 values for a shape of 4.
        let short = M.model(
            nodes: [M.node("Add", ["x", "w"], ["y"], name: "add")], inputs: [M.valueInfo("x", .float, [4])],
            outputs: [M.valueInfo("y", .float, [4])], initializers: [M.floatTensor("w", [4], [1, 2, 3])])
        try assertRefused(short, ["tensor 'w' has 3 values, its shape [4] needs 4"])

        // An initializer with raw data: 8 bytes for a float shape of 3.
        var raw = Onnx_TensorProto()
        raw.name = "w"
        raw.dataType = Int32(Onnx_TensorProto.DataType.float.rawValue)
        raw.dims = [3]
        raw.rawData = Data(repeating: 0, count: 8)
        let rawModel = M.model(
            nodes: [M.node("Add", ["x", "w"], ["y"], name: "add")], inputs: [M.valueInfo("x", .float, [3])],
            outputs: [M.valueInfo("y", .float, [3])], initializers: [raw])
        try assertRefused(rawModel, ["tensor 'w' has 8 bytes of data, its shape [3] needs 12"])

        // A Constant node's tensor attribute: the error names the node.
        var value = Onnx_AttributeProto()
        value.name = "value"
        value.type = .tensor
        value.t = M.floatTensor("k", [2, 2], [1, 2])
        let constant = M.model(
            nodes: [M.node("Constant", [], ["k"], name: "const", [value]), M.node("Add", ["x", "k"], ["y"], name: "add")],
            inputs: [M.valueInfo("x", .float, [2, 2])], outputs: [M.valueInfo("y", .float, [2, 2])])
        try assertRefused(constant, ["node const (Constant)", "attribute 'value'", "has 2 values, its shape [2, 2] needs 4"])
    }
}
