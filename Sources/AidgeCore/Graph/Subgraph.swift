/// A graph held by an operator attribute: If's branches, Loop's and Scan's body.
///
/// Its inputs are the formal ones ONNX declares, then the values it reads from the enclosing graph: the importer
/// adds those as trailing inputs of the node, in the same order for every subgraph of the node, so running a
/// subgraph feeds it its formal values followed by the node's trailing inputs.
///
/// A subgraph is read-only once built (planning and running only read it), which is why it may be shared
/// across threads like the other attribute values.
public final class Subgraph: @unchecked Sendable {
    public let graph: GraphView
    /// How many of `graph.inputs` are formal inputs; the rest are values of the enclosing graph.
    public let formalInputCount: Int

    public init(_ graph: GraphView, formalInputCount: Int) {
        self.graph = graph
        self.formalInputCount = formalInputCount
    }
}
