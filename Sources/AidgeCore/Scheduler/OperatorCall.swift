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
        let call = try OneNodeGraph(type, attributes, inputs: inputs, constants: constants, outputs: outputs)
        return try Scheduler(call.graph, backend: backend).forward(call.fed)
    }

    /// Runs one operator forward (recorded) and backward from `outputGradients` (one per output; nil for none):
    /// returns its outputs and the gradient of each float input that is not a constant (nil for constants,
    /// integer inputs and absent inputs). `training` runs the training forms (batch statistics, dropout).
    public static func operatorGradients(
        _ type: String, _ attributes: Attributes = [:], inputs: [Tensor?], constants: Set<Int> = [],
        outputs: Int? = nil, outputGradients: [Tensor?], training: Bool = false, backend: String = "cpu"
    ) throws -> (outputs: [Tensor], inputGradients: [Tensor?]) {
        let call = try OneNodeGraph(type, attributes, inputs: inputs, constants: constants, outputs: outputs)
        let scheduler = Scheduler(call.graph, backend: backend)
        let recording = try scheduler.forward(call.fed, mode: PlanMode(training: training, recording: true))
        let fedGradients = try scheduler.backward(
            recording, outputGradients: outputGradients,
            inputs: Set(call.fed.indices.filter { call.fed[$0].dtype.isFloatingPoint }))
        var gradients = [Tensor?](repeating: nil, count: inputs.count)
        for (k, i) in call.fedIndices.enumerated() { gradients[i] = fedGradients[k] }
        return (recording.outputs, gradients)
    }
}

/// A graph of one node: constants as Producers, the other present inputs as graph inputs.
struct OneNodeGraph {
    let graph: GraphView
    let fed: [Tensor]
    /// The operator input index of each graph input.
    let fedIndices: [Int]

    init(_ type: String, _ attributes: Attributes, inputs: [Tensor?], constants: Set<Int>, outputs: Int?) throws {
        try self.init(Operator(type, attributes: attributes), inputs: inputs, constants: constants, outputs: outputs)
    }

    init(_ op: Operator, inputs: [Tensor?], constants: Set<Int>, outputs: Int?) throws {
        let node = Node(op, inputCount: inputs.count, outputCount: outputs)
        let type = op.type
        let graph = GraphView(name: type)
        graph.add(node, includeProducers: false)
        var fed: [Tensor] = []
        var fedIndices: [Int] = []
        for (i, input) in inputs.enumerated() {
            guard let input else { continue }
            if constants.contains(i) {
                let producer = Node.producer(input, constant: true)
                try node.setInput(i, from: producer)
                graph.add(producer, includeProducers: false)
            } else {
                graph.inputs.append(GraphInput(name: "in\(i)", dtype: input.dtype, shape: nil, consumers: [(node, i)]))
                fed.append(input)
                fedIndices.append(i)
            }
        }
        graph.outputs = (0..<node.outputCount).map { GraphOutput(name: "out\($0)", node: node, index: $0) }
        self.graph = graph
        self.fed = fed
        self.fedIndices = fedIndices
    }
}
