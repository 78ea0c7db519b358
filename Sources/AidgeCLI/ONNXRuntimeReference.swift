import Aidge
import AidgeNPY
import Foundation

/// ONNX Runtime as a reference: a Python interpreter (`$AIDGE_PYTHON`, else `python3`) with the `onnxruntime`
/// package runs the model on inputs written as `.npy` files, and writes its results the same way.
///
/// The exchange happens in a folder: `input_<k>.npy` and `inputs.txt` (their names, one a line), `wanted.txt` (the
/// intermediate values to return besides the graph outputs); the script writes `ort_<k>.npy` and `outputs.txt`
/// (the name of each), `version.txt` and its messages in `python.log`.
struct ONNXRuntimeReference {
    /// The interpreter as given (`$AIDGE_PYTHON` or `python3`) and where it was found.
    let python: String
    let executable: String

    /// Finds the interpreter; throws when it is not there.
    init(environment: [String: String] = ProcessInfo.processInfo.environment) throws {
        let given = environment["AIDGE_PYTHON"].flatMap { $0.isEmpty ? nil : $0 }
        let python = given ?? "python3"
        let source = given == nil ? "python3, as AIDGE_PYTHON is not set" : "AIDGE_PYTHON"
        let candidates =
            python.contains("/")
            ? [python] : (environment["PATH"] ?? "").split(separator: ":").map { "\($0)/\(python)" }
        guard let found = candidates.first(where: { FileManager.default.isExecutableFile(atPath: $0) }) else {
            throw AidgeError.io(
                "aidge check runs ONNX Runtime through Python, and the interpreter '\(python)' (\(source)) "
                    + "\(python.contains("/") ? "is not an executable file" : "is not on PATH"): set AIDGE_PYTHON to a "
                    + "Python that has the onnxruntime package")
        }
        self.python = python
        executable = found
    }

    /// The results of a run: values by name, and the ONNX Runtime version.
    struct Results {
        var values: [String: Tensor]
        var version: String
    }

    /// Runs `model` on `inputs` (by name) in `folder`, returning the graph outputs and those of the `intermediate`
    /// values that are node outputs of the model's main graph.
    func run(model: String, inputs: [(name: String, tensor: Tensor)], intermediate: [String], in folder: String)
        throws -> Results
    {
        for (k, input) in inputs.enumerated() { try NPY.write(input.tensor, to: "\(folder)/input_\(k).npy") }
        try writeLines(inputs.map(\.name), to: "\(folder)/inputs.txt")
        try writeLines(intermediate, to: "\(folder)/wanted.txt")
        try FileIO.write(Array(Self.script.utf8), to: "\(folder)/reference.py")
        let log = "\(folder)/python.log"
        try FileIO.write([], to: log)

        let process = Process()
        process.executableURL = URL(fileURLWithPath: executable)
        process.arguments = ["\(folder)/reference.py", model, folder]
        let logHandle = try FileHandle(forWritingTo: URL(fileURLWithPath: log))
        defer { try? logHandle.close() }
        process.standardOutput = logHandle
        process.standardError = logHandle
        process.standardInput = FileHandle.nullDevice
        do {
            try process.run()
        } catch {
            throw AidgeError.io("cannot start the Python interpreter '\(executable)': \(error)")
        }
        process.waitUntilExit()

        let message = String(decoding: (try? FileIO.read(log)) ?? [], as: UTF8.self)
            .trimmingCharacters(in: .whitespacesAndNewlines)
        guard process.terminationReason == .exit, process.terminationStatus == 0 else {
            if process.terminationReason == .exit, process.terminationStatus == Self.missingPackage {
                let package = message.split(separator: "\n").last.map(String.init) ?? "onnxruntime"
                let which = python == executable ? "'\(python)'" : "'\(python)' (\(executable))"
                throw AidgeError.unsupported(
                    "aidge check runs ONNX Runtime through Python, and \(which) cannot import \(package): install "
                        + "it with `\(python) -m pip install \(package)`, or set AIDGE_PYTHON to a Python that has it")
            }
            let how =
                process.terminationReason == .exit
                ? "exit status \(process.terminationStatus)" : "signal \(process.terminationStatus)"
            let tail = message.split(separator: "\n", omittingEmptySubsequences: false).suffix(20)
            throw AidgeError.invalidModel(
                "ONNX Runtime failed on \(model) (\(how)):\n\(tail.joined(separator: "\n"))")
        }

        let names = try readLines("\(folder)/outputs.txt")
        var values: [String: Tensor] = [:]
        for (k, name) in names.enumerated() {
            do {
                values[name] = try NPY.read("\(folder)/ort_\(k).npy")
            } catch {
                throw error.aidgePrefixed("ONNX Runtime's value '\(name)'")
            }
        }
        let version = (try? readLines("\(folder)/version.txt"))?.first ?? "unknown"
        return Results(values: values, version: version)
    }

