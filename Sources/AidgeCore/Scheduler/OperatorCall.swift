extension Scheduler {
    /// Runs one operator on `inputs` through a one-node graph, as a model would (eager calls: tensor arithmetic
    /// from Python, kernel tests).
    ///
    /// `constants` are fed as Producer nodes (known when planning: shapes, axes, weights), the rest as graph
    /// inputs. nil in `inputs` leaves an optional input absent.
    public static func runOperator(
        _ type: String, _ attributes: Attributes = [:], inputs: [Tensor?], constants: Set<Int> = [],
        outputs: Int? = nil, backend: String = "cpu"
    ) throws -> [Tensor] {
        let node = Node(Operator(type, attributes: attributes), inputCount: inputs.count, outputCount: outputs)
        let graph = GraphView(name: type)
        graph.add(node, includeProducers: false)
        var fed: [Tensor] = []
        for (i, input) in inputs.enumerated() {
            guard let input else { continue }
            if constants.contains(i) {
                let producer = Node.producer(input)
                try node.setInput(i, from: producer)
                graph.add(producer, includeProducers: false)
            } else {
                graph.inputs.append(GraphInput(name: "in\(i)", dtype: input.dtype, shape: nil, consumers: [(node, i)]))
                fed.append(input)
            }
        }
        graph.outputs = (0..<node.outputCount).map { GraphOutput(name: "out\($0)", node: node, index: $0) }
        return try Scheduler(graph, backend: backend).forward(fed)
    }
}
