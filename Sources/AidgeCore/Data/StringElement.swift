import Synchronization

/// An element of a string tensor: a handle on a string interned for the life of the process.
///
/// String tensors stay plain fixed-size memory, so the memory planner, views and every data-movement kernel treat
/// them like 8-byte integers, and equal strings have equal handles (Equal compares handles). The price is that
/// each distinct string a process sees stays in memory until it exits, as interned identifiers do in Python.
/// Zero-filled memory holds the empty string.
public struct StringElement: Hashable, Sendable {
    public let handle: UInt64

    /// The handle of `string` (interned on first sight).
    public init(_ string: String) { handle = StringTable.shared.intern(string) }

    public var string: String { StringTable.shared.string(handle) }
}

/// The interned strings, by handle.
final class StringTable: Sendable {
    static let shared = StringTable()

    private struct Contents {
        var strings: [String] = [""]
        var handles: [String: UInt64] = ["": 0]
    }
    private let contents = Mutex(Contents())

    func intern(_ string: String) -> UInt64 {
        contents.withLock { c in
            if let known = c.handles[string] { return known }
            let handle = UInt64(c.strings.count)
            c.strings.append(string)
            c.handles[string] = handle
            return handle
        }
    }

    /// The string of `handle`; "" for a handle no string has (memory not written by a string kernel).
    func string(_ handle: UInt64) -> String {
        contents.withLock { c in handle < UInt64(c.strings.count) ? c.strings[Int(handle)] : "" }
    }
}

extension Tensor {
    /// A string tensor of `shape` holding `strings` in row-major order.
    public init(strings: [String], shape: [Int]) throws {
        guard shape.allSatisfy({ $0 >= 0 }), ShapeUtil.count(shape) == strings.count else {
            throw AidgeError.shapeMismatch("\(strings.count) strings do not fill shape \(shape)")
        }
        self.init(zeros: shape, dtype: .string)
        let p = pointer(as: StringElement.self)
        for (i, s) in strings.enumerated() { p[i] = StringElement(s) }
    }

    /// The strings of a string tensor, in row-major order.
    public func strings() throws -> [String] {
        guard dtype == .string else { throw AidgeError.unsupportedType("tensor holds \(dtype), not strings") }
        let c = contiguous()
        return UnsafeBufferPointer(start: c.pointer(as: StringElement.self), count: count).map(\.string)
    }
}

/// Cast to and from strings, as NumPy's `astype` does: numbers are parsed (decimal or scientific, "inf", "nan",
/// "true" and "false", any case; text that is no number gives NaN, then 0 for integer types) and written in their
/// shortest exact form ("1.5", "1e-05" as NumPy writes it, "True"/"False" for bools).
func castStrings(_ src: UnsafeRawPointer, _ from: DType, _ dst: UnsafeMutableRawPointer, _ to: DType, _ count: Int) {
    if from == to {
        dst.copyMemory(from: src, byteCount: count * from.byteSize)
        return
    }
    if from == .string {
        let strings = src.assumingMemoryBound(to: StringElement.self)
        let values = Tensor(zeros: [count], dtype: .float64)
        let v = values.pointer(as: Double.self)
        for i in 0..<count { v[i] = parseNumber(strings[i].string) }
        castElements(values.rawPointer, .float64, dst, to, count)
        return
    }
    struct Format: DTypeVisitor {
        let src: UnsafeRawPointer, dst: UnsafeMutablePointer<StringElement>, count: Int
        func visit<T: TensorElement>(_: T.Type) throws {
            let s = src.assumingMemoryBound(to: T.self)
            for i in 0..<count { dst[i] = StringElement(formatNumber(s[i])) }
        }
    }
    try? from.visit(Format(src: src, dst: dst.assumingMemoryBound(to: StringElement.self), count: count))
}

private func parseNumber(_ text: String) -> Double {
    let t = text.trimmingSpaces
    switch t.lowercased() {
    case "inf", "+inf", "infinity", "+infinity": return .infinity
    case "-inf", "-infinity": return -.infinity
    case "true": return 1
    case "false": return 0
    default: return Double(t) ?? .nan
    }
}

private func formatNumber<T: TensorElement>(_ value: T) -> String {
    switch value.scalarValue {
    case .signed(let v): return String(v)
    case .unsigned(let v): return String(v)
    case .bool(let v): return v ? "True" : "False"
    case .float(let v):
        if v.isNaN { return "nan" }
        if v.isInfinite { return v < 0 ? "-inf" : "inf" }
        // The shortest text that reads back to the value in its own type ("1e-05", "0.1", "1.0").
        return T.dtype == .float64 ? String(v) : String(Float(v))
    }
}

extension String {
    fileprivate var trimmingSpaces: String {
        let scalars = unicodeScalars
        guard let start = scalars.firstIndex(where: { !$0.properties.isWhitespace }),
            let end = scalars.lastIndex(where: { !$0.properties.isWhitespace })
        else { return "" }
        return String(scalars[start...end])
    }
}
