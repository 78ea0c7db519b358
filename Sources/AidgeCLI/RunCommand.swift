import Aidge
import AidgeNPY
import ArgumentParser

struct RunCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "run", abstract: "Run a model once and write its outputs as .npy or ONNX .pb files.")

    @OptionGroup var options: ModelOptions

    @Option(
        name: .customLong("input"),
        help: """
            An input .npy file, or an ONNX .pb file (TensorProto; SequenceProto or OptionalProto for inputs declared \
            as such), in the order of the model's inputs (repeatable).
            """)
    var inputs: [String] = []

    @Flag(help: "Feed random inputs instead of files.")
    var random = false

    @Option(name: .customLong("output-dir"), help: "Where output_<i>.npy (or .pb) are written (default: the working directory).")
    var outputDir = "."

    enum OutputFormat: String, ExpressibleByArgument, CaseIterable {
        case npy, pb
    }

    @Option(
        name: .customLong("output-format"),
        help: "npy, or pb (ONNX TensorProto, SequenceProto or OptionalProto files named after the outputs).")
    var outputFormat: OutputFormat = .npy

    func run() throws {
        let graph = try options.load()
        let fed: [Value]
        if random {
            guard inputs.isEmpty else { throw AidgeError.invalidArgument("give either --input files or --random, not both") }
            let shapes = try options.inputShapes(graph)
            fed = try zip(graph.inputs, shapes).enumerated().map { k, pair in
                guard pair.0.kind == .tensor else {
                    throw AidgeError.invalidArgument("input '\(pair.0.name)' is a \(pair.0.kind): give it as a .pb file")
                }
                return .tensor(randomInput(dtype: pair.0.dtype, shape: pair.1, seed: UInt64(k)))
            }
        } else {
            guard inputs.count == graph.inputs.count else {
                throw AidgeError.invalidArgument(
                    "the model has \(graph.inputs.count) inputs (\(graph.inputs.map(\.name).joined(separator: ", "))), "
                        + "\(inputs.count) --input files were given (or use --random)")
            }
            fed = try zip(inputs, graph.inputs).map { path, declared in
                if declared.kind == .tensor { return .tensor(try readInput(path)) }
                guard path.hasSuffix(".pb") else {
                    throw AidgeError.invalidArgument("input '\(declared.name)' is a \(declared.kind): give it as a .pb file")
                }
                return try TensorFile.readValue(path, kind: declared.kind)
            }
        }
        try FileIO.createDirectory(outputDir)
        let outputs = try Scheduler(graph, backend: options.backend).run(fed).map { value in
            if case .tensor(let t) = value { return Value.tensor(try t.onHost()) }
            return value
        }
        for (i, (output, info)) in zip(outputs, graph.outputs).enumerated() {
            let path = "\(outputDir)/output_\(i).\(outputFormat.rawValue)"
            switch (outputFormat, output) {
            case (.npy, .tensor(let t)): try NPY.write(t, to: path)
            case (.npy, _): throw AidgeError.invalidArgument("output '\(info.name)' is \(output.summary): write it with --output-format pb")
            case (.pb, _): try TensorFile.writeValue(output, kind: info.kind, name: info.name, to: path)
            }
            print("output_\(i) \(info.name): \(output.summary) -> \(path)")
        }
    }
}
