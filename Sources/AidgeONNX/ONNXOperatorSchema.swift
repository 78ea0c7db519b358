import AidgeCore

extension ONNX {
    /// The newest default-domain opset the importer reads: the highest one of the onnx release the operator table
    /// (`ONNXOperatorSchema`) was generated from. A model importing a newer one is refused at load.
    public static let maxSupportedOpset = ONNXOperatorSchema.generatedMaxOpset
}

/// One version of an ONNX operator as the ONNX specification defines it (generated from the onnx package by
/// `scripts/generate_onnx_schemas.py`): its inputs, outputs, attributes and the element types its inputs take.
/// This is the standard's view, used to check models at load and to list what is supported; the engine's own
/// operators are `OperatorSchema`s.
public struct ONNXOperatorSchema: Sendable {
    /// The kinds of an ONNX attribute (AttributeProto.AttributeType's names).
    public enum AttributeKind: String, Sendable, CaseIterable {
        case float = "FLOAT", int = "INT", string = "STRING", tensor = "TENSOR", graph = "GRAPH"
        case floats = "FLOATS", ints = "INTS", strings = "STRINGS", tensors = "TENSORS", graphs = "GRAPHS"
        case sparseTensor = "SPARSE_TENSOR", sparseTensors = "SPARSE_TENSORS"
        case typeProto = "TYPE_PROTO", typeProtos = "TYPE_PROTOS"
    }

    public struct Attribute: Sendable {
        public let name: String
        public let kind: AttributeKind
        public let isRequired: Bool
    }

    /// A formal input or output.
    public struct Parameter: Sendable {
        public enum Option: Sendable { case single, optional, variadic(minArity: Int) }
        public let name: String
        public let option: Option
        /// The type parameter (`T`) that gives its element types, or nil when it has fixed ones (`types`).
        public let typeParameter: String?
        /// Its element types when it has no type parameter (ONNX's names).
        public let fixedTypes: [String]
    }

    public let type: String
    public let sinceVersion: Int
    /// Whether this version is deprecated: the operator is gone from this opset on.
    public let isDeprecated: Bool
    public let inputs: [Parameter]
    public let minInputs: Int
    /// nil: variadic.
    public let maxInputs: Int?
    public let outputNames: [String]
    public let minOutputs: Int
    public let maxOutputs: Int?
    public let attributes: [Attribute]
    /// The element types (ONNX's names: `float`, `int64`, ...) each type parameter allows, in the table's order.
    public let typeConstraints: [(parameter: String, types: [String])]

    /// The element types input `index` takes (ONNX's names); for an operator without inputs, output 0's.
    public func elementTypes(input index: Int) -> [String] {
        guard !inputs.isEmpty else { return typeConstraints.first?.types ?? [] }
        guard let parameter = formalInput(at: index) else { return [] }
        guard let name = parameter.typeParameter else { return parameter.fixedTypes }
        return typeConstraints.first(where: { $0.parameter == name })?.types ?? []
    }

    /// The formal input that position `index` of a node binds (the variadic last one for positions past it).
    public func formalInput(at index: Int) -> Parameter? {
        if index < inputs.count { return inputs[index] }
        if let last = inputs.last, case .variadic = last.option { return last }
        return nil
    }

    /// Whether input position `index` must be given (a non-empty name).
    func isRequired(input index: Int) -> Bool {
        if index < inputs.count, case .single = inputs[index].option { return true }
        guard let last = inputs.last, case .variadic(let arity) = last.option else { return false }
        return index >= inputs.count - 1 && index < inputs.count - 1 + arity
    }

    public func attribute(_ name: String) -> Attribute? { attributes.first { $0.name == name } }
}

extension ONNXOperatorSchema {
    /// Every version of every default-domain operator, by type, oldest first.
    public static let all: [String: [ONNXOperatorSchema]] = versions(table)

