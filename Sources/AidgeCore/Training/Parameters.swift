extension GraphView {
    /// The Producers that training updates through gradients, in graph order: variable Producers of a float
    /// dtype that feed at least one differentiable input (weights and biases; not shapes, not running
    /// statistics).
    public var parameters: [Node] { variableProducerRoles().trainable }

    /// Variable Producers that a plan reads at each run when parameters may change: the trainable ones and the
    /// state that training updates in place.
    func variableProducers() -> Set<ObjectIdentifier> {
        let (trainable, state) = variableProducerRoles()
        return Set((trainable + state).map(ObjectIdentifier.init))
    }

    private func variableProducerRoles() -> (trainable: [Node], state: [Node]) {
        var trainable: [Node] = []
        var state: [Node] = []
        var seen = Set<ObjectIdentifier>()
        for node in nodes {
            guard let schema = node.op.schema else { continue }
            for (i, source) in node.inputs.enumerated() {
                guard let producer = source?.node, producer.isParameter, let dtype = producer.producedTensor?.dtype
                else { continue }
                let isState = schema.stateInputs.contains(i)
                guard isState || schema.isDifferentiable(input: i, dtype: dtype),
                    seen.insert(ObjectIdentifier(producer)).inserted
                else { continue }
                if isState { state.append(producer) } else { trainable.append(producer) }
            }
        }
        return (trainable, state)
    }
}
