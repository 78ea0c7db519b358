/// String operators: StringConcat, StringSplit, StringNormalizer, RegexFullMatch and ai.onnx.ml's LabelEncoder.
/// StringSplit's and StringNormalizer's output shapes depend on the strings, so planning computes them once those
/// are known, as for NonZero (see `DataDependent.swift`).
extension OperatorSchema {
    static let textSchemas: [OperatorSchema] = [
        OperatorSchema("StringConcat", inputs: ["X", "Y"]) { _, inputs in
            let (_, shape) = try broadcastInputs(inputs, types: [.string])
            return [ValueInfo(dtype: .string, shape: shape)]
        },
        OperatorSchema("RegexFullMatch", inputs: ["X"]) { attributes, inputs in
            _ = try TextOperators.regex(try attributes.string("pattern"))
            let x = try inputs.required(0)
            try expect(x, in: [.string])
            return [ValueInfo(dtype: .bool, shape: x.shape)]
        },
        OperatorSchema("StringSplit", inputs: ["X"], outputs: 2) { attributes, inputs in
            try expect(try inputs.required(0), in: [.string])
            return try TextOperators.split(try inputs.constant(0, "StringSplit input"), attributes).map { ValueInfo($0) }
        },
        OperatorSchema("StringNormalizer", inputs: ["X"]) { attributes, inputs in
            try expect(try inputs.required(0), in: [.string])
            return [ValueInfo(try TextOperators.normalize(try inputs.constant(0, "StringNormalizer input"), attributes))]
        },
        OperatorSchema("ai.onnx.ml.LabelEncoder", inputs: ["X"]) { attributes, inputs in
            let x = try inputs.required(0)
            let encoder = try LabelEncoder(attributes)
            try expect(x, in: [encoder.keys.dtype], "LabelEncoder input")
            return [ValueInfo(dtype: encoder.values.dtype, shape: x.shape)]
        },
    ]
}

/// The computations of the string operators, on contiguous tensors.
public enum TextOperators {
    /// `x + y` per element, broadcast.
    public static func concatenate(_ x: Tensor, _ y: Tensor) throws -> Tensor {
        let shape = try ShapeUtil.broadcast(x.shape, y.shape)
        let a = try broadcastStrings(x, to: shape)
        let b = try broadcastStrings(y, to: shape)
        return try Tensor(strings: zip(a, b).map { $0 + $1 }, shape: shape)
    }

    /// The strings of `x` repeated along the dimensions it is broadcast over, in row-major order of `shape`.
    private static func broadcastStrings(_ x: Tensor, to shape: [Int]) throws -> [String] {
        let strings = try x.strings()
        let rank = shape.count
        let own = [Int](repeating: 1, count: rank - x.rank) + x.shape
        let strides = ShapeUtil.contiguousStrides(own)
        var index = [Int](repeating: 0, count: rank)
        return (0..<ShapeUtil.count(shape)).map { flat in
            ShapeUtil.unravel(flat, shape, into: &index)
            var offset = 0
            for d in 0..<rank where own[d] != 1 { offset += index[d] * strides[d] }
            return strings[offset]
        }
    }

    /// RE2's syntax, as Swift's regular expressions read it (they cover RE2's classes, anchors and repetitions),
    /// with RE2's semantics: code points rather than characters, ASCII \w \d \s, and \b between \w and \W.
    public static func regex(_ pattern: String) throws -> Regex<AnyRegexOutput> {
        do {
            return try Regex(pattern).matchingSemantics(.unicodeScalar).wordBoundaryKind(.simple)
                .asciiOnlyWordCharacters().asciiOnlyDigits().asciiOnlyWhitespace()
        } catch {
            throw AidgeError.invalidArgument("RegexFullMatch pattern '\(pattern)' is not a valid regular expression: \(error)")
        }
    }

