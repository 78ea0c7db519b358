import Aidge
import Foundation
import SwiftProtobuf
import XCTest

/// Small ONNX models built in the test with the protobuf types.
enum ModelMaker {
    static func valueInfo(_ name: String, _ type: Onnx_TensorProto.DataType = .float, _ dims: [Any]) -> Onnx_ValueInfoProto {
        var v = Onnx_ValueInfoProto()
        v.name = name
        var t = Onnx_TypeProto.Tensor()
        t.elemType = Int32(type.rawValue)
        var shape = Onnx_TensorShapeProto()
        for d in dims {
            var dim = Onnx_TensorShapeProto.Dimension()
            if let n = d as? Int { dim.dimValue = Int64(n) } else if let s = d as? String { dim.dimParam = s }
            shape.dim.append(dim)
        }
        t.shape = shape
        v.type.tensorType = t
        return v
    }

    static func node(_ type: String, _ inputs: [String], _ outputs: [String], name: String = "", _ attributes: [Onnx_AttributeProto] = []) -> Onnx_NodeProto {
        var n = Onnx_NodeProto()
        n.opType = type
        n.input = inputs
        n.output = outputs
        n.name = name
        n.attribute = attributes
        return n
    }

    static func ints(_ name: String, _ values: [Int]) -> Onnx_AttributeProto {
        var a = Onnx_AttributeProto()
        a.name = name
        a.type = .ints
        a.ints = values.map { Int64($0) }
        return a
    }

    static func int(_ name: String, _ value: Int) -> Onnx_AttributeProto {
        var a = Onnx_AttributeProto()
        a.name = name
        a.type = .int
        a.i = Int64(value)
        return a
    }

    static func floatTensor(_ name: String, _ dims: [Int], _ values: [Float]) -> Onnx_TensorProto {
        var t = Onnx_TensorProto()
        t.name = name
        t.dataType = Int32(Onnx_TensorProto.DataType.float.rawValue)
        t.dims = dims.map { Int64($0) }
        t.floatData = values
        return t
    }

    static func model(
        nodes: [Onnx_NodeProto], inputs: [Onnx_ValueInfoProto], outputs: [Onnx_ValueInfoProto],
        initializers: [Onnx_TensorProto] = [], opset: Int = 17
    ) -> Onnx_ModelProto {
        var g = Onnx_GraphProto()
        g.name = "test"
        g.node = nodes
        g.input = inputs
        g.output = outputs
        g.initializer = initializers
        var m = Onnx_ModelProto()
        m.irVersion = 8
        m.graph = g
        var o = Onnx_OperatorSetIdProto()
        o.version = Int64(opset)
        var ml = Onnx_OperatorSetIdProto()
        ml.domain = "ai.onnx.ml"
        ml.version = 3
        m.opsetImport = [o, ml]
        return m
    }

    static func bytes(_ m: Onnx_ModelProto) throws -> [UInt8] { Array(try m.serializedData()) }
}

final class ImportTests: XCTestCase {
    func testGraphStructure() throws {
        let m = ModelMaker.model(
            nodes: [
                ModelMaker.node("Conv", ["x", "w", "b"], ["y"], name: "conv", [ModelMaker.ints("pads", [1, 1, 1, 1])]),
                ModelMaker.node("Relu", ["y"], ["z"], name: "relu"),
            ],
            inputs: [ModelMaker.valueInfo("x", .float, ["N", 1, 4, 4]), ModelMaker.valueInfo("w", .float, [2, 1, 3, 3])],
            outputs: [ModelMaker.valueInfo("z", .float, ["N", 2, 4, 4])],
            initializers: [
                ModelMaker.floatTensor("w", [2, 1, 3, 3], (0..<18).map { Float($0) }),
                ModelMaker.floatTensor("b", [2], [0.5, -0.5]),
            ])
        let graph = try ONNX.load(bytes: try ModelMaker.bytes(m))
        XCTAssertEqual(graph.inputs.map(\.name), ["x"], "an initializer listed as an input is not a user input")
        XCTAssertEqual(graph.inputs[0].shape, [.symbolic("N"), .fixed(1), .fixed(4), .fixed(4)])
        XCTAssertEqual(graph.outputs.map(\.name), ["z"])
        let conv = try XCTUnwrap(graph.node(named: "conv"))
        XCTAssertEqual(try conv.input(named: "W")?.node.producedTensor?.converted(to: Float.self), (0..<18).map { Float($0) })
        XCTAssertEqual(try conv.op.attributes.ints("pads"), [1, 1, 1, 1])
        XCTAssertTrue(graph.node(named: "relu")?.parents[0] === conv)
        XCTAssertEqual(graph.opsetImports[""], 17)
        XCTAssertEqual(graph.opsetImports["ai.onnx.ml"], 3)
    }