    /// Every version of every operator of the other domains the engine may run (ai.onnx.ml, ai.onnx.preview,
    /// ai.onnx.preview.training), by domain and type, oldest first.
    public static let domains: [String: [String: [ONNXOperatorSchema]]] = domainTables.mapValues(versions)

    private static func versions(_ lines: [String]) -> [String: [ONNXOperatorSchema]] {
        var all: [String: [ONNXOperatorSchema]] = [:]
        for line in lines {
            guard let schema = ONNXOperatorSchema(line: line) else { continue }
            all[schema.type, default: []].append(schema)
        }
        return all.mapValues { $0.sorted { $0.sinceVersion < $1.sinceVersion } }
    }

    /// The version of `type` in effect at `opset` (the newest one not after it), or nil when `type` is not a
    /// default-domain operator or did not exist yet.
    public static func schema(_ type: String, opset: Int) -> ONNXOperatorSchema? {
        all[type]?.last { $0.sinceVersion <= opset }
    }

    /// The engine's dtype of an ONNX element type name (`float` -> float32), nil for those it has not (complex, ...).
    public static func dtype(onnxName name: String) -> DType? {
        switch name {
        case "float": return .float32
        case "double": return .float64
        case "float16": return .float16
        case "bfloat16": return .bfloat16
        case "float8e4m3fn": return .float8E4M3FN
        case "float8e4m3fnuz": return .float8E4M3FNUZ
        case "float8e5m2": return .float8E5M2
        case "float8e5m2fnuz": return .float8E5M2FNUZ
        case "float4e2m1": return .float4E2M1
        case "float8e8m0": return .float8E8M0
        default: return DType(rawValue: name).flatMap { $0.isFloatingPoint ? nil : $0 }
        }
    }

    /// Parses one line of the generated table (format: `scripts/generate_onnx_schemas.py`).
    init?(line: String) {
        let f = line.split(separator: ";", omittingEmptySubsequences: false).map(String.init)
        guard f.count == 11, let since = Int(f[1]), let minIn = Int(f[4]), let minOut = Int(f[7]) else { return nil }
        func list(_ s: String, _ separator: Character = ",") -> [String] {
            s.isEmpty ? [] : s.split(separator: separator, omittingEmptySubsequences: false).map(String.init)
        }
        func parameter(_ text: String) -> Parameter {
            var name = text
            var typeParameter: String?
            var fixed: [String] = []
            if let colon = text.firstIndex(of: ":") {
                name = String(text[..<colon])
                let rest = String(text[text.index(after: colon)...])
                if rest.hasPrefix("(") {
                    fixed = list(String(rest.dropFirst().dropLast()))
                } else {
                    typeParameter = rest
                }
            }
            var option = Parameter.Option.single
            if name.hasSuffix("?") {
                name.removeLast()
                option = .optional
            } else if let star = name.firstIndex(of: "*") {
                option = .variadic(minArity: Int(name[name.index(after: star)...]) ?? 1)
                name = String(name[..<star])
            }
            return Parameter(name: name, option: option, typeParameter: typeParameter, fixedTypes: fixed)
        }
        type = f[0]
        sinceVersion = since
        isDeprecated = f[2] == "d"
        inputs = list(f[3]).map(parameter)
        minInputs = minIn
        maxInputs = Int(f[5])
        outputNames = list(f[6]).map { parameter($0).name }
        minOutputs = minOut
        maxOutputs = Int(f[8])
        attributes = list(f[9]).compactMap { text in
            guard let colon = text.firstIndex(of: ":") else { return nil }
            var kind = String(text[text.index(after: colon)...])
            let required = kind.hasSuffix("!")
            if required { kind.removeLast() }
            guard let k = AttributeKind(rawValue: kind) else { return nil }
            return Attribute(name: String(text[..<colon]), kind: k, isRequired: required)
        }
        typeConstraints = list(f[10], "/").compactMap { text in
            guard let eq = text.firstIndex(of: "=") else { return nil }
            return (String(text[..<eq]), list(String(text[text.index(after: eq)...])))
        }
    }
}
