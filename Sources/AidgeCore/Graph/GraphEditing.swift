extension GraphView {
    /// Makes every reader of `old` (nodes of the view and graph outputs) read `new` instead.
    public func replaceUses(of old: (node: Node, index: Int), with new: (node: Node, index: Int)) throws {
        for child in children(of: old.node) {
            for (i, source) in child.inputs.enumerated() where source?.node === old.node && source?.index == old.index {
                try child.setInput(i, from: new.node, output: new.index)
            }
        }
        for i in outputs.indices where outputs[i].node === old.node && outputs[i].index == old.index {
            outputs[i].node = new.node
            outputs[i].index = new.index
        }
    }

    /// Removes a node whose output 0 equals its input 0 (Identity, inference Dropout), wiring its readers to its
    /// parent. Returns false when the node reads a graph input directly and feeds a graph output (nothing to
    /// rewire to).
    @discardableResult
    public func bypass(_ node: Node) throws -> Bool {
        if let source = node.inputs.first ?? nil {
            try replaceUses(of: (node, 0), with: source)
        } else {
            guard let inputIndex = inputs.firstIndex(where: { $0.consumers.contains { $0.node === node } }),
                !outputs.contains(where: { $0.node === node })
            else { return false }
            let readers = children(of: node).flatMap { child in
                child.inputs.enumerated().filter { $0.element?.node === node }.map { (child, $0.offset) }
            }
            for (child, i) in readers { try child.setInput(i, from: nil) }
            inputs[inputIndex].consumers.removeAll { $0.node === node }
            inputs[inputIndex].consumers += readers.map { (node: $0.0, index: $0.1) }
        }
        removeWithProducers(node)
        return true
    }

    /// Disconnects and removes `node`, and the Producers that fed only it (a Dropout's ratio, a Clip's bounds).
    public func removeWithProducers(_ node: Node) {
        let parents = node.parents.compactMap { $0 }
        node.disconnectInputs()
        remove(node)
        for parent in parents where parent.type == "Producer" && children(of: parent).isEmpty
            && !outputs.contains(where: { $0.node === parent })
        {
            remove(parent)
        }
    }

    /// Makes the graph inputs that `old` reads feed `new` instead, at the same input positions.
    public func moveGraphInputReaders(from old: Node, to new: Node) {
        for i in inputs.indices {
            for j in inputs[i].consumers.indices where inputs[i].consumers[j].node === old {
                inputs[i].consumers[j].node = new
            }
        }
    }

    /// Aidge's `replace`: swaps the nodes `old` (a connected piece with one data input and one output) for the
    /// chain `new`, connecting the new chain where the old piece was.
    public func replace(_ old: [Node], with new: [Node]) throws {
        let oldSet = Set(old.map(ObjectIdentifier.init))
        guard let first = new.first, let last = new.last else {
            throw AidgeError.invalidArgument("replace needs at least one new node")
        }
        // The old piece's external data input and its output read outside.
        let entry = old.lazy.flatMap { $0.inputs.compactMap { $0 } }
            .first { !oldSet.contains(ObjectIdentifier($0.node)) && $0.node.type != "Producer" }
        let exitNode = old.first { node in
            children(of: node).contains { !oldSet.contains(ObjectIdentifier($0)) }
                || outputs.contains { $0.node === node }
        }
        guard let exitNode else { throw AidgeError.invalidArgument("the nodes to replace have no output") }
        for (a, b) in zip(new, new.dropFirst()) where !b.inputs.contains(where: { $0?.node === a }) {
            try a.addChild(b)
        }
        if let entry, first.inputs.first ?? nil == nil { try first.setInput(0, from: entry.node, output: entry.index) }
        for i in inputs.indices {
            if inputs[i].consumers.contains(where: { oldSet.contains(ObjectIdentifier($0.node)) }) {
                inputs[i].consumers.removeAll { oldSet.contains(ObjectIdentifier($0.node)) }
                inputs[i].consumers.append((first, 0))
            }
        }
        for node in new { add(node) }
        try replaceUses(of: (exitNode, 0), with: (last, 0))
        for node in old {
            node.disconnectInputs()
            remove(node)
        }
        for producer in producers where children(of: producer).isEmpty { remove(producer) }
    }
}
