import Aidge
import Foundation
import SwiftProtobuf
import XCTest

final class ExportTests: XCTestCase {
    override func setUpWithError() throws { try CPUBackend.register() }

    private func parse(_ bytes: [UInt8]) throws -> Onnx_ModelProto { try Onnx_ModelProto(serializedBytes: bytes) }

    private func run(_ graph: GraphView, _ inputs: [Tensor]) throws -> [[Float]] {
        try Scheduler(graph).forward(inputs).map { $0.converted(to: Float.self) }
    }

    private func tensor(_ shape: [Int], seed: Int) throws -> Tensor {
        let n = shape.reduce(1, *)
        return try Tensor((0..<n).map { Float(($0 * 37 + seed * 11) % 23) * 0.125 - 1.3 }, shape: shape)
    }

    private static func attribute(_ node: Onnx_NodeProto, _ name: String) -> Onnx_AttributeProto? {
        node.attribute.first { $0.name == name }
    }

    /// Conv (with weights), Relu and a ReduceMean whose axes are an attribute at opset 17.
    private func convModel() -> Onnx_ModelProto {
        var group = ModelMaker.int("group", 1)
        group.name = "group"
        return ModelMaker.model(
            nodes: [
                ModelMaker.node("Conv", ["x", "w", "b"], ["c"], name: "conv", [ModelMaker.ints("pads", [1, 1, 1, 1]), group]),
                ModelMaker.node("Relu", ["c"], ["r"], name: "relu"),
                ModelMaker.node("ReduceMean", ["r"], ["y"], name: "mean", [ModelMaker.ints("axes", [2, 3]), ModelMaker.int("keepdims", 0)]),
            ],
            inputs: [ModelMaker.valueInfo("x", .float, [1, 2, 4, 4])],
            outputs: [ModelMaker.valueInfo("y", .float, [1, 3])],
            initializers: [
                ModelMaker.floatTensor("w", [3, 2, 3, 3], (0..<54).map { Float($0 % 13) * 0.25 - 1.5 }),
                ModelMaker.floatTensor("b", [3], [0.5, -0.25, 1]),
            ])
    }

    func testRoundTripKeepsNodesAttributesAndWeights() throws {
        let graph = try ONNX.load(bytes: try ModelMaker.bytes(convModel()))
        let model = try parse(try ONNX.serialize(graph))

        XCTAssertEqual(model.opsetImport.first { $0.domain.isEmpty }?.version, 17, "the imported opset is kept")
        XCTAssertEqual(model.irVersion, 8)
        XCTAssertEqual(model.graph.node.map(\.name), ["conv", "relu", "mean"])
        XCTAssertEqual(model.graph.node.map(\.opType), ["Conv", "Relu", "ReduceMean"])
        XCTAssertEqual(model.graph.node.map(\.output), [["c"], ["r"], ["y"]])
        let mean = model.graph.node[2]
        XCTAssertEqual(mean.input, ["r"], "at opset 17 ReduceMean's axes are an attribute again")
        XCTAssertEqual(Self.attribute(mean, "axes")?.type, .ints)
        XCTAssertEqual(Self.attribute(mean, "axes")?.ints, [2, 3])
        XCTAssertEqual(Self.attribute(model.graph.node[0], "group")?.type, .int)
        XCTAssertEqual(Self.attribute(model.graph.node[0], "pads")?.ints, [1, 1, 1, 1])
        XCTAssertEqual(model.graph.initializer.map(\.name), ["w", "b"], "no initializer for the axes constant")
        let w = try XCTUnwrap(model.graph.initializer.first)
        let expected = (0..<54).map { Float($0 % 13) * 0.25 - 1.5 }
        XCTAssertEqual(w.rawData, expected.withUnsafeBytes { Data($0) })
        XCTAssertEqual(model.graph.input.map(\.name), ["x"])
        XCTAssertEqual(model.graph.output.first?.type.tensorType.elemType, 1)
        XCTAssertEqual(model.graph.output.first?.type.tensorType.shape.dim.map(\.dimValue), [1, 3])

        let again = try ONNX.load(bytes: try model.serializedBytes())
        let x = try tensor([1, 2, 4, 4], seed: 1)
        XCTAssertEqual(try run(again, [x]), try run(graph, [x]))
    }