    private func writeLines(_ lines: [String], to path: String) throws {
        if let bad = lines.first(where: { $0.contains("\n") }) {
            throw AidgeError.invalidModel("the value name '\(bad)' holds a line break, which aidge check cannot pass on")
        }
        try FileIO.write(Array(lines.map { $0 + "\n" }.joined().utf8), to: path)
    }

    private func readLines(_ path: String) throws -> [String] {
        String(decoding: try FileIO.read(path), as: UTF8.self).split(separator: "\n").map(String.init)
    }

    /// The script's exit status when a package is missing (its name is the last line it prints).
    static let missingPackage: Int32 = 3

    /// The Python side. It adds the wanted intermediate values to the graph's outputs (external data is read
    /// from the model's folder), runs on the CPU provider, and skips results that are not arrays of
    /// numbers or booleans.
    static let script = """
        import os
        import sys


        def need(package):
            sys.stderr.write(package + "\\n")
            sys.exit(\(missingPackage))


        try:
            import onnxruntime as ort
        except ImportError:
            need("onnxruntime")
        try:
            import numpy as np
        except ImportError:
            need("numpy")

        model_path, folder = sys.argv[1], sys.argv[2]


        def lines(name):
            with open(os.path.join(folder, name), encoding="utf-8") as f:
                return [line for line in f.read().split("\\n") if line]


        options = ort.SessionOptions()
        options.log_severity_level = 3
        providers = ["CPUExecutionProvider"]
        wanted = lines("wanted.txt")
        if wanted:
            try:
                import onnx
            except ImportError:
                need("onnx")
            model = onnx.load(model_path, load_external_data=False)
            present = {output.name for output in model.graph.output}
            produced = {name for node in model.graph.node for name in node.output if name}
            for name in wanted:
                if name in produced and name not in present:
                    model.graph.output.append(onnx.ValueInfoProto(name=name))
                    present.add(name)
            options.add_session_config_entry(
                "session.model_external_initializers_file_folder_path",
                os.path.dirname(os.path.abspath(model_path)))
            session = ort.InferenceSession(model.SerializeToString(), options, providers=providers)
        else:
            session = ort.InferenceSession(model_path, options, providers=providers)

        feeds = {name: np.load(os.path.join(folder, f"input_{k}.npy"))
                 for k, name in enumerate(lines("inputs.txt"))}
        names = [output.name for output in session.get_outputs()]
        written = []
        for name, value in zip(names, session.run(names, feeds)):
            if isinstance(value, np.ndarray) and value.dtype.kind in "biuf":
                np.save(os.path.join(folder, f"ort_{len(written)}.npy"), value)
                written.append(name)
        with open(os.path.join(folder, "outputs.txt"), "w", encoding="utf-8") as f:
            f.write("".join(name + "\\n" for name in written))
        with open(os.path.join(folder, "version.txt"), "w", encoding="utf-8") as f:
            f.write(ort.__version__ + "\\n")

        """
}
