/// Something the graph builders can chain: a node (with its producers) or a graph.
public protocol GraphComponent {
    var asGraph: GraphView { get }
}

extension Node: GraphComponent {
    public var asGraph: GraphView {
        let graph = GraphView(name: name)
        graph.add(self)
        graph.updateInputsOutputs()
        return graph
    }
}

extension GraphView: GraphComponent {
    public var asGraph: GraphView { self }
}

extension GraphView {
    /// Chains components: each one's outputs feed the next one's inputs (one output feeds every input; otherwise
    /// outputs and inputs pair up in order).
    public static func sequential(_ components: [GraphComponent], name: String = "sequential") throws -> GraphView {
        let graph = GraphView(name: name)
        var previous: GraphView?
        var firstInputs: [GraphInput] = []
        for component in components {
            let next = component.asGraph
            if let previous {
                let outs = previous.outputs
                let ins = next.inputs
                if outs.count == ins.count {
                    for (o, i) in zip(outs, ins) { try connect(o, i) }
                } else if outs.count == 1 {
                    for i in ins { try connect(outs[0], i) }
                } else {
                    throw AidgeError.invalidArgument(
                        "cannot chain \(outs.count) outputs of \(previous.name) into \(ins.count) inputs of \(next.name)")
                }
            } else {
                firstInputs = next.inputs
            }
            graph.add(next)
            previous = next
        }
        graph.inputs = firstInputs
        graph.outputs = previous?.outputs ?? []
        return graph
    }

    /// Puts components side by side: their inputs and outputs are concatenated in order.
    public static func parallel(_ components: [GraphComponent], name: String = "parallel") -> GraphView {
        let graph = GraphView(name: name)
        for component in components {
            let g = component.asGraph
            graph.add(g)
            graph.inputs += g.inputs
            graph.outputs += g.outputs
        }
        return graph
    }

    /// A sequential chain plus a skip connection: the chain's input is added to its output.
    public static func residual(_ components: [GraphComponent], name: String = "residual") throws -> GraphView {
        let body = try sequential(components, name: name)
        guard body.outputs.count == 1, body.inputs.count == 1 else {
            throw AidgeError.invalidArgument("a residual block needs one input and one output")
        }
        let add = Node(Operator("Add"), name: "\(name)_add")
        try add.setInput(0, from: body.outputs[0].node, output: body.outputs[0].index)
        body.add(add)
        body.inputs[0].consumers.append((add, 1))
        body.outputs = [GraphOutput(name: add.outputNames[0], node: add)]
        return body
    }

    private static func connect(_ output: GraphOutput, _ input: GraphInput) throws {
        for consumer in input.consumers {
            try consumer.node.setInput(consumer.index, from: output.node, output: output.index)
        }
    }
}
