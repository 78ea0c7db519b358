import AidgeCore

/// A node between reading and wiring: ONNX names for its edges, its operator in the engine's (latest-opset) form.
struct ImportedNode {
    enum Input {
        /// An ONNX value name.
        case value(String)
        /// A constant that the importer adds (an attribute of an older opset that is now an input).
        case constant(Tensor)
        /// An absent optional input.
        case absent
    }

    var type: String
    var domain: String
    var name: String
    var attributes: Attributes
    var inputs: [Input]
    var outputs: [String]
}
