extension GraphView {
    /// A Mermaid flowchart of the graph (Aidge's `save` format).
    public func mermaid() -> String {
        var lines = ["%%{init: {'flowchart': { 'curve': 'monotoneY'}, 'fontFamily': 'Verdana' } }%%", "flowchart TB"]
        var ids: [ObjectIdentifier: String] = [:]
        for (i, node) in nodes.enumerated() {
            let id = "n\(i)"
            ids[ObjectIdentifier(node)] = id
            let label = "\(escape(node.name))<br/><sub><em>(\(node.type))</em></sub>"
            lines.append(node.type == "Producer" ? "\(id)(\"\(label)\"):::producerCls" : "\(id)(\"\(label)\")")
        }
        for node in nodes {
            guard let to = ids[ObjectIdentifier(node)] else { continue }
            for (i, source) in node.inputs.enumerated() {
                guard let source, let from = ids[ObjectIdentifier(source.node)] else { continue }
                lines.append("\(from)-->|\"\(source.index)&rarr;\(i)\"|\(to)")
            }
        }
        for (k, input) in inputs.enumerated() {
            lines.append("input\(k)((\"\(escape(input.name))\")):::inputCls")
            for consumer in input.consumers {
                if let to = ids[ObjectIdentifier(consumer.node)] { lines.append("input\(k)-->|\"&rarr;\(consumer.index)\"|\(to)") }
            }
        }
        for (k, output) in outputs.enumerated() {
            lines.append("output\(k)((\"\(escape(output.name))\")):::outputCls")
            if let from = ids[ObjectIdentifier(output.node)] { lines.append("\(from)-->|\"\(output.index)&rarr;\"|output\(k)") }
        }
        lines.append("classDef inputCls fill:#afa")
        lines.append("classDef outputCls fill:#ffa")
        lines.append("classDef producerCls fill:#ccf")
        return lines.joined(separator: "\n") + "\n"
    }

    private func escape(_ s: String) -> String { String(s.map { $0 == "\"" ? Character("'") : $0 }) }
}
