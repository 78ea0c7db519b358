/// One attribute value of an operator (ONNX's attribute kinds).
public enum AttributeValue: Sendable {
    case int(Int)
    case float(Float)
    case string(String)
    case ints([Int])
    case floats([Float])
    case strings([String])
    case tensor(Tensor)
    case graph(Subgraph)
}

/// Named attributes with typed, defaulted accessors that throw a clear error on a kind mismatch.
public struct Attributes: Sendable, ExpressibleByDictionaryLiteral {
    public var values: [String: AttributeValue]

    public init(_ values: [String: AttributeValue] = [:]) { self.values = values }
    public init(dictionaryLiteral elements: (String, AttributeValue)...) {
        values = Dictionary(elements, uniquingKeysWith: { _, b in b })
    }

    public subscript(name: String) -> AttributeValue? {
        get { values[name] }
        set { values[name] = newValue }
    }

    public func has(_ name: String) -> Bool { values[name] != nil }

    public func int(_ name: String, default fallback: Int? = nil) throws -> Int {
        switch values[name] {
        case .int(let v): return v
        case .none: if let fallback { return fallback }
        default: break
        }
        throw missingOrWrong(name, "an integer")
    }

    public func float(_ name: String, default fallback: Float? = nil) throws -> Float {
        switch values[name] {
        case .float(let v): return v
        case .int(let v): return Float(v)
        case .none: if let fallback { return fallback }
        default: break
        }
        throw missingOrWrong(name, "a float")
    }

    public func string(_ name: String, default fallback: String? = nil) throws -> String {
        switch values[name] {
        case .string(let v): return v
        case .none: if let fallback { return fallback }
        default: break
        }
        throw missingOrWrong(name, "a string")
    }

    public func ints(_ name: String, default fallback: [Int]? = nil) throws -> [Int] {
        switch values[name] {
        case .ints(let v): return v
        case .int(let v): return [v]
        case .none: if let fallback { return fallback }
        default: break
        }
        throw missingOrWrong(name, "a list of integers")
    }

    public func floats(_ name: String, default fallback: [Float]? = nil) throws -> [Float] {
        switch values[name] {
        case .floats(let v): return v
        case .float(let v): return [v]
        case .none: if let fallback { return fallback }
        default: break
        }
        throw missingOrWrong(name, "a list of floats")
    }

    public func strings(_ name: String, default fallback: [String]? = nil) throws -> [String] {
        switch values[name] {
        case .strings(let v): return v
        case .none: if let fallback { return fallback }
        default: break
        }
        throw missingOrWrong(name, "a list of strings")
    }

    public func subgraph(_ name: String) throws -> Subgraph {
        if case .graph(let g) = values[name] { return g }
        throw missingOrWrong(name, "a graph")
    }

    public func tensor(_ name: String) throws -> Tensor {
        if case .tensor(let t) = values[name] { return t }
        throw missingOrWrong(name, "a tensor")
    }

    private func missingOrWrong(_ name: String, _ kind: String) -> AidgeError {
        values[name] == nil
            ? .invalidModel("attribute '\(name)' is required")
            : .invalidModel("attribute '\(name)' must be \(kind)")
    }
}