    func testOlderOpsetAttributesBecomeInputs() throws {
        let m = ModelMaker.model(
            nodes: [ModelMaker.node("Squeeze", ["x"], ["y"], name: "sq", [ModelMaker.ints("axes", [1])])],
            inputs: [ModelMaker.valueInfo("x", .float, [2, 1, 3])], outputs: [ModelMaker.valueInfo("y", .float, [2, 3])],
            opset: 11)
        let graph = try ONNX.load(bytes: try ModelMaker.bytes(m))
        let sq = try XCTUnwrap(graph.node(named: "sq"))
        XCTAssertFalse(sq.op.attributes.has("axes"))
        XCTAssertEqual(sq.inputs[1]?.node.producedTensor?.converted(to: Int64.self), [1])
    }

    func testOldSoftmaxIsCoercedTo2D() throws {
        let m = ModelMaker.model(
            nodes: [ModelMaker.node("Softmax", ["x"], ["y"], name: "sm", [ModelMaker.int("axis", 1)])],
            inputs: [ModelMaker.valueInfo("x", .float, [2, 3, 4])], outputs: [ModelMaker.valueInfo("y", .float, [2, 3, 4])],
            opset: 11)
        let graph = try ONNX.load(bytes: try ModelMaker.bytes(m))
        let types = Set(graph.nodes.map(\.type))
        XCTAssertTrue(types.isSuperset(of: ["Flatten", "Softmax", "Shape", "Reshape"]), "\(types)")
        XCTAssertEqual(graph.outputs[0].node.type, "Reshape")
    }

    /// From opset 13 Softmax normalises along one axis, the last by default: nothing is coerced to 2-D.
    func testSoftmaxOfOpset13NormalisesTheLastAxis() throws {
        try CPUBackend.register()
        for (type, opset) in [("Softmax", 13), ("LogSoftmax", 23)] {
            let m = ModelMaker.model(
                nodes: [ModelMaker.node(type, ["x"], ["y"], name: "sm")],
                inputs: [ModelMaker.valueInfo("x", .float, [2, 3, 4])],
                outputs: [ModelMaker.valueInfo("y", .float, [2, 3, 4])], opset: opset)
            let graph = try ONNX.load(bytes: try ModelMaker.bytes(m))
            XCTAssertEqual(graph.nodes.map(\.type), [type])
            let x = (0..<24).map { Float($0 % 7) * 0.5 - 1 }
            let y = try Scheduler(graph).forward([try Tensor(x, shape: [2, 3, 4])])[0].converted(to: Float.self)
            for row in 0..<6 {
                let values = x[(row * 4)..<(row * 4 + 4)].map { Double($0) }
                let sum = values.map { exp($0) }.reduce(0, +)
                for k in 0..<4 {
                    let expected = type == "Softmax" ? exp(values[k]) / sum : values[k] - log(sum)
                    XCTAssertEqual(Double(y[row * 4 + k]), expected, accuracy: 1e-6, "\(type) row \(row)")
                }
            }
        }
    }

    func testExternalData() throws {
        let dir = "/tmp/aidge-onnx-ext-\(getpid())"
        mkdir(dir, 0o755)
        defer { _ = try? FileManager.default.removeItem(atPath: dir) }
        let values: [Float] = [1.5, -2, 3.25, 4]
        var w = Onnx_TensorProto()
        w.name = "w"
        w.dataType = Int32(Onnx_TensorProto.DataType.float.rawValue)
        w.dims = [4]
        w.dataLocation = .external
        for (k, v) in [("location", "weights.bin"), ("offset", "8"), ("length", "16")] {
            var e = Onnx_StringStringEntryProto()
            e.key = k
            e.value = v
            w.externalData.append(e)
        }
        var data = [UInt8](repeating: 0xAB, count: 8)
        values.withUnsafeBytes { data += $0 }
        try FileIO.write(data, to: "\(dir)/weights.bin")
        let m = ModelMaker.model(
            nodes: [ModelMaker.node("Add", ["x", "w"], ["y"])], inputs: [ModelMaker.valueInfo("x", .float, [4])],
            outputs: [ModelMaker.valueInfo("y", .float, [4])], initializers: [w])
        try FileIO.write(try ModelMaker.bytes(m), to: "\(dir)/model.onnx")
        let graph = try ONNX.load(path: "\(dir)/model.onnx")
        XCTAssertEqual(graph.producers.first?.producedTensor?.converted(to: Float.self), values)

        unlink("\(dir)/weights.bin")
        XCTAssertThrowsError(try ONNX.load(path: "\(dir)/model.onnx")) { error in
            XCTAssertTrue("\(error)".contains("external data"), "\(error)")
            XCTAssertTrue("\(error)".contains("weights.bin"), "\(error)")
        }
    }

    func testMalformedModelsGiveClearErrors() throws {
        let good = try ModelMaker.bytes(
            ModelMaker.model(
                nodes: [ModelMaker.node("Relu", ["x"], ["y"])], inputs: [ModelMaker.valueInfo("x", .float, [1])],
                outputs: [ModelMaker.valueInfo("y", .float, [1])]))
        XCTAssertThrowsError(try ONNX.load(bytes: Array(good.prefix(good.count / 2)))) {
            XCTAssertTrue("\($0)".contains("not a valid ONNX model"), "\($0)")
        }
        var generator = SystemRandomNumberGenerator()
        let noise = (0..<4096).map { _ in UInt8.random(in: 0...255, using: &generator) }
        XCTAssertThrowsError(try ONNX.load(bytes: noise))
        XCTAssertThrowsError(try ONNX.load(path: "/nonexistent/model.onnx")) { XCTAssertTrue("\($0)".contains("No such file")) }

        let dangling = ModelMaker.model(
            nodes: [ModelMaker.node("Add", ["x", "ghost"], ["y"], name: "add")], inputs: [ModelMaker.valueInfo("x", .float, [1])],
            outputs: [ModelMaker.valueInfo("y", .float, [1])])
        XCTAssertThrowsError(try ONNX.load(bytes: try ModelMaker.bytes(dangling))) { error in
            XCTAssertTrue("\(error)".contains("ghost") && "\(error)".contains("add"), "\(error)")
        }
    }

