import Aidge
import AidgeNPY
import ArgumentParser

struct RunCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "run", abstract: "Run a model once and write its outputs as .npy or ONNX .pb files.")

    @OptionGroup var options: ModelOptions

    @Option(
        name: .customLong("input"),
        help: "An input .npy file, or an ONNX TensorProto .pb file, in the order of the model's inputs (repeatable).")
    var inputs: [String] = []

    @Flag(help: "Feed random inputs instead of files.")
    var random = false

    @Option(name: .customLong("output-dir"), help: "Where output_<i>.npy (or .pb) are written (default: the working directory).")
    var outputDir = "."

    enum OutputFormat: String, ExpressibleByArgument, CaseIterable {
        case npy, pb
    }

    @Option(name: .customLong("output-format"), help: "npy, or pb (ONNX TensorProto files named after the outputs).")
    var outputFormat: OutputFormat = .npy

    func run() throws {
        let graph = try options.load()
        let fed: [Tensor]
        if random {
            guard inputs.isEmpty else { throw AidgeError.invalidArgument("give either --input files or --random, not both") }
            let shapes = try options.inputShapes(graph)
            fed = zip(graph.inputs, shapes).enumerated().map { k, pair in
                randomInput(dtype: pair.0.dtype, shape: pair.1, seed: UInt64(k))
            }
        } else {
            guard inputs.count == graph.inputs.count else {
                throw AidgeError.invalidArgument(
                    "the model has \(graph.inputs.count) inputs (\(graph.inputs.map(\.name).joined(separator: ", "))), "
                        + "\(inputs.count) --input files were given (or use --random)")
            }
            fed = try inputs.map(readInput)
        }
        try FileIO.createDirectory(outputDir)
        let outputs = try Scheduler(graph).forward(fed)
        for (i, (output, info)) in zip(outputs, graph.outputs).enumerated() {
            let path = "\(outputDir)/output_\(i).\(outputFormat.rawValue)"
            switch outputFormat {
            case .npy: try NPY.write(output, to: path)
            case .pb: try TensorFile.write(output, name: info.name, to: path)
            }
            print("output_\(i) \(info.name): shape [\(output.shape.map(String.init).joined(separator: ", "))] \(output.dtype) -> \(path)")
        }
    }
}
