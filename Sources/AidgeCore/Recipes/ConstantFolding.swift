extension Recipes {
    /// Replaces every node whose inputs are all `Producer`s by `Producer`s holding its outputs, computed once
    /// with `backend`'s kernels. Non-deterministic operators and unknown ones are left alone, and so are, in
    /// training mode, nodes that read a variable Producer (a parameter or a buffer). Returns the number of nodes folded.
    @discardableResult
    public static func constantFolding(_ graph: GraphView, backend: String = "cpu") throws -> Int {
        var folded = 0
        for node in try graph.topologicalOrder() where node.type != "Producer" {
            guard let schema = node.op.schema, schema.isDeterministic,
                node.inputs.contains(where: { $0 != nil }),
                !graph.inputs.contains(where: { $0.consumers.contains { $0.node === node } }),
                node.inputs.allSatisfy({ $0 == nil || $0?.node.producedTensor != nil }),
                !graph.isTraining || !node.inputs.contains(where: { $0?.node.isVariableProducer ?? false }),
                KernelRegistry.shared.factory(node.type, backend: backend) != nil
            else { continue }
            let inputs: [ValueInfo?] = node.inputs.map { source in
                guard let source, let tensor = source.node.producedTensor else { return nil }
                return ValueInfo(tensor.contiguous())
            }
            let outputs = try schema.outputs(node.op.attributes, inputs)
            let request = KernelRequest(op: node.op, nodeName: node.name, inputs: inputs, outputs: outputs)
            let results = outputs.map { $0.value ?? Tensor(zeros: $0.shape, dtype: $0.dtype) }
            if outputs.contains(where: { $0.value == nil }) {
                try KernelRegistry.shared.makeKernel(request, backend: backend).run(inputs.map { $0?.value }, results)
            }
            for (i, tensor) in results.enumerated() where i < node.outputCount {
                let producer = Node.producer(tensor, name: "\(node.name)_\(i)", constant: true)
                producer.outputNames = [node.outputNames[i]]
                graph.add(producer, includeProducers: false)
                try graph.replaceUses(of: (node, i), with: (producer, 0))
            }
            graph.removeWithProducers(node)
            folded += 1
        }
        for producer in graph.producers where graph.children(of: producer).isEmpty && !graph.outputs.contains(where: { $0.node === producer }) {
            graph.remove(producer)
        }
        return folded
    }
}
