import AidgeCore

/// TopK: the k largest (or smallest) elements of each line along `axis`, sorted, and their int64 indices. Ties keep
/// the lower index first; NaN ranks above every number, as NumPy sorts it.
func registerTopKKernels(_ registry: KernelRegistry) {
    registry.register("TopK", backend: "cpu") { try makeKernel(TopKFamily(), $0) }
}

private struct TopKFamily: KernelFamily {
    func float<T: MathFloat>(_ type: T.Type, _ request: KernelRequest) throws -> any Kernel {
        try TopKKernel<T>(request)
    }
    func integer<T: FixedWidthInteger & ArithmeticElement>(_ type: T.Type, _ request: KernelRequest) throws
        -> any Kernel
    {
        try TopKKernel<T>(request)
    }
}

private final class TopKKernel<T: ArithmeticElement>: Kernel {
    let n: Int
    let k: Int
    let inner: Int
    let outer: Int
    let largest: Bool

    init(_ request: KernelRequest) throws {
        let shape = try request.input(0).shape
        let axis = try ShapeUtil.axis(try request.attributes.int("axis", default: -1), rank: shape.count)
        n = shape[axis]
        k = request.outputs[0].shape[axis]
        inner = ShapeUtil.count(Array(shape[(axis + 1)...]))
        outer = ShapeUtil.count(Array(shape[..<axis]))
        largest = try request.attributes.int("largest", default: 1) != 0
    }

    func run(_ inputs: [Tensor?], _ outputs: [Tensor]) throws {
        let x = try presentInput(inputs, 0).pointer(as: T.self)
        guard outputs.count == 2 else { throw AidgeError.invalidModel("TopK has two outputs") }
        let values = outputs[0].pointer(as: T.self)
        let indices = outputs[1].pointer(as: Int64.self)
        let (n, k, inner, largest) = (self.n, self.k, self.inner, self.largest)
        Parallel.forEach(outer * inner, grain: max(1, 8192 / max(n, 1))) { range in
            var order = [Int](repeating: 0, count: n)
            for line in range {
                let (o, i) = (line / inner, line % inner)
                let base = o * n * inner + i
                for j in 0..<n { order[j] = j }
                // a ranks before b: larger (or smaller) first, NaN above all, lower index on ties.
                order.sort { a, b in
                    let (va, vb) = (x[base + a * inner], x[base + b * inner])
                    let (nanA, nanB) = (va != va, vb != vb)
                    if nanA || nanB { return nanA != nanB ? nanA == largest : a < b }
                    if va == vb { return a < b }
                    return largest ? va > vb : va < vb
                }
                let outBase = o * k * inner + i
                for j in 0..<k {
                    values[outBase + j * inner] = x[base + order[j] * inner]
                    indices[outBase + j * inner] = Int64(order[j])
                }
            }
        }
    }
}