    func testSymbolicInputsKeepTheirNamesAndOutputsTheirDType() throws {
        var m = convModel()
        m.graph.input = [ModelMaker.valueInfo("x", .float, ["N", 2, 4, 4])]
        let model = try parse(try ONNX.serialize(try ONNX.load(bytes: try ModelMaker.bytes(m))))
        XCTAssertEqual(model.graph.input[0].type.tensorType.shape.dim.first?.dimParam, "N")
        XCTAssertEqual(model.graph.output[0].type.tensorType.elemType, 1)
        // The batch follows N (unknown), the channels do not.
        XCTAssertEqual(model.graph.output[0].type.tensorType.shape.dim.map { $0.value == nil ? -1 : $0.dimValue }, [-1, 3])
    }

    func testPackedInt4AndFloat16InitializersRoundTrip() throws {
        var q = Onnx_TensorProto()
        q.name = "q"
        q.dataType = Int32(Onnx_TensorProto.DataType.int4.rawValue)
        q.dims = [5]
        q.rawData = Data([0x21, 0xF3, 0x07])  // 1, 2, 3, -1, 7 (low nibble first)
        var h = Onnx_TensorProto()
        h.name = "h"
        h.dataType = Int32(Onnx_TensorProto.DataType.float16.rawValue)
        h.dims = [3]
        h.rawData = Data([0x00, 0x3C, 0x00, 0xC0, 0x55, 0x35])  // 1, -2, 0.333
        let m = ModelMaker.model(
            nodes: [ModelMaker.node("Identity", ["q"], ["qo"], name: "iq"), ModelMaker.node("Identity", ["h"], ["ho"], name: "ih")],
            inputs: [], outputs: [ModelMaker.valueInfo("qo", .int4, [5]), ModelMaker.valueInfo("ho", .float16, [3])],
            initializers: [q, h], opset: 21)
        let graph = try ONNX.load(bytes: try ModelMaker.bytes(m))
        let model = try parse(try ONNX.serialize(graph))
        let written = Dictionary(uniqueKeysWithValues: model.graph.initializer.map { ($0.name, $0) })
        XCTAssertEqual(written["q"]?.rawData, q.rawData)
        XCTAssertEqual(written["q"]?.dataType, q.dataType)
        XCTAssertEqual(written["h"]?.rawData, h.rawData)
        XCTAssertEqual(model.graph.output.map(\.type.tensorType.elemType), [q.dataType, h.dataType])
        let again = try ONNX.load(bytes: try model.serializedBytes())
        let tensors = Dictionary(uniqueKeysWithValues: again.producers.compactMap { p in p.producedTensor.map { (p.outputNames[0], $0) } })
        XCTAssertEqual(tensors["q"]?.dtype, .int4)
        XCTAssertEqual(tensors["q"]?.integers(), [1, 2, 3, -1, 7])
        let half = try XCTUnwrap(tensors["h"])
        XCTAssertEqual(half.dtype, .float16)
        XCTAssertEqual(Data(bytes: half.contiguous().rawPointer, count: 6), h.rawData, "float16 bits kept")
    }

    func testExternalDataRoundTrip() throws {
        let dir = NSTemporaryDirectory() + "aidge-export-\(getpid())"
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let graph = try ONNX.load(bytes: try ModelMaker.bytes(convModel()))
        let path = dir + "/conv.onnx"
        try ONNX.export(graph, path: path, externalData: true, sizeThreshold: 100)

        let model = try parse(Array(try Data(contentsOf: URL(fileURLWithPath: path))))
        let w = try XCTUnwrap(model.graph.initializer.first { $0.name == "w" })
        let b = try XCTUnwrap(model.graph.initializer.first { $0.name == "b" })
        XCTAssertEqual(w.dataLocation, .external, "216 bytes pass the threshold")
        XCTAssertEqual(Dictionary(uniqueKeysWithValues: w.externalData.map { ($0.key, $0.value) })["location"], "conv.onnx.data")
        XCTAssertEqual(Dictionary(uniqueKeysWithValues: w.externalData.map { ($0.key, $0.value) })["length"], "216")
        XCTAssertNotEqual(b.dataLocation, .external, "12 bytes stay inside")
        XCTAssertTrue(FileManager.default.fileExists(atPath: path + ".data"))

        let again = try ONNX.load(path: path)
        let x = try tensor([1, 2, 4, 4], seed: 2)
        XCTAssertEqual(try run(again, [x]), try run(graph, [x]))
    }

