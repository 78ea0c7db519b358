extension Recipes {
    /// Aidge's `matmul_to_fc`: a `MatMul` by a constant 2-D weight, with the `Add` of a constant bias that is its
    /// only reader if there is one, becomes one `Gemm` (an FC layer). Only where the data input is known to be a
    /// matrix (a rank-2 graph input, or the output of `Flatten` or `Gemm`), since `Gemm` takes matrices only.
    /// Returns the number of MatMul nodes replaced.
    @discardableResult
    public static func matMulToFC(_ graph: GraphView) throws -> Int {
        var fused = 0
        for matmul in graph.nodes where matmul.type == "MatMul" && matmul.inputs.count == 2 {
            guard let weightNode = matmul.inputs[1]?.node, let weight = weightNode.producedTensor, weight.rank == 2,
                isMatrix(matmul, in: graph)
            else { continue }
            // The bias: an Add whose other operand is a constant of N values.
            let readers = graph.children(of: matmul)
            var add: Node?
            var bias: Node?
            if readers.count == 1, readers[0].type == "Add", readers[0].inputs.count == 2,
                !graph.outputs.contains(where: { $0.node === matmul })
            {
                let other = readers[0].inputs.first { $0?.node !== matmul } ?? nil
                if let other, let b = other.node.producedTensor, b.dtype == weight.dtype, b.count == weight.shape[1],
                    b.rank == 1 || (b.rank == 2 && b.shape[0] == 1)
                {
                    add = readers[0]
                    bias = other.node
                }
            }
            let gemm = Node(Operator("Gemm"), name: "\(matmul.name)_fc", inputCount: 3)
            if let data = matmul.inputs[0] { try gemm.setInput(0, from: data.node, output: data.index) }
            try gemm.setInput(1, from: weightNode)
            if let bias { try gemm.setInput(2, from: bias) }
            graph.add(gemm, includeProducers: false)
            graph.moveGraphInputReaders(from: matmul, to: gemm)
            try graph.replaceUses(of: (add ?? matmul, 0), with: (gemm, 0))
            for node in [matmul, add].compactMap({ $0 }) {
                node.disconnectInputs()
                graph.remove(node)
            }
            fused += 1
        }
        return fused
    }

    /// Whether the data input of `node` is known to be 2-D.
    private static func isMatrix(_ node: Node, in graph: GraphView) -> Bool {
        if let source = node.inputs[0] {
            return source.node.type == "Flatten" || source.node.type == "Gemm"
        }
        let input = graph.inputs.first { $0.consumers.contains { $0.node === node && $0.index == 0 } }
        return input?.shape?.count == 2
    }
}
