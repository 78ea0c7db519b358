import Aidge
import AidgeNPY
import ArgumentParser
import Foundation

struct CheckCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "check",
        abstract: "Run a model in Aidge and in ONNX Runtime on the same inputs and compare the outputs.",
        discussion: """
            ONNX Runtime runs through Python: the interpreter named by AIDGE_PYTHON, else python3, with the \
            onnxruntime package (and onnx for --per-node). An element passes when |aidge - ort| <= atol + rtol * \
            |ort|; integers and booleans must be equal. The exit status is 1 when a graph output fails.
            """)

    @OptionGroup var options: ModelOptions

    @Option(
        name: .customLong("input"),
        help: ArgumentHelp(
            "An input .npy or ONNX TensorProto .pb file, in the order of the model's inputs (repeatable); the "
                + "inputs not given get seeded random data."))
    var inputs: [String] = []

    @Option(
        name: .customLong("dim"),
        help: "The value of a symbolic dimension of the random inputs, e.g. --dim batch=4 (repeatable; default 1).")
    var dims: [String] = []

    @Option(help: "Relative tolerance.")
    var rtol = 1e-3

    @Option(help: "Absolute tolerance.")
    var atol = 1e-4

    @Flag(
        name: .customLong("per-node"),
        help: ArgumentHelp(
            "Also compare every intermediate value both engines have, in execution order, and name the first "
                + "node whose output diverges."))
    var perNode = false

    @Option(
        name: .customLong("work-dir"),
        help: "Keep the inputs and ONNX Runtime's results (.npy) in this folder (default: a temporary one, removed).")
    var workDir: String?

    func validate() throws {
        guard rtol >= 0, atol >= 0 else { throw ValidationError("--rtol and --atol must be non-negative") }
    }

    func run() throws {
        let reference = try ONNXRuntimeReference()
        let graph = try options.load()
        print("model: \(options.model)")
        let fed = try makeInputs(graph)

        let folder = workDir ?? FileManager.default.temporaryDirectory
            .appendingPathComponent("aidge-check-\(UUID().uuidString)").path
        try FileIO.createDirectory(folder)
        defer { if workDir == nil { try? FileManager.default.removeItem(atPath: folder) } }

        // Intermediate values: every node output that is not a graph output, in execution order.
        let outputNames = Set(graph.outputs.map(\.name))
        var intermediate: [GraphOutput] = []
        if perNode {
            for node in try graph.topologicalOrder() where node.type != "Producer" {
                for (i, name) in node.outputNames.enumerated()
                where !outputNames.contains(name) && !name.contains("\n") {
                    intermediate.append(GraphOutput(name: name, node: node, index: i))
                }
            }
        }
        let results = try reference.run(
            model: options.model, inputs: zip(graph.inputs, fed).map { ($0.0.name, $0.1) },
            intermediate: intermediate.map(\.name), in: folder)

        // Aidge keeps the intermediate values ONNX Runtime has (the importer and the recipes add and remove some).
        let compared = intermediate.filter { results.values[$0.name] != nil }
        let graphOutputs = graph.outputs
        graph.outputs += compared
        let values = try Scheduler(graph, backend: options.backend).forward(fed).map { try $0.onHost() }

        print("reference: ONNX Runtime \(results.version) (CPU) through \(reference.executable)")
        print("tolerance: |aidge - ort| <= \(format(atol)) + \(format(rtol)) * |ort|")
        var rows: [[String]] = [["output", "shape", "dtype", "max abs", "max rel", "result"]]
        var failed = 0
        for (output, value) in zip(graphOutputs, values) {
            guard let expected = results.values[output.name] else {
                failed += 1
                rows.append([output.name, shapeText(value), "\(value.dtype)", "-", "-", "FAIL: ONNX Runtime has no array"])
                continue
            }
            let comparison = TensorComparison(value, expected, rtol: rtol, atol: atol)
            if !comparison.passed { failed += 1 }
            rows.append([output.name, shapeText(value), "\(value.dtype)"] + cells(comparison))
        }
        printTable(rows)
        print("\(graphOutputs.count - failed) of \(graphOutputs.count) outputs pass")

        if perNode {
            printPerNode(compared, values: values.dropFirst(graphOutputs.count), reference: results.values,
                         skipped: intermediate.count - compared.count)
        }
        if failed > 0 { throw ExitCode(1) }
    }

    /// The `--input` files, then seeded random data for the other inputs, with a line per input.
    private func makeInputs(_ graph: GraphView) throws -> [Tensor] {
        guard inputs.count <= graph.inputs.count else {
            throw AidgeError.invalidArgument(
                "the model has \(graph.inputs.count) inputs (\(graph.inputs.map(\.name).joined(separator: ", "))), "
                    + "\(inputs.count) --input files were given")
        }
        let symbolic = try dimValues()
        let overrides = try options.shapeOverrides(graph)
        var fed: [Tensor] = []
        var lines: [String] = []
        for (k, input) in graph.inputs.enumerated() {
            if k < inputs.count {
                let tensor = try readInput(inputs[k])
                fed.append(tensor)
                lines.append("\(input.name) \(shapeText(tensor)) \(tensor.dtype) (\(inputs[k]))")
            } else {
                let shape = try options.inputShape(input, overrides: overrides) { name, _ in symbolic[name] ?? 1 }
                let tensor = randomInput(dtype: input.dtype, shape: shape, seed: UInt64(k))
                fed.append(tensor)
                lines.append("\(input.name) \(shapeText(tensor)) \(tensor.dtype) (random)")
            }
        }
        print("inputs: \(lines.joined(separator: ", "))")
        return fed
    }

    /// `--dim` values by dimension name.
    private func dimValues() throws -> [String: Int] {
        var result: [String: Int] = [:]
        for text in dims {
            let parts = text.split(separator: "=", omittingEmptySubsequences: false)
            guard parts.count == 2, !parts[0].isEmpty, let value = Int(parts[1]), value >= 0 else {
                throw AidgeError.invalidArgument("--dim '\(text)' must look like NAME=4 (a non-negative size)")
            }
            result[String(parts[0])] = value
        }
        return result
    }

    /// The intermediate values in execution order, then the first node whose output is outside the tolerance.
    private func printPerNode(
        _ compared: [GraphOutput], values: ArraySlice<Tensor>, reference: [String: Tensor], skipped: Int
    ) {
        print("")
        print("per node: \(compared.count) intermediate values compared in execution order"
            + (skipped > 0 ? " (\(skipped) that ONNX Runtime does not return skipped)" : ""))
        var rows: [[String]] = [["node", "op", "output", "shape", "max abs", "max rel", "result"]]
        var first: (GraphOutput, TensorComparison)?
        for (output, value) in zip(compared, values) {
            guard let expected = reference[output.name] else { continue }
            let comparison = TensorComparison(value, expected, rtol: rtol, atol: atol)
            if first == nil, !comparison.passed { first = (output, comparison) }
            rows.append([output.node.name, output.node.type, output.name, shapeText(value)] + cells(comparison))
        }
        if compared.isEmpty { return }
        printTable(rows)
        if let (output, comparison) = first {
            print("first divergence: node \(output.node.name) (\(output.node.type)), output \(output.name): "
                + (comparison.problem ?? "max abs \(format(comparison.maxAbs)), max rel \(format(comparison.maxRel))"))
        } else {
            print("all intermediate values agree")
        }
    }

    /// max abs, max rel and the verdict of a comparison.
    private func cells(_ comparison: TensorComparison) -> [String] {
        let verdict =
            comparison.passed
            ? "PASS"
            : "FAIL" + (comparison.problem.map { ": \($0)" } ?? " (\(comparison.mismatches) elements)")
        guard comparison.comparedElements else { return ["-", "-", verdict] }
        return [format(comparison.maxAbs), format(comparison.maxRel), verdict]
    }

    private func shapeText(_ tensor: Tensor) -> String {
        "[" + tensor.shape.map(String.init).joined(separator: ", ") + "]"
    }

    private func format(_ value: Double) -> String {
        value == 0 ? "0" : String(format: "%.3g", value)
    }

    /// Left-aligned columns, two spaces apart.
    private func printTable(_ rows: [[String]]) {
        var widths: [Int] = []
        for row in rows {
            for (k, cell) in row.enumerated() {
                if k == widths.count { widths.append(0) }
                widths[k] = max(widths[k], cell.count)
            }
        }
        for row in rows {
            let cells = row.enumerated().map { k, cell in
                k == row.count - 1 ? cell : cell.padding(toLength: widths[k], withPad: " ", startingAt: 0)
            }
            print(cells.joined(separator: "  "))
        }
    }
}
