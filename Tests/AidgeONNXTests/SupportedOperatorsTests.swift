import Aidge
import XCTest

final class SupportedOperatorsTests: XCTestCase {
    override func setUp() async throws {
        try CPUBackend.register()
    }

    func testKnownOperatorsReportTheirRangesAndDtypes() throws {
        let all = try ONNX.supportedOperators(backend: "cpu")
        let byType = Dictionary(all.filter { $0.domain.isEmpty }.map { ($0.type, $0) }, uniquingKeysWith: { a, _ in a })
        // The default domain's operators sorted by type, then the other domains' (sorted by domain and type).
        XCTAssertEqual(all.map { [$0.domain, $0.type] }, all.map { [$0.domain, $0.type] }.sorted { $0.lexicographicallyPrecedes($1) })
        let treeEnsemble = try XCTUnwrap(all.first { $0.domain == "ai.onnx.ml" && $0.type == "TreeEnsemble" })
        XCTAssertEqual(treeEnsemble.engineType, "ai.onnx.ml.TreeEnsemble")
        XCTAssertEqual(treeEnsemble.sinceVersion, 5)
        XCTAssertEqual(all.first { $0.type == "LabelEncoder" }?.sinceVersion, 2)
        XCTAssertEqual(all.first { $0.type == "FlexAttention" }?.domain, "ai.onnx.preview")

        let relu = try XCTUnwrap(byType["Relu"])
        XCTAssertEqual(relu.sinceVersion, 1)
        XCTAssertEqual(relu.lastVersion, ONNX.maxSupportedOpset)
        XCTAssertTrue(relu.dtypesVerified)
        XCTAssertTrue(relu.dtypes.contains(.float32))

        // Before 7, Add aligned B at an `axis`: the importer reads Add from 7 on.
        XCTAssertEqual(byType["Add"]?.sinceVersion, 7)
        XCTAssertEqual(byType["Cast"]?.sinceVersion, 6)
        XCTAssertEqual(byType["Scan"]?.sinceVersion, 9)
        XCTAssertEqual(byType["Conv"]?.sinceVersion, 1)
        XCTAssertEqual(byType["Conv"]?.dtypesVerified, true)
        XCTAssertTrue(byType["Conv"]?.dtypes.contains(.float32) ?? false)
        XCTAssertFalse(byType["Conv"]?.dtypes.contains(.int64) ?? true)
        // Removed from the standard at 10, read as Resize before.
        XCTAssertEqual(byType["Upsample"]?.lastVersion, 9)
        XCTAssertEqual(byType["Upsample"]?.engineType, "Resize")
        // Where's main input is X (its condition is bool only).
        XCTAssertTrue(byType["Where"]?.dtypes.contains(.float32) ?? false)
        // Probed with their own nodes (required attributes, an offset input): the dtypes are checked.
        XCTAssertEqual(byType["DeformConv"]?.dtypesVerified, true)
        XCTAssertEqual(byType["DeformConv"]?.dtypes, [.float32, .float64, .float16])
        XCTAssertEqual(byType["TfIdfVectorizer"]?.dtypesVerified, true)
        XCTAssertEqual(byType["TfIdfVectorizer"]?.dtypes, [.int32, .int64])
        // No CPU kernel (or not an ONNX operator): not listed.
        XCTAssertNil(byType["ImageDecoder"])
        // Strings and containers: listed; the container operators run on any backend (no kernel to probe).
        XCTAssertEqual(byType["StringSplit"]?.dtypes, [.string])
        XCTAssertEqual(byType["SequenceInsert"]?.dtypesVerified, false)
        XCTAssertTrue(byType["SequenceInsert"]?.dtypes.contains(.float32) ?? false)
        XCTAssertNil(byType["Linear"])
        XCTAssertEqual(ONNX.maxSupportedOpset, ONNXOperatorSchema.all.values.flatMap { $0 }.map(\.sinceVersion).max())
    }

    /// Every dtype reported as verified builds a kernel for an operator node of that dtype.
    func testEveryVerifiedDtypeBuildsAKernel() throws {
        for op in try ONNX.supportedOperators(backend: "cpu") where op.dtypesVerified {
            XCTAssertFalse(op.dtypes.isEmpty, op.type)
            XCTAssertNotNil(KernelRegistry.shared.factory(op.engineType, backend: "cpu"), op.type)
            XCTAssertNotNil(OperatorSchema.registry[op.engineType], op.type)
        }
        // Unary element-wise ops, built here directly for each reported dtype.
        for type in ["Relu", "Abs", "Neg", "Sigmoid", "Identity", "Sqrt", "Not"] {
            let op = try XCTUnwrap(try ONNX.supportedOperators(backend: "cpu").first { $0.type == type }, type)
            for dtype in op.dtypes {
                let x = ValueInfo(dtype: dtype, shape: [2, 3])
                let outputs = try XCTUnwrap(OperatorSchema.registry[type]).outputs([:], [x])
                let request = KernelRequest(op: Operator(type), nodeName: "t", inputs: [x], outputs: outputs)
                XCTAssertNoThrow(try KernelRegistry.shared.makeKernel(request, backend: "cpu"), "\(type) \(dtype)")
            }
        }
    }

    /// A backend whose kernel cannot be built for any probe: its dtypes are the ONNX constraint's, marked
    /// unverified.
    func testUnprobedOperatorIsMarkedUnverified() throws {
        KernelRegistry.shared.register("Relu", backend: "probe-test") { request in
            throw AidgeError.invalidModel("\(request.op.type): never builds")
        }
        let all = try ONNX.supportedOperators(backend: "probe-test")
        XCTAssertEqual(all.map(\.type).filter { !ContainerOperators.types.contains($0) }, ["Relu"])
        XCTAssertEqual(all.first?.dtypesVerified, false)
        XCTAssertTrue(all.first?.dtypes.contains(.float32) ?? false)
        XCTAssertThrowsError(try ONNX.supportedOperators(backend: "no-such-backend"))
    }
}