    /// MatMul(X, Transpose(W)) + B on 3-D and 2-D data: `fuseLinear` makes a Linear, written back as
    /// Transpose → MatMul → Add and as Gemm (transB = 1).
    func testLinearIsWrittenBackAsONNX() throws {
        for (rank, expected) in [(3, ["Transpose", "MatMul", "Add"]), (2, ["Gemm"])] {
            let shape = rank == 3 ? [2, 3, 4] : [2, 4]
            let m = ModelMaker.model(
                nodes: [
                    ModelMaker.node("Transpose", ["w"], ["wt"], name: "t", [ModelMaker.ints("perm", [1, 0])]),
                    ModelMaker.node("MatMul", ["x", "wt"], ["p"], name: "mm"),
                    ModelMaker.node("Add", ["p", "b"], ["y"], name: "add"),
                ],
                inputs: [ModelMaker.valueInfo("x", .float, shape)],
                outputs: [ModelMaker.valueInfo("y", .float, shape.dropLast() + [5])],
                initializers: [
                    ModelMaker.floatTensor("w", [5, 4], (0..<20).map { Float($0) * 0.1 - 1 }),
                    ModelMaker.floatTensor("b", [5], [1, 2, 3, 4, 5]),
                ])
            let graph = try ONNX.load(bytes: try ModelMaker.bytes(m))
            let x = try tensor(shape, seed: rank)
            let before = try run(graph, [x])
            XCTAssertEqual(try Recipes.fuseLinear(graph), 1)
            XCTAssertEqual(graph.nodes.filter { $0.type != "Producer" }.map(\.type), ["Linear"])

            let model = try parse(try ONNX.serialize(graph))
            XCTAssertEqual(model.graph.node.map(\.opType), expected)
            if rank == 2 {
                XCTAssertEqual(Self.attribute(model.graph.node[0], "transB")?.i, 1)
                XCTAssertEqual(model.graph.node[0].input, ["x", "w", "b"])
            }
            XCTAssertEqual(model.graph.node.last?.output, ["y"])
            let after = try run(try ONNX.load(bytes: try model.serializedBytes()), [x])
            XCTAssertEqual(after.count, 1)
            for (a, b) in zip(after[0], before[0]) { XCTAssertEqual(a, b, accuracy: 1e-5) }
        }
    }

    /// Activations fused into Conv come back as their own node; Gelu before opset 20 as its formula.
    func testFusedOperatorsAreWrittenBackAsONNX() throws {
        var m = convModel()
        m.graph.node[1] = ModelMaker.node("Clip", ["c", "lo", "hi"], ["r"], name: "clip")
        m.graph.initializer += [ModelMaker.floatTensor("lo", [], [0]), ModelMaker.floatTensor("hi", [], [1.5])]
        let graph = try ONNX.load(bytes: try ModelMaker.bytes(m))
        let x = try tensor([1, 2, 4, 4], seed: 3)
        let before = try run(graph, [x])
        XCTAssertEqual(try Recipes.fuseActivation(graph), 1)
        let model = try parse(try ONNX.serialize(graph))
        XCTAssertEqual(model.graph.node.map(\.opType), ["Conv", "Clip", "ReduceMean"])
        XCTAssertNil(Self.attribute(model.graph.node[0], "activation"))
        XCTAssertEqual(try run(try ONNX.load(bytes: try model.serializedBytes()), [x]), before)

        let gelu = ModelMaker.model(
            nodes: [ModelMaker.node("Gelu", ["x"], ["y"], name: "gelu")],
            inputs: [ModelMaker.valueInfo("x", .float, [2, 3])], outputs: [ModelMaker.valueInfo("y", .float, [2, 3])],
            opset: 20)
        let g = try ONNX.load(bytes: try ModelMaker.bytes(gelu))
        let formula = try parse(try ONNX.serialize(g, opset: 18))
        XCTAssertEqual(formula.graph.node.map(\.opType), ["Div", "Erf", "Add", "Mul", "Mul"])
        let xs = try tensor([2, 3], seed: 4)
        let exact = try run(g, [xs])[0]
        for (a, b) in zip(try run(try ONNX.load(bytes: try formula.serializedBytes()), [xs])[0], exact) {
            XCTAssertEqual(a, b, accuracy: 1e-5)
        }
    }

