/// Which ONNX operator versions the importer reads faithfully, and the engine operator each ONNX type becomes:
/// the facts behind the opset ranges that `ONNX.supportedOperators` reports.
extension OpsetAdapters {
    /// The first version of an operator whose form the importer handles, where older versions have a form that
    /// `adapt` does not rewrite (other operators: every version). Keep this in step with `adapt`.
    static let firstHandledVersion: [String: Int] = {
        var first: [String: Int] = [:]
        // Before 7 these took `broadcast` and `axis` (B aligned at `axis`, not numpy broadcasting).
        for type in ["Add", "Sub", "Mul", "Div", "Pow", "And", "Or", "Xor", "Equal", "Greater", "Less"] {
            first[type] = 7
        }
        first["BatchNormalization"] = 9  // before 9: `spatial` (0: statistics per activation) is not read
        first["Cast"] = 6  // Cast-1 names the target type with a string
        first["Concat"] = 4  // Concat-1's `axis` is optional (default 1); the engine requires it
        first["Pad"] = 2  // Pad-1 names its attribute `paddings`
        first["LpPool"] = 2  // LpPool-1's `p` is a float
        first["GlobalLpPool"] = 2  // likewise
        first["Tile"] = 6  // Tile-1 takes `tiles` and `axis` inputs
        first["TopK"] = 10  // before 10, `k` is an attribute
        first["Upsample"] = 7  // Upsample-1 takes `height_scale` and `width_scale`
        first["Scan"] = 9  // Scan-8 is batched, with sequence_lens (`adapt` refuses it)
        first["GroupNormalization"] = 21  // GroupNormalization-18 scales per group, not per channel
        first["ai.onnx.ml.LabelEncoder"] = 2  // LabelEncoder-1 maps with classes_strings (keys and values since 2)
        return first
    }()

    /// ONNX types that the importer renames to another engine operator.
    static let renamed: [String: String] = ["Scatter": "ScatterElements", "Upsample": "Resize"]

    /// The engine operator that nodes of the ONNX type `type` run as.
    static func engineType(_ type: String) -> String { renamed[type] ?? type }
}
