extension Recipes {
    /// Fuses GELU written out as exporters write it, `x * (1 + erf(x / √2)) * 0.5` (the Div may be a Mul by
    /// 1/√2; the Add, the two Muls and the scale of 0.5 in either order and operand order), into one `Gelu` node:
    /// one pass over the data instead of five, forward and backward. It reads only constants besides `x`, so it
    /// applies in training mode too. Returns the number fused.
    @discardableResult
    public static func fuseGelu(_ graph: GraphView) throws -> Int {
        var fused = 0
        for erf in graph.nodes where erf.type == "Erf" {
            guard let match = geluPattern(graph, erf) else { continue }
            let gelu = Node(Operator("Gelu", attributes: [:]))
            gelu.outputNames = match.output.outputNames
            graph.add(gelu, includeProducers: false)
            switch match.x {
            case .output(let node, let index): try gelu.setInput(0, from: node, output: index)
            case .graphInput(let i): graph.inputs[i].consumers.append((gelu, 0))
            }
            try graph.replaceUses(of: (match.output, 0), with: (gelu, 0))
            match.removed.forEach(graph.removeWithProducers)
            fused += 1
        }
        return fused
    }

    /// Where a value comes from: a node's output or a graph input.
    private enum Source: Equatable {
        case output(Node, Int)
        case graphInput(Int)

        static func == (a: Source, b: Source) -> Bool {
            switch (a, b) {
            case (.output(let n, let i), .output(let m, let j)): return n === m && i == j
            case (.graphInput(let i), .graphInput(let j)): return i == j
            default: return false
            }
        }
    }

    private static func source(_ graph: GraphView, of node: Node, input: Int) -> Source? {
        if let edge = node.inputs[input] { return .output(edge.node, edge.index) }
        let i = graph.inputs.firstIndex { $0.consumers.contains { $0.node === node && $0.index == input } }
        return i.map { .graphInput($0) }
    }

    private struct GeluMatch {
        let x: Source
        /// The node whose output is the GELU, and every node of the pattern.
        let output: Node
        let removed: [Node]
    }

    /// The GELU pattern around `erf`, if every intermediate value has no other reader.
    private static func geluPattern(_ graph: GraphView, _ erf: Node) -> GeluMatch? {
        // x / √2 or x * (1/√2).
        guard let scaleNode = erf.inputs.first??.node, graph.contains(scaleNode), soleReader(graph, of: scaleNode),
            let (x, divisor) = operandAndConstant(graph, scaleNode),
            scaleNode.type == "Div" && isClose(divisor, 2.0.squareRoot())
                || scaleNode.type == "Mul" && isClose(divisor, 0.5.squareRoot()),
            soleReader(graph, of: erf),
            let plusOne = onlyChild(graph, erf), plusOne.type == "Add",
            let (_, one) = operandAndConstant(graph, plusOne), isClose(one, 1), soleReader(graph, of: plusOne),
            let product = onlyChild(graph, plusOne), product.type == "Mul", product.inputs.count == 2,
            let side = product.inputs.firstIndex(where: { $0?.node !== plusOne }),
            let other = source(graph, of: product, input: side)
        else { return nil }
        // Either (x * (1 + erf)) * 0.5, or (x * 0.5) * (1 + erf).
        if other == x {
            guard soleReader(graph, of: product), let half = onlyChild(graph, product), half.type == "Mul",
                let (_, c) = operandAndConstant(graph, half), isClose(c, 0.5)
            else { return nil }
            return GeluMatch(x: x, output: half, removed: [half, product, plusOne, erf, scaleNode])
        }
        if case .output(let halfX, _) = other, graph.contains(halfX), halfX.type == "Mul",
            soleReader(graph, of: halfX), let (y, c) = operandAndConstant(graph, halfX), y == x, isClose(c, 0.5)
        {
            return GeluMatch(x: x, output: product, removed: [product, halfX, plusOne, erf, scaleNode])
        }
        return nil
    }

    /// For a binary node with one operand a scalar constant: the other operand and the constant's value.
    private static func operandAndConstant(_ graph: GraphView, _ node: Node) -> (Source, Double)? {
        guard node.inputs.count == 2 else { return nil }
        for (operandIndex, constantIndex) in [(0, 1), (1, 0)] {
            if node.type == "Div" && constantIndex == 0 { continue }  // c / x is not x / c
            guard let constant = node.inputs[constantIndex]?.node, constant.type == "Producer",
                !constant.isVariableProducer, let value = constant.producedTensor, value.count == 1,
                value.dtype.isFloatingPoint, let scalar = value.doubles().first,
                let operand = source(graph, of: node, input: operandIndex)
            else { continue }
            return (operand, scalar)
        }
        return nil
    }

    private static func soleReader(_ graph: GraphView, of node: Node) -> Bool {
        node.outputCount == 1 && graph.children(of: node).count == 1
            && !graph.outputs.contains(where: { $0.node === node })
    }

    private static func onlyChild(_ graph: GraphView, _ node: Node) -> Node? {
        let children = graph.children(of: node)
        return children.count == 1 ? children[0] : nil
    }

    private static func isClose(_ a: Double, _ b: Double) -> Bool { abs(a - b) <= 1e-6 * max(1, abs(b)) }
}