    func testOlderOpsetWritesAttributeForms() throws {
        let axes = Onnx_TensorProto.with {
            $0.name = "axes"
            $0.dataType = Int32(Onnx_TensorProto.DataType.int64.rawValue)
            $0.dims = [1]
            $0.int64Data = [1]
        }
        let m = ModelMaker.model(
            nodes: [
                ModelMaker.node("Squeeze", ["x", "axes"], ["s"], name: "sq"),
                ModelMaker.node("Split", ["s"], ["a", "b"], name: "split", [ModelMaker.int("axis", 1), ModelMaker.int("num_outputs", 2)]),
                ModelMaker.node("ReduceSum", ["a", "axes"], ["y"], name: "sum"),
            ],
            inputs: [ModelMaker.valueInfo("x", .float, [2, 1, 4])],
            outputs: [ModelMaker.valueInfo("y", .float, [2]), ModelMaker.valueInfo("b", .float, [2, 2])],
            initializers: [axes], opset: 18)
        let graph = try ONNX.load(bytes: try ModelMaker.bytes(m))
        let model = try parse(try ONNX.serialize(graph, opset: 11))
        XCTAssertEqual(model.opsetImport.first { $0.domain.isEmpty }?.version, 11)
        XCTAssertEqual(model.irVersion, 6)
        let nodes = Dictionary(uniqueKeysWithValues: model.graph.node.map { ($0.name, $0) })
        XCTAssertEqual(nodes["sq"]?.input, ["x"])
        XCTAssertEqual(nodes["sq"].flatMap { Self.attribute($0, "axes") }?.ints, [1])
        XCTAssertEqual(nodes["sum"]?.input, ["a"])
        XCTAssertEqual(nodes["sum"].flatMap { Self.attribute($0, "axes") }?.ints, [1])
        XCTAssertNil(nodes["split"].flatMap { Self.attribute($0, "num_outputs") }, "num_outputs exists from opset 18")
        XCTAssertTrue(model.graph.initializer.isEmpty, "the axes became attributes")
        let x = try tensor([2, 1, 4], seed: 5)
        XCTAssertEqual(try run(try ONNX.load(bytes: try model.serializedBytes()), [x]), try run(graph, [x]))
        // At its own opset the Split keeps num_outputs and the axes stay inputs.
        let latest = try parse(try ONNX.serialize(graph))
        XCTAssertEqual(latest.opsetImport.first { $0.domain.isEmpty }?.version, 18)
        XCTAssertNotNil(latest.graph.node.first { $0.name == "split" }.flatMap { Self.attribute($0, "num_outputs") })
    }

    func testWhatAnOpsetCannotExpressIsAClearError() throws {
        let m = ModelMaker.model(
            nodes: [
                ModelMaker.node("Shape", ["x"], ["dims"], name: "shape"),
                ModelMaker.node("Slice", ["dims", "one", "two"], ["axes"], name: "slice"),
                ModelMaker.node("Squeeze", ["x", "axes"], ["y"], name: "squeeze_by_data"),
            ],
            inputs: [ModelMaker.valueInfo("x", .float, [2, 1, 4])], outputs: [ModelMaker.valueInfo("y", .float, [2, 4])],
            initializers: [
                Onnx_TensorProto.with { $0.name = "one"; $0.dataType = 7; $0.dims = [1]; $0.int64Data = [1] },
                Onnx_TensorProto.with { $0.name = "two"; $0.dataType = 7; $0.dims = [1]; $0.int64Data = [2] },
            ])
        let graph = try ONNX.load(bytes: try ModelMaker.bytes(m))
        XCTAssertThrowsError(try ONNX.serialize(graph, opset: 11)) { error in
            XCTAssertTrue("\(error)".contains("squeeze_by_data"), "\(error)")
            XCTAssertTrue("\(error)".contains("constant"), "\(error)")
        }
        let layerNorm = ModelMaker.model(
            nodes: [ModelMaker.node("LayerNormalization", ["x", "s"], ["y"], name: "ln")],
            inputs: [ModelMaker.valueInfo("x", .float, [2, 4])], outputs: [ModelMaker.valueInfo("y", .float, [2, 4])],
            initializers: [ModelMaker.floatTensor("s", [4], [1, 1, 1, 1])])
        let ln = try ONNX.load(bytes: try ModelMaker.bytes(layerNorm))
        XCTAssertThrowsError(try ONNX.serialize(ln, opset: 12)) { error in
            XCTAssertTrue("\(error)".contains("ln (LayerNormalization)"), "\(error)")
            XCTAssertTrue("\(error)".contains("from opset 17"), "\(error)")
        }
    }

    /// A graph built by hand has no imported opset: it is written at the engine's forms' opset.
    func testDefaultOpsetOfAGraphBuiltByHand() throws {
        let relu = Node(Operator("Relu"), name: "relu")
        let graph = GraphView(nodes: [relu])
        graph.updateInputsOutputs()
        graph.inputs[0].shape = [.fixed(2), .fixed(3)]
        let model = try parse(try ONNX.serialize(graph))
        XCTAssertEqual(model.opsetImport.map(\.version), [Int64(ONNX.latestFormOpset)])
        XCTAssertEqual(model.irVersion, 10)
        XCTAssertEqual(model.graph.output[0].type.tensorType.shape.dim.map(\.dimValue), [2, 3])
    }
}
