import AidgeCore

/// The string operators (computed by `TextOperators`, which planning also uses for the data-dependent ones).
func registerTextKernels(_ registry: KernelRegistry) {
    registry.register("StringConcat", backend: "cpu") { _ in
        ClosureKernel { inputs, outputs in
            try place(TextOperators.concatenate(try presentInput(inputs, 0), try presentInput(inputs, 1)), "StringConcat", outputs, 0)
        }
    }
    registry.register("RegexFullMatch", backend: "cpu") { request in
        RegexKernel(try TextOperators.regex(try request.attributes.string("pattern")))
    }
    registry.register("StringSplit", backend: "cpu") { request in
        let attributes = request.attributes
        return ClosureKernel { inputs, outputs in
            let results = try TextOperators.split(try presentInput(inputs, 0), attributes)
            for k in results.indices { try place(results[k], "StringSplit", outputs, k) }
        }
    }
    registry.register("StringNormalizer", backend: "cpu") { request in
        let attributes = request.attributes
        return ClosureKernel { inputs, outputs in
            try place(TextOperators.normalize(try presentInput(inputs, 0), attributes), "StringNormalizer", outputs, 0)
        }
    }
    registry.register("ai.onnx.ml.LabelEncoder", backend: "cpu") { request in
        let encoder = try LabelEncoder(request.attributes)
        return ClosureKernel { inputs, outputs in
            try encoder.encode(try presentInput(inputs, 0), into: try firstOutput(outputs))
        }
    }
}

/// Copies `result` into planned output `k`, which must have its shape (the planned shape came from the same
/// computation on the values known when planning).
private func place(_ result: Tensor, _ type: String, _ outputs: [Tensor], _ k: Int) throws {
    guard k < outputs.count else { return }
    guard result.shape == outputs[k].shape else {
        throw AidgeError.shapeMismatch("\(type) gives shape \(result.shape) in this run, planned as \(outputs[k].shape)")
    }
    copyElements(from: result, to: outputs[k])
}

/// RegexFullMatch with its pattern compiled once.
private final class RegexKernel: Kernel {
    let regex: Regex<AnyRegexOutput>

    init(_ regex: Regex<AnyRegexOutput>) { self.regex = regex }

    func run(_ inputs: [Tensor?], _ outputs: [Tensor]) throws {
        try TextOperators.fullMatch(try presentInput(inputs, 0), regex, into: try firstOutput(outputs))
    }
}
