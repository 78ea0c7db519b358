extension Recipes {
    /// Removes `Identity` nodes, and `Dropout` nodes whose ratio is a constant 0 (the identity in training mode
    /// too, as exporters write `nn.Dropout(p=0)`). Returns the number removed.
    @discardableResult
    public static func removeIdentity(_ graph: GraphView) throws -> Int {
        try bypassAll(graph) { node in
            node.type == "Identity" || (node.type == "Dropout" && hasZeroRatio(node) && !usesMask(node, graph))
        }
    }

    /// Whether a Dropout's ratio (input 1, or the `ratio` attribute before opset 12) is known to be 0.
    private static func hasZeroRatio(_ dropout: Node) -> Bool {
        if dropout.inputs.count > 1, let ratio = dropout.inputs[1] {
            guard !ratio.node.isVariableProducer, let value = ratio.node.producedTensor, value.count == 1 else {
                return false
            }
            return value.doubles().first == 0
        }
        return dropout.op.attributes.has("ratio") && (try? dropout.op.attributes.float("ratio")) == 0
    }

    /// Whether a Dropout's mask output is read.
    private static func usesMask(_ dropout: Node, _ graph: GraphView) -> Bool {
        graph.children(of: dropout).contains { child in child.inputs.contains { $0?.node === dropout && $0?.index == 1 } }
            || graph.outputs.contains { $0.node === dropout && $0.index == 1 }
    }

    /// Removes `Dropout` nodes whose mask output is unused (inference Dropout is the identity).
    @discardableResult
    public static func removeDropout(_ graph: GraphView) throws -> Int {
        try bypassAll(graph) { node in node.type == "Dropout" && !usesMask(node, graph) }
    }

    /// Removes `Flatten` nodes that feed only `Gemm`/`FC` inputs 0 of rank-2 data (Aidge's `remove_flatten`).
    @discardableResult
    public static func removeFlatten(_ graph: GraphView) throws -> Int {
        try bypassAll(graph) { node in
            node.type == "Flatten" && !graph.outputs.contains { $0.node === node }
                && graph.children(of: node).allSatisfy { $0.type == "FC" }
        }
    }

    private static func bypassAll(_ graph: GraphView, where matches: (Node) -> Bool) throws -> Int {
        var removed = 0
        for node in graph.nodes where matches(node) {
            if try graph.bypass(node) { removed += 1 }
        }
        return removed
    }
}
