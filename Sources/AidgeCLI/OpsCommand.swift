import Aidge
import ArgumentParser

struct OpsCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "ops",
        abstract: "List the ONNX operators the CPU backend runs, with their opset ranges and dtypes.",
        discussion: """
            Each line: the op type, the opsets the importer reads it from (its first handled since_version to the \
            newest opset supported), and the dtypes of its main input that a CPU kernel was built and run for. \
            Dtypes followed by '?' are those the ONNX type constraint allows, unchecked: no test node could be \
            made for that op.
            """)

    @Flag(help: "Mark the operators that have a backward (can be trained through).")
    var backward = false

    @Flag(help: "Print a JSON array of {type, domain, since_version, last_version, dtypes, dtypes_verified}.")
    var json = false

    func run() throws {
        try CPUBackend.register()
        let trainable = Set(KernelRegistry.shared.gradientTypes(backend: "cpu"))
        let operators = try ONNX.supportedOperators(backend: "cpu")
        if json {
            print(Self.json(operators, trainable: backward ? trainable : nil))
            return
        }
        // Operators of other domains go by their qualified names (ai.onnx.ml.TreeEnsemble).
        let names = operators.map { $0.domain.isEmpty ? $0.type : "\($0.domain).\($0.type)" }
        let typeWidth = names.map(\.count).max() ?? 0
        let ranges = operators.map { "\($0.sinceVersion)-\($0.lastVersion)" }
        let rangeWidth = ranges.map(\.count).max() ?? 0
        for (op, (name, range)) in zip(operators, zip(names, ranges)) {
            let dtypes = op.dtypes.map { op.dtypesVerified ? $0.description : "\($0)?" }.joined(separator: ", ")
            var line = Self.padded(name, typeWidth) + "  " + Self.padded(range, rangeWidth) + "  " + dtypes
            if backward && trainable.contains(op.engineType) { line += "  (backward)" }
            print(line)
        }
        if operators.contains(where: { !$0.dtypesVerified }) {
            print("\n?: allowed by the ONNX type constraint, not checked by running a kernel")
        }
    }

    static func padded(_ text: String, _ width: Int) -> String {
        text + String(repeating: " ", count: max(0, width - text.count))
    }

    static func json(_ operators: [SupportedOperator], trainable: Set<String>?) -> String {
        let items = operators.map { op in
            var fields = [
                "\"type\": \"\(op.type)\"", "\"domain\": \"\(op.domain)\"", "\"since_version\": \(op.sinceVersion)",
                "\"last_version\": \(op.lastVersion)",
                "\"dtypes\": [\(op.dtypes.map { "\"\($0)\"" }.joined(separator: ", "))]",
                "\"dtypes_verified\": \(op.dtypesVerified)",
            ]
            if let trainable { fields.append("\"backward\": \(trainable.contains(op.engineType))") }
            return "  {" + fields.joined(separator: ", ") + "}"
        }
        return "[\n" + items.joined(separator: ",\n") + "\n]"
    }
}
