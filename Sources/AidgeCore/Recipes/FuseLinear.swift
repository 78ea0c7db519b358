extension Recipes {
    /// Fuses `MatMul(X, Transpose(W))`, and the `Add` of a bias of N values that is its only reader if there is
    /// one, into the engine's `Linear` (Y = X Wᵀ + B over the last axis of X): how exporters write `nn.Linear` on
    /// inputs of more than two dimensions. W and B stay the Producers they were (parameters keep their gradients),
    /// so it applies in training mode too; one GEMM replaces a transpose, a product and an addition, forward and
    /// backward. Returns the number of MatMul nodes replaced.
    @discardableResult
    public static func fuseLinear(_ graph: GraphView) throws -> Int {
        var fused = 0
        for matmul in graph.nodes where matmul.type == "MatMul" && matmul.inputs.count == 2 {
            guard let transpose = matmul.inputs[1]?.node, transpose.type == "Transpose", graph.contains(transpose),
                transpose.outputCount == 1, graph.children(of: transpose).count == 1,
                !graph.outputs.contains(where: { $0.node === transpose }),
                let weight = transpose.inputs.first??.node, weight.type == "Producer",
                let value = weight.producedTensor, value.rank == 2, value.dtype.isFloatingPoint,
                (try? transpose.op.attributes.ints("perm", default: [1, 0])) == [1, 0]
            else { continue }
            let bias = biasAdd(after: matmul, in: graph, values: value.shape[0], dtype: value.dtype)
            let linear = Node(Operator("Linear"), name: "\(matmul.name)_linear", inputCount: 3)
            if let data = matmul.inputs[0] {
                try linear.setInput(0, from: data.node, output: data.index)
            }
            graph.moveGraphInputReaders(from: matmul, to: linear)
            try linear.setInput(1, from: weight)
            if let bias { try linear.setInput(2, from: bias.producer) }
            let last = bias?.add ?? matmul
            linear.outputNames = last.outputNames
            graph.add(linear, includeProducers: false)
            try graph.replaceUses(of: (last, 0), with: (linear, 0))
            for node in [bias?.add, matmul, transpose].compactMap({ $0 }) {
                node.disconnectInputs()
                graph.remove(node)
            }
            fused += 1
        }
        return fused
    }

    /// The `Add` that is `node`'s only reader, with a Producer of `values` values (shape [N]) as its other operand.
    private static func biasAdd(
        after node: Node, in graph: GraphView, values: Int, dtype: DType
    ) -> (add: Node, producer: Node)? {
        let readers = graph.children(of: node)
        guard readers.count == 1, readers[0].type == "Add", readers[0].inputs.count == 2,
            !graph.outputs.contains(where: { $0.node === node })
        else { return nil }
        let add = readers[0]
        guard let other = add.inputs.first(where: { $0?.node !== node }) ?? nil, other.node.type == "Producer",
            let b = other.node.producedTensor, b.shape == [values], b.dtype == dtype
        else { return nil }
        return (add, other.node)
    }
}
