extension Recipes {
    /// Folds each inference `BatchNormalization` that is the only reader of a `Conv` into the convolution's
    /// weight and bias: w' = w·γ/√(σ²+ε), b' = (b − μ)·γ/√(σ²+ε) + β. Returns the number fused (none in training
    /// mode).
    @discardableResult
    public static func fuseBatchNorm(_ graph: GraphView) throws -> Int {
        if graph.isTraining { return 0 }  // the weights and the normalisation's parameters are trained
        var fused = 0
        for bn in graph.nodes where bn.type == "BatchNormalization" && bn.outputCount == 1 {
            guard let (conv, index) = bn.inputs.first ?? nil, index == 0, conv.type == "Conv",
                graph.children(of: conv).count == 1, !graph.outputs.contains(where: { $0.node === conv }),
                let weight = conv.inputs.count > 1 ? conv.inputs[1]?.node.producedTensor : nil,
                weight.dtype == .float32 || weight.dtype == .float64,
                bn.inputs.count >= 5
            else { continue }
            let params = bn.inputs[1...4].map { $0?.node.producedTensor }
            guard params.allSatisfy({ $0 != nil && $0?.dtype == weight.dtype }) else { continue }
            let p = params.compactMap { $0 }.map { $0.doubles() }
            let (gamma, beta, mean, variance) = (p[0], p[1], p[2], p[3])
            let outChannels = weight.shape.first ?? 0
            guard gamma.count == outChannels, beta.count == outChannels, mean.count == outChannels,
                variance.count == outChannels, outChannels > 0
            else { continue }
            let epsilon = Double(try bn.op.attributes.float("epsilon", default: 1e-5))
            let bias = (conv.inputs.count > 2 ? conv.inputs[2]?.node.producedTensor : nil)?.doubles()
                ?? [Double](repeating: 0, count: outChannels)
            guard bias.count == outChannels else { continue }

            var w = weight.doubles()
            let perChannel = w.count / outChannels
            var b = [Double](repeating: 0, count: outChannels)
            for c in 0..<outChannels {
                let scale = gamma[c] / (variance[c] + epsilon).squareRoot()
                for k in 0..<perChannel { w[c * perChannel + k] *= scale }
                b[c] = (bias[c] - mean[c]) * scale + beta[c]
            }
            let newWeight = try Tensor(w, shape: weight.shape).cast(to: weight.dtype)
            let newBias = Tensor(b).cast(to: weight.dtype)
            // New producers: the old ones may be shared with other nodes.
            let wNode = Node.producer(newWeight, name: "\(conv.name)_w_fused", constant: true)
            let bNode = Node.producer(newBias, name: "\(conv.name)_b_fused", constant: true)
            try conv.setInput(1, from: wNode)
            try conv.setInput(2, from: bNode)
            graph.add(wNode, includeProducers: false)
            graph.add(bNode, includeProducers: false)
            try graph.replaceUses(of: (bn, 0), with: (conv, 0))
            conv.outputNames = bn.outputNames  // the convolution now carries the normalised value
            let old = bn.parents.compactMap { $0 }.filter { $0.type == "Producer" }
            bn.disconnectInputs()
            graph.remove(bn)
            for producer in old where graph.children(of: producer).isEmpty { graph.remove(producer) }
            fused += 1
        }
        for producer in graph.producers where graph.children(of: producer).isEmpty && !graph.outputs.contains(where: { $0.node === producer }) {
            graph.remove(producer)
        }
        return fused
    }
}
