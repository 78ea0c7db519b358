extension Recipes {
    /// Removes `Identity` nodes. Returns the number removed.
    @discardableResult
    public static func removeIdentity(_ graph: GraphView) throws -> Int {
        try bypassAll(graph) { $0.type == "Identity" }
    }

    /// Removes `Dropout` nodes whose mask output is unused (inference Dropout is the identity).
    @discardableResult
    public static func removeDropout(_ graph: GraphView) throws -> Int {
        try bypassAll(graph) { node in
            node.type == "Dropout"
                && !graph.children(of: node).contains { child in child.inputs.contains { $0?.node === node && $0?.index == 1 } }
                && !graph.outputs.contains { $0.node === node && $0.index == 1 }
        }
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
