import AidgeCore
import AidgeONNX
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// libFuzzer's entry point: the bytes are read as an ONNX model. Any input must load or throw an `AidgeError`;
/// a trap, a hang or an unbounded allocation is a finding.
///
/// External data is looked up in an empty folder, so a tensor stored outside the model fails cleanly.
/// With `AIDGE_FUZZ_PLAN=1` in the environment, a model that loads and whose declared inputs all have small fixed
/// shapes is also planned (topological order and shape inference; no backend is registered, so no kernel runs).
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzz(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    let bytes = Array(UnsafeBufferPointer(start: data, count: size))
    let graph: GraphView
    do {
        graph = try ONNX.load(bytes: bytes, baseDirectory: FuzzState.emptyDirectory)
    } catch is AidgeError {
        return 0
    } catch {
        fatalError("ONNX.load threw an error that is not an AidgeError: \(error)")
    }
    if FuzzState.plans, let shapes = smallFixedShapes(graph) {
        _ = try? Scheduler(graph).plan(for: shapes)
    }
    return 0
}

enum FuzzState {
    /// A folder created empty for this process.
    static let emptyDirectory: String = {
        var template = Array("/tmp/aidge-fuzz-XXXXXX".utf8CString)
        let made = template.withUnsafeMutableBufferPointer { mkdtemp($0.baseAddress!) }
        guard made != nil else { return "/nonexistent-aidge-fuzz" }
        return String(cString: template.map { UInt8(bitPattern: $0) } + [0])
    }()
    static let plans: Bool = getenv("AIDGE_FUZZ_PLAN").map { String(cString: $0) == "1" } ?? false
}

/// The declared input shapes when every one is fixed and small (at most 4,096 elements, 8 dimensions).
func smallFixedShapes(_ graph: GraphView) -> [[Int]]? {
    var shapes: [[Int]] = []
    for input in graph.inputs {
        guard let dims = input.shape, dims.count <= 8 else { return nil }
        var shape: [Int] = []
        var count = 1
        for dim in dims {
            guard case .fixed(let n) = dim, n >= 0, n <= 4096 else { return nil }
            count *= n
            guard count <= 4096 else { return nil }
            shape.append(n)
        }
        shapes.append(shape)
    }
    return shapes
}
