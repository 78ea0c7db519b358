/// Runs one subgraph of a node from a kernel of any backend (FlexAttention's modifiers): a scheduler of its own
/// plans it once per input shapes and dtypes, as the enclosing graph is planned. The subgraph is fed its formal
/// inputs, then the values it reads from the enclosing graph (the node's trailing inputs, see `Subgraph`).
public final class SubgraphRunner {
    public let subgraph: Subgraph
    private let scheduler: Scheduler

    public init(_ subgraph: Subgraph, backend: String) {
        self.subgraph = subgraph
        scheduler = Scheduler(subgraph: subgraph, backend: backend)
    }

    /// The subgraph's outputs for its `formal` inputs followed by the `captured` values.
    public func run(_ formal: [Tensor], captured: [Tensor]) throws -> [Tensor] {
        guard formal.count == subgraph.formalInputCount else {
            throw AidgeError.invalidModel(
                "the subgraph takes \(subgraph.formalInputCount) inputs of its own, it is fed \(formal.count)")
        }
        return try scheduler.forward(formal + captured, mode: .inference).outputs
    }
}