    /// Whether each string matches `regex` whole.
    public static func fullMatch(_ x: Tensor, _ regex: Regex<AnyRegexOutput>, into y: Tensor) throws {
        let p = y.pointer(as: Bool.self)
        for (i, s) in try x.strings().enumerated() { p[i] = (try? regex.wholeMatch(in: s)) != nil }
    }

    /// StringSplit: each string split at `delimiter` (runs of whitespace when it is empty or absent) at most
    /// `maxsplit` times; the pieces padded with "" to the longest count (Y), and each count (Z).
    public static func split(_ x: Tensor, _ attributes: Attributes) throws -> [Tensor] {
        let delimiter = try attributes.string("delimiter", default: "")
        let limit = attributes.has("maxsplit") ? try attributes.int("maxsplit") : Int.max
        guard limit >= 0 else { throw AidgeError.invalidArgument("StringSplit maxsplit must not be negative, got \(limit)") }
        let pieces: [[String]] = try x.strings().map { s in
            delimiter.isEmpty ? splitAtWhitespace(s, limit: limit) : splitAt(delimiter, s, limit: limit)
        }
        let width = pieces.map(\.count).max() ?? 0
        let padded = pieces.flatMap { $0 + Array(repeating: "", count: width - $0.count) }
        return [
            try Tensor(strings: padded, shape: x.shape + [width]),
            try Tensor(pieces.map { Int64($0.count) }, shape: x.shape),
        ]
    }

    private static func splitAt(_ delimiter: String, _ s: String, limit: Int) -> [String] {
        var pieces: [String] = []
        var rest = Substring(s)
        while pieces.count < limit, let range = rest.firstRange(of: delimiter) {
            pieces.append(String(rest[..<range.lowerBound]))
            rest = rest[range.upperBound...]
        }
        pieces.append(String(rest))
        return pieces
    }

    /// Python's `str.split()`: runs of whitespace separate, leading and trailing ones give no empty piece.
    private static func splitAtWhitespace(_ s: String, limit: Int) -> [String] {
        var pieces: [String] = []
        var rest = Substring(s).drop { $0.isWhitespace }
        while !rest.isEmpty {
            if pieces.count == limit {
                pieces.append(String(rest))
                break
            }
            let end = rest.firstIndex { $0.isWhitespace } ?? rest.endIndex
            pieces.append(String(rest[..<end]))
            rest = rest[end...].drop { $0.isWhitespace }
        }
        return pieces
    }

    /// StringNormalizer on a [C] or [1, C] tensor: stop words removed (compared case-sensitively or after the case
    /// change), the case changed (LOWER, UPPER or NONE); what remains keeps its layout, or one "" when nothing does.
    public static func normalize(_ x: Tensor, _ attributes: Attributes) throws -> Tensor {
        guard x.rank == 1 || (x.rank == 2 && x.shape[0] == 1) else {
            throw AidgeError.shapeMismatch("StringNormalizer takes a [C] or [1, C] tensor, got \(ShapeUtil.text(x.shape))")
        }
        let action = try attributes.string("case_change_action", default: "NONE")
        let change: (String) -> String
        switch action {
        case "LOWER": change = { $0.lowercased() }
        case "UPPER": change = { $0.uppercased() }
        case "NONE": change = { $0 }
        default: throw AidgeError.invalidArgument("StringNormalizer case_change_action '\(action)' is not LOWER, UPPER or NONE")
        }
        let caseSensitive = try attributes.int("is_case_sensitive", default: 0) != 0
        let stopwords = try attributes.strings("stopwords", default: [])
        let stops = Set(caseSensitive ? stopwords : stopwords.map(change))
        var kept: [String] = []
        for s in try x.strings() {
            if caseSensitive {
                if !stops.contains(s) { kept.append(change(s)) }
            } else {
                let changed = change(s)
                if !stops.contains(changed) { kept.append(changed) }
            }
        }
        if kept.isEmpty { kept = [""] }
        return try Tensor(strings: kept, shape: x.rank == 1 ? [kept.count] : [1, kept.count])
    }
}