    /// Inputs the loader's fuzz target (fuzz/, scripts/fuzz_onnx.sh) reached: each must be a clear error.
    func testFuzzedModelsAreClearErrors() throws {
        // A node that reads its own output (a cycle): rejected before any edge is connected, so nothing leaks.
        let cycle = ModelMaker.model(
            nodes: [
                ModelMaker.node("Relu", ["x"], ["a"], name: "first"),
                ModelMaker.node("Add", ["a", "c"], ["b"], name: "add"),
                ModelMaker.node("Relu", ["b"], ["c"], name: "back"),
            ],
            inputs: [ModelMaker.valueInfo("x", .float, [1])], outputs: [ModelMaker.valueInfo("c", .float, [1])])
        XCTAssertThrowsError(try ONNX.load(bytes: try ModelMaker.bytes(cycle))) { error in
            XCTAssertTrue("\(error)".contains("cycle"), "\(error)")
        }
        let selfLoop = ModelMaker.model(
            nodes: [ModelMaker.node("Squeeze", ["y"], ["y"], name: "sq", [ModelMaker.ints("axes", [0])])],
            inputs: [], outputs: [ModelMaker.valueInfo("y", .float, [1])], opset: 11)
        XCTAssertThrowsError(try ONNX.load(bytes: try ModelMaker.bytes(selfLoop))) { error in
            XCTAssertTrue("\(error)".contains("cycle through node sq"), "\(error)")
        }

        func load(_ w: Onnx_TensorProto) throws -> GraphView {
            let m = ModelMaker.model(
                nodes: [ModelMaker.node("Relu", ["w"], ["y"])], inputs: [], outputs: [ModelMaker.valueInfo("y", .float, [1])],
                initializers: [w])
            return try ONNX.load(bytes: try ModelMaker.bytes(m), baseDirectory: "/nonexistent")
        }
        // A huge shape with little or no data: an error before anything is allocated.
        var huge = ModelMaker.floatTensor("w", [1 << 28, 1 << 28], [1])
        XCTAssertThrowsError(try load(huge)) { XCTAssertTrue("\($0)".contains("has 1 values"), "\($0)") }
        huge.floatData = []
        huge.rawData = Data([0, 0, 128, 63])
        XCTAssertThrowsError(try load(huge)) { XCTAssertTrue("\($0)".contains("has 4 bytes of data"), "\($0)") }
        huge.clearRawData()
        huge.dataLocation = .external
        var entry = Onnx_StringStringEntryProto()
        entry.key = "location"
        entry.value = "weights.bin"
        huge.externalData = [entry]
        XCTAssertThrowsError(try load(huge)) { XCTAssertTrue("\($0)".contains("external data"), "\($0)") }
        // No elements, but dimensions whose product overflows (the strides multiply them).
        let empty = ModelMaker.floatTensor("w", [0, 1 << 40, 1 << 40], [])
        XCTAssertThrowsError(try load(empty)) { XCTAssertTrue("\($0)".contains("too large"), "\($0)") }

        // Many nodes of one name get distinct names without a scan each.
        let many = ModelMaker.model(
            nodes: (0..<3000).map { ModelMaker.node("Relu", [$0 == 0 ? "x" : "v\($0 - 1)"], ["v\($0)"], name: "n") },
            inputs: [ModelMaker.valueInfo("x", .float, [1])], outputs: [ModelMaker.valueInfo("v2999", .float, [1])])
        let graph = try ONNX.load(bytes: try ModelMaker.bytes(many))
        XCTAssertEqual(Set(graph.nodes.map(\.name)).count, 3000)
        XCTAssertNotNil(graph.node(named: "n_2999"))
    }

    func testUnknownOperatorLoadsAndFailsWhenRun() throws {
        try CPUBackend.register()
        let m = ModelMaker.model(
            nodes: [ModelMaker.node("FancyOp", ["x"], ["y"], name: "fancy")], inputs: [ModelMaker.valueInfo("x", .float, [2])],
            outputs: [ModelMaker.valueInfo("y", .float, [2])])
        let graph = try ONNX.load(bytes: try ModelMaker.bytes(m))
        XCTAssertEqual(graph.nodes.map(\.type), ["FancyOp"])
        XCTAssertThrowsError(try Scheduler(graph).forward([Tensor(zeros: [2])])) { error in
            XCTAssertEqual("\(error)", "operator FancyOp (node fancy) is not supported")
        }
    }
}
