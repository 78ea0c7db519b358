import Aidge
import AidgeNPY
import ArgumentParser

@main
struct AidgeCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "aidge",
        abstract: "Run, check, inspect and benchmark ONNX models with the Aidge engine.",
        subcommands: [RunCommand.self, CheckCommand.self, InspectCommand.self, BenchCommand.self, OpsCommand.self])
}

/// Options every command that loads a model shares.
struct ModelOptions: ParsableArguments {
    @Argument(help: "The ONNX model file.")
    var model: String

    @Option(name: .customLong("shape"), help: "Fix an input's shape, e.g. --shape input=1x3x224x224 (repeatable).")
    var shapes: [String] = []

    @Option(help: "Threads the kernels use (default: every core).")
    var threads: Int?

    @Flag(name: .customLong("no-optimize"), help: "Run the graph as imported, without inference recipes.")
    var noOptimize = false

    @Option(help: "The backend that runs the model: cpu, or cuda (an NVIDIA GPU).")
    var backend = CPUBackend.name

    @Flag(name: .customLong("no-tf32"), help: "On cuda: float32 convolutions without TF32 (PyTorch's default uses it).")
    var noTF32 = false

    /// Registers the kernels and loads the model, applying the inference recipes unless told not to.
    func load() throws -> GraphView {
        try CPUBackend.register()
        switch backend {
        case CPUBackend.name: break
        case CUDABackend.name:
            try CUDABackend.register()
            if noTF32 { CUDABackend.allowsTF32Convolutions = false }
        default: throw AidgeError.invalidArgument("--backend must be cpu or cuda, got \(backend)")
        }
        if let threads {
            guard threads > 0 else { throw AidgeError.invalidArgument("--threads must be positive, got \(threads)") }
            Parallel.threads = threads
        }
        let graph = try ONNX.load(path: model)
        if !noOptimize { try Recipes.optimizeForInference(graph) }
        return graph
    }

    /// `inputs` where the backend's kernels read them (copied to the GPU once, for CUDA).
    func placed(_ inputs: [Tensor]) throws -> [Tensor] {
        guard let memory = DeviceMemories.shared.memory(backend: backend) else { return inputs }
        return try inputs.map { try $0.copy(to: memory.device) }
    }

    /// Waits until the backend has finished the work queued so far (a GPU runs asynchronously).
    func finish() throws {
        if backend == CUDABackend.name { try CUDABackend.device().synchronize() }
    }

    /// `--shape` values by input name.
    func shapeOverrides(_ graph: GraphView) throws -> [String: [Int]] {
        var result: [String: [Int]] = [:]
        for text in shapes {
            guard let eq = text.lastIndex(of: "=") else {
                throw AidgeError.invalidArgument("--shape '\(text)' must look like NAME=1x3x224x224")
            }
            let name = String(text[..<eq])
            let dims = text[text.index(after: eq)...].split(separator: "x").map { Int($0) }
            guard !dims.isEmpty, dims.allSatisfy({ ($0 ?? -1) >= 0 }) else {
                throw AidgeError.invalidArgument("--shape '\(text)': dimensions must be non-negative integers like 1x3x224x224")
            }
            guard graph.inputs.contains(where: { $0.name == name }) else {
                throw AidgeError.invalidArgument(
                    "--shape names '\(name)', but the model's inputs are \(graph.inputs.map(\.name).joined(separator: ", "))")
            }
            result[name] = dims.compactMap { $0 }
        }
        return result
    }

    /// The concrete shape of each input: `--shape`, then declared fixed dimensions, `batch` for a symbolic first one.
    func inputShapes(_ graph: GraphView, batch: Int? = nil) throws -> [[Int]] {
        let overrides = try shapeOverrides(graph)
        return try graph.inputs.map { input in
            try inputShape(input, overrides: overrides) { _, axis in axis == 0 ? batch : nil }
        }
    }

    /// The concrete shape of `input`: its `--shape` in `overrides`, else its declared dimensions, a symbolic one
    /// taking the value `symbolic(name, axis)` gives (nil: the user must give `--shape`).
    func inputShape(
        _ input: GraphInput, overrides: [String: [Int]], symbolic: (String, Int) -> Int?
    ) throws -> [Int] {
        if let shape = overrides[input.name] { return shape }
        guard let dims = input.shape else {
            throw AidgeError.invalidArgument("input '\(input.name)' has no declared shape: give --shape \(input.name)=...")
        }
        return try dims.enumerated().map { k, dim in
            switch dim {
            case .fixed(let n): return n
            case .symbolic(let s):
                if let n = symbolic(s, k) { return n }
                throw AidgeError.invalidArgument(
                    "input '\(input.name)' has a symbolic dimension '\(s)': give --shape \(input.name)=...")
            }
        }
    }
}

/// The tensor in an input file: ONNX `TensorProto` for `.pb`, NumPy `.npy` otherwise.
func readInput(_ path: String) throws -> Tensor {
    path.hasSuffix(".pb") ? try TensorFile.read(path) : try NPY.read(path)
}

/// Random input data, deterministic per input.
func randomInput(dtype: DType, shape: [Int], seed: UInt64) -> Tensor {
    var state = seed &* 0x9E37_79B9_7F4A_7C15 &+ 1
    let values = Tensor(zeros: shape, dtype: .float64)
    let p = values.pointer(as: Double.self)
    for i in 0..<values.count {
        state = state &* 6_364_136_223_846_793_005 &+ 1_442_695_040_888_963_407
        let u = Double(state >> 11) / Double(1 << 53)
        p[i] = dtype.isFloatingPoint ? u * 2 - 1 : (dtype == .bool ? (u < 0.5 ? 0 : 1) : (u * 10).rounded(.down))
    }
    return values.cast(to: dtype)
}
