import AidgeCore

/// A node as the exporter writes it: an ONNX operator type and domain, attributes, and ONNX value names for its
/// edges ("" for an absent optional input or an unused optional output).
struct ExportedNode {
    var type: String
    var domain: String
    var name: String
    var attributes: Attributes
    var inputs: [String]
    var outputs: [String]

    /// Input `index`'s value name, or nil when it is absent.
    func input(_ index: Int) -> String? {
        index < inputs.count && !inputs[index].isEmpty ? inputs[index] : nil
    }

    /// Drops the absent inputs at the end.
    mutating func trimInputs() {
        while let last = inputs.last, last.isEmpty { inputs.removeLast() }
    }

    mutating func setInput(_ index: Int, _ name: String) {
        while inputs.count <= index { inputs.append("") }
        inputs[index] = name
    }
}

/// What rewriting a node needs to know about the graph it is written into.
protocol ExportContext {
    /// The tensor behind a value name when a Producer (an initializer or a constant) gives it.
    func constant(_ name: String) -> Tensor?
    /// The dtype and shape inferred for a value name (the shape may be a placeholder when inputs are symbolic).
    func info(_ name: String) -> ValueInfo?
    /// A node or value name not used anywhere in the model.
    mutating func freshName(_ wanted: String) -> String
    /// Adds an initializer holding `tensor` and returns its name.
    mutating func addInitializer(_ tensor: Tensor, name: String) -> String
}
