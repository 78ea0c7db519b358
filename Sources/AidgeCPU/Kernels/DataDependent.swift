import AidgeCore

/// NonZero, Compress, Unique and NonMaxSuppression: planning computes them (their outputs' shapes are their
/// values' doing), so a kernel only runs when a plan asks for one anyway; it computes the same way and checks
/// that the results fit the planned outputs.
func registerDataDependentKernels(_ registry: KernelRegistry) {
    for type in ["NonZero", "Compress", "Unique", "NonMaxSuppression"] {
        registry.register(type, backend: "cpu") { request in
            let attributes = request.attributes
            return ClosureKernel { inputs, outputs in
                let axis = attributes.has("axis") ? try attributes.int("axis") : nil
                let results: [Tensor]
                switch type {
                case "NonZero": results = [try DataDependentOperators.nonZero(try presentInput(inputs, 0))]
                case "Compress":
                    results = [try DataDependentOperators.compress(try presentInput(inputs, 0), try presentInput(inputs, 1), axis: axis)]
                case "Unique":
                    let sorted = try attributes.int("sorted", default: 1) != 0
                    results = try DataDependentOperators.unique(try presentInput(inputs, 0), axis: axis, sorted: sorted)
                default:
                    let center = try attributes.int("center_point_box", default: 0) != 0
                    results = [try DataDependentOperators.nonMaxSuppression(inputs, centerPointBox: center)]
                }
                for (result, output) in zip(results, outputs) {
                    guard result.shape == output.shape else {
                        throw AidgeError.shapeMismatch(
                            "\(type) gives shape \(result.shape) in this run, planned as \(output.shape)")
                    }
                    copyElements(from: result, to: output)
                }
            }
        }
    }
}