/// ai.onnx.ml's LabelEncoder: a map from keys to values given as attributes (lists of strings, int64s or floats,
/// or tensors), with a default for keys it does not hold. Float keys match by value (NaN matches NaN).
public struct LabelEncoder: Sendable {
    public let keys: Tensor
    public let values: Tensor
    public let fallback: Tensor

    public init(_ a: Attributes) throws {
        func list(_ kind: String) throws -> Tensor? {
            if a.has("\(kind)_strings") {
                let strings = try a.strings("\(kind)_strings")
                return try Tensor(strings: strings, shape: [strings.count])
            }
            if a.has("\(kind)_int64s") { return Tensor(try a.ints("\(kind)_int64s").map { Int64($0) }) }
            if a.has("\(kind)_floats") { return Tensor(try a.floats("\(kind)_floats")) }
            if a.has("\(kind)_tensor") { return try a.tensor("\(kind)_tensor").contiguous() }
            return nil
        }
        guard let keys = try list("keys"), let values = try list("values") else {
            throw AidgeError.invalidModel("LabelEncoder needs keys and values")
        }
        guard keys.count == values.count else {
            throw AidgeError.invalidModel("LabelEncoder has \(keys.count) keys and \(values.count) values")
        }
        self.keys = keys
        self.values = values
        let fallback: Tensor
        if a.has("default_tensor") {
            fallback = try a.tensor("default_tensor").contiguous()
        } else {
            switch values.dtype {
            case .string: fallback = try Tensor(strings: [try a.string("default_string", default: "_Unused")], shape: [1])
            case .int64: fallback = Tensor([Int64(try a.int("default_int64", default: -1))])
            case .float32: fallback = Tensor([try a.float("default_float", default: -0.0)])
            default: throw AidgeError.invalidModel("LabelEncoder of \(values.dtype) values needs default_tensor")
            }
        }
        guard fallback.count == 1, fallback.dtype == values.dtype else {
            throw AidgeError.invalidModel("LabelEncoder's default must be one \(values.dtype) value")
        }
        self.fallback = fallback
    }

    /// Each element of `x` mapped through the table into `y`.
    public func encode(_ x: Tensor, into y: Tensor) throws {
        guard x.dtype == keys.dtype else { throw AidgeError.unsupportedType("LabelEncoder keys are \(keys.dtype), input is \(x.dtype)") }
        let size = values.dtype.byteSize
        let keyBytes = keys.dtype == .float32 || keys.dtype == .float64 ? keys.doubles().map(normalizedBits) : bytes(keys)
        var table: [UInt64: Int] = [:]
        for (k, key) in keyBytes.enumerated() where table[key] == nil { table[key] = k }
        let inputs = x.dtype == .float32 || x.dtype == .float64 ? x.doubles().map(normalizedBits) : bytes(x)
        for (i, key) in inputs.enumerated() {
            let source = table[key].map { values.rawPointer + $0 * size } ?? fallback.rawPointer
            (y.rawPointer + i * size).copyMemory(from: source, byteCount: size)
        }
    }

    /// Float keys by value: -0 is 0 and every NaN one NaN.
    private func normalizedBits(_ v: Double) -> UInt64 { v.isNaN ? Double.nan.bitPattern : (v == 0 ? 0 : v.bitPattern) }

    /// Integer, bool and string elements by their bytes (string handles are equal exactly when the strings are).
    private func bytes(_ t: Tensor) -> [UInt64] {
        let size = t.dtype.byteSize
        let p = t.rawPointer.assumingMemoryBound(to: UInt8.self)
        return (0..<t.count).map { i in
            var v: UInt64 = 0
            for b in 0..<size { v |= UInt64(p[i * size + b]) << (8 * b) }
            return v
        }
    }
}
