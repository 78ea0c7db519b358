/// Shape helpers shared by tensors, shape inference and kernels.
public enum ShapeUtil {
    /// Number of elements of a shape (1 for a scalar).
    @inlinable public static func count(_ shape: [Int]) -> Int { shape.reduce(1, *) }

    /// Row-major (C order) strides in elements.
    @inlinable public static func contiguousStrides(_ shape: [Int]) -> [Int] {
        var strides = [Int](repeating: 1, count: shape.count)
        var s = 1
        for i in stride(from: shape.count - 1, through: 0, by: -1) {
            strides[i] = s
            s *= max(shape[i], 1)
        }
        return strides
    }

    /// The multi-index (row-major) of flat position `flat` in `shape`, written into `index` (of the same rank).
    @inlinable public static func unravel(_ flat: Int, _ shape: [Int], into index: inout [Int]) {
        var rest = flat
        for d in stride(from: shape.count - 1, through: 0, by: -1) {
            index[d] = rest % shape[d]
            rest /= shape[d]
        }
    }

    /// NumPy broadcasting of two shapes.
    /// The lowest and highest element offsets a strided view reaches from its first element (negative strides
    /// reach below it); (0, 0) for an empty view.
    public static func extent(_ shape: [Int], _ strides: [Int]) -> (low: Int, high: Int) {
        guard count(shape) > 0 else { return (0, 0) }
        var low = 0
        var high = 0
        for (n, s) in zip(shape, strides) {
            if s < 0 { low += (n - 1) * s } else { high += (n - 1) * s }
        }
        return (low, high)
    }

    public static func broadcast(_ a: [Int], _ b: [Int]) throws -> [Int] {
        let rank = max(a.count, b.count)
        var out = [Int](repeating: 1, count: rank)
        for i in 0..<rank {
            let da = i < rank - a.count ? 1 : a[i - (rank - a.count)]
            let db = i < rank - b.count ? 1 : b[i - (rank - b.count)]
            if da == db || db == 1 {
                out[i] = da
            } else if da == 1 {
                out[i] = db
            } else {
                throw AidgeError.shapeMismatch("shapes \(a) and \(b) cannot be broadcast together")
            }
        }
        return out
    }

    /// Broadcasts any number of shapes.
    public static func broadcast(_ shapes: [[Int]]) throws -> [Int] {
        try shapes.dropFirst().reduce(shapes.first ?? []) { try broadcast($0, $1) }
    }

    /// Normalises a possibly negative axis into `0..<rank`.
    public static func axis(_ axis: Int, rank: Int, context: String = "axis") throws -> Int {
        let a = axis < 0 ? axis + rank : axis
        guard a >= 0, a < rank else {
            throw AidgeError.invalidArgument("\(context) \(axis) is out of range for rank \(rank)")
        }
        return a
    }

    /// A readable `1x3x224x224` form.
    public static func text(_ shape: [Int]) -> String {
        shape.isEmpty ? "scalar" : shape.map(String.init).joined(separator: "x")
    }
}
