import Aidge
import ArgumentParser

struct InspectCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "inspect", abstract: "Describe a model: inputs, outputs, operators, parameters, opset.")

    @Argument(help: "The ONNX model file.")
    var model: String

    @Option(help: "Also write the graph as a Mermaid flowchart to this file.")
    var mermaid: String?

    func run() throws {
        try CPUBackend.register()
        let graph = try ONNX.load(path: model)
        let opsets = graph.opsetImports.sorted { $0.key < $1.key }
            .map { "\($0.key.isEmpty ? "ai.onnx" : $0.key) \($0.value)" }
        print("model: \(model)")
        print("opset: \(opsets.joined(separator: ", "))")
        print("inputs:")
        for input in graph.inputs {
            let dims = input.shape.map { "[" + $0.map(\.description).joined(separator: ", ") + "]" } ?? "unknown"
            print("  \(input.name): \(input.dtype) \(dims)")
        }
        print("outputs:")
        var shapes: [ValueInfo]?
        let fixed = graph.inputs.compactMap { input in
            input.shape?.compactMap { if case .fixed(let n) = $0 { return n } else { return nil } }
        }
        if fixed.count == graph.inputs.count, zip(fixed, graph.inputs).allSatisfy({ $0.0.count == $0.1.shape?.count }) {
            shapes = try? Scheduler(graph).plan(for: fixed).outputs
        }
        for (k, output) in graph.outputs.enumerated() {
            if let info = shapes?[k] {
                print("  \(output.name): \(info.dtype) [\(info.shape.map(String.init).joined(separator: ", "))]")
            } else {
                print("  \(output.name)")
            }
        }
        var counts: [String: Int] = [:]
        for node in graph.nodes where node.type != "Producer" { counts[node.type, default: 0] += 1 }
        print("operators (\(counts.values.reduce(0, +)) nodes):")
        for (type, n) in counts.sorted(by: { ($0.value, $1.key) > ($1.value, $0.key) }) { print("  \(type): \(n)") }
        let parameters = graph.producers.reduce(0) { $0 + ($1.producedTensor?.count ?? 0) }
        print("parameters: \(parameters)")
        let supported = Set(KernelRegistry.shared.types(backend: "cpu"))
        let missing = counts.keys.filter { !supported.contains($0) }.sorted()
        print("unsupported operators: \(missing.isEmpty ? "none" : missing.joined(separator: ", "))")
        if let mermaid {
            try FileIO.write(Array(graph.mermaid().utf8), to: mermaid)
            print("mermaid: \(mermaid)")
        }
    }
}
