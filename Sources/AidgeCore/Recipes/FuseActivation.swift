extension Recipes {
    /// Fuses a `Relu`, or a `Clip` with constant bounds, that is the only reader of a `Conv` or `Gemm` into it, as
    /// ONNX Runtime's FusedConv does: the node gets the attributes `activation` ("Relu" or "Clip") and, for Clip,
    /// `activation_params` = [min, max]; the CPU kernels apply them in their output pass. Run after
    /// `fuseBatchNorm` (a BatchNormalization between the two hides the pair). Returns the number fused.
    @discardableResult
    public static func fuseActivation(_ graph: GraphView) throws -> Int {
        if graph.isTraining { return 0 }  // backward runs the activation as its own node
        var fused = 0
        for act in graph.nodes where act.type == "Relu" || act.type == "Clip" {
            guard let (source, index) = act.inputs.first ?? nil, index == 0, graph.contains(source),
                source.type == "Conv" || source.type == "Gemm", source.outputCount == 1,
                !source.op.attributes.has("activation"), graph.children(of: source).count == 1,
                !graph.outputs.contains(where: { $0.node === source })
            else { continue }
            var attributes = source.op.attributes
            if act.type == "Relu" {
                attributes["activation"] = .string("Relu")
            } else {
                // Bounds must be known now: absent, or produced by a constant.
                var bounds: [Float] = [-.infinity, .infinity]
                var known = true
                for i in 1..<min(3, act.inputs.count) {
                    guard let input = act.inputs[i] else { continue }
                    guard let value = input.node.producedTensor, value.count == 1,
                        let bound = value.doubles().first
                    else {
                        known = false
                        break
                    }
                    bounds[i - 1] = Float(bound)
                }
                if !known { continue }
                attributes["activation"] = .string("Clip")
                attributes["activation_params"] = .floats(bounds)
            }
            guard try graph.bypass(act) else { continue }  // the bound Producers go with it
            source.op.attributes = attributes
            source.outputNames = act.outputNames  // the value is the activation's now
            fused += 1
        }
        return fused
    }
}
