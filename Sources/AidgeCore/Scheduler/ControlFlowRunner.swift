/// The control flow operators' kernels, which any backend registers: they run their subgraphs on that backend.
public enum ControlFlowKernels {
    public static func register(_ registry: KernelRegistry, backend: String) {
        for type in ["If", "Loop", "Scan"] {
            registry.register(type, backend: backend) { request in
                ControlFlowKernel(runner: ControlFlowRunner(request.op, backend: backend))
            }
        }
    }
}

/// Runs If, Loop and Scan: each subgraph has a scheduler of its own on the node's backend, which plans it once per
/// input shapes and dtypes, as the enclosing graph is planned.
final class ControlFlowRunner {
    let op: Operator
    let backend: String
    private var schedulers: [String: Scheduler] = [:]

    init(_ op: Operator, backend: String) {
        self.op = op
        self.backend = backend
    }


    /// The outputs of the operator on `inputs` (nil for absent optional ones).
    func run(_ inputs: [Tensor?]) throws -> [Tensor] {
        switch op.type {
        case "If": return try runIf(inputs)
        case "Loop": return try runLoop(inputs)
        default: return try runScan(inputs)
        }
    }

    private func subgraph(_ name: String, _ inputs: [Tensor]) throws -> [Tensor] {
        try scheduler(name).forward(inputs, mode: .inference).outputs
    }

    private func scheduler(_ name: String) throws -> Scheduler {
        if let known = schedulers[name] { return known }
        let scheduler = Scheduler(subgraph: try op.attributes.subgraph(name), backend: backend)
        schedulers[name] = scheduler
        return scheduler
    }

    private static func present(_ inputs: [Tensor?], from start: Int) throws -> [Tensor] {
        try (start..<max(start, inputs.count)).map { i in
            guard let t = inputs[i] else { throw AidgeError.invalidModel("input \(i) is absent") }
            return t
        }
    }

    private func runIf(_ inputs: [Tensor?]) throws -> [Tensor] {
        guard let condition = inputs.first??.boolean else {
            throw AidgeError.invalidArgument("the condition of If must hold one value")
        }
        return try subgraph(condition ? "then_branch" : "else_branch", try Self.present(inputs, from: 1))
    }

    private func runLoop(_ inputs: [Tensor?]) throws -> [Tensor] {
        let body = try op.attributes.subgraph("body")
        let carriedCount = body.formalInputCount - 2
        guard carriedCount >= 0, inputs.count >= 2 + carriedCount else {
            throw AidgeError.invalidModel("Loop takes M, cond and \(max(carriedCount, 0)) carried values")
        }
        let tripCount = try inputs[0].map { t -> Int in
            guard let n = t.integers().first else { throw AidgeError.invalidArgument("Loop trip count M is empty") }
            return n
        }
        let conditionInput = inputs[1]
        guard tripCount != nil || conditionInput != nil else {
            throw AidgeError.invalidModel("a Loop with neither a trip count nor a condition never ends")
        }
        var condition = try conditionInput.map { t -> Bool in
            guard let c = t.boolean else { throw AidgeError.invalidArgument("Loop condition must hold one value") }
            return c
        } ?? true
        var carried = try Self.present(Array(inputs[2..<(2 + carriedCount)]), from: 0)
        let captured = try Self.present(inputs, from: 2 + carriedCount)
        var scans: [[Tensor]] = []
        var iteration = 0
        let firstInputs = [Tensor(scalar: Int64(0)), Tensor.bool(condition)] + carried + captured
        while tripCount.map({ iteration < $0 }) ?? true, condition {
            let outputs = try subgraph("body", [Tensor(scalar: Int64(iteration)), Tensor.bool(condition)] + carried + captured)
            guard outputs.count >= 1 + carriedCount else {
                throw AidgeError.invalidModel("Loop body has \(outputs.count) outputs, fewer than 1 + \(carriedCount)")
            }
            if conditionInput != nil {
                guard let next = outputs[0].boolean else { throw AidgeError.invalidArgument("Loop body condition is empty") }
                condition = next
            }
            carried = Array(outputs[1..<(1 + carriedCount)])
            let slices = outputs.dropFirst(1 + carriedCount)
            if scans.isEmpty { scans = slices.map { _ in [] } }
            for (k, slice) in slices.enumerated() { scans[k].append(slice) }
            iteration += 1
        }
        guard iteration > 0 else {
            // No iteration: each scan output is empty, with the shape and dtype a body run would give its slices.
            let scanCount = max(body.graph.outputs.count - 1 - carriedCount, 0)
            let infos = try scheduler("body").plannedOutputs(for: firstInputs)
            return carried + (0..<scanCount).map { k in
                let info = infos.flatMap { 1 + carriedCount + k < $0.count ? $0[1 + carriedCount + k] : nil }
                return Tensor(zeros: [0] + (info?.shape ?? []), dtype: info?.dtype ?? .float32)
            }
        }
        return try carried + scans.map { try stack($0, axis: 0, reversed: false) }
    }

    private func runScan(_ inputs: [Tensor?]) throws -> [Tensor] {
        let present = try Self.present(inputs, from: 0)
        let layout = try ScanLayout(op.attributes, inputShapes: present.map(\.shape))
        var states = Array(present.prefix(layout.states))
        let sequences = Array(present[layout.states..<(layout.states + layout.scanInputs)])
        let captured = Array(present.dropFirst(layout.states + layout.scanInputs))
        var scans: [[Tensor]] = []
        for t in 0..<layout.length {
            let slices = sequences.enumerated().map { k, x in
                slice(x, axis: layout.inputAxes[k], index: layout.inputReversed[k] ? layout.length - 1 - t : t)
            }
            let outputs = try subgraph("body", states + slices + captured)
            guard outputs.count >= layout.states else {
                throw AidgeError.invalidModel("Scan body has \(outputs.count) outputs, fewer than its \(layout.states) states")
            }
            states = Array(outputs.prefix(layout.states))
            let produced = outputs.dropFirst(layout.states)
            if scans.isEmpty { scans = produced.map { _ in [] } }
            for (k, s) in produced.enumerated() { scans[k].append(s) }
        }
        let axes = try layout.outputAxes(count: scans.count, ranks: scans.map { ($0.first?.rank ?? 0) + 1 })
        let reversed = try layout.outputReversed(count: scans.count)
        return try states + scans.indices.map { try stack(scans[$0], axis: axes[$0], reversed: reversed[$0]) }
    }
}

/// Element `index` of `x` along `axis`, as a tensor of one rank less.
private func slice(_ x: Tensor, axis: Int, index: Int) -> Tensor {
    var shape = x.shape
    let length = shape.remove(at: axis)
    let out = Tensor(zeros: shape, dtype: x.dtype)
    let inner = ShapeUtil.count(Array(x.shape[(axis + 1)...])) * x.dtype.byteSize
    let outer = ShapeUtil.count(Array(x.shape[..<axis]))
    for o in 0..<outer {
        (out.rawPointer + o * inner).copyMemory(from: x.rawPointer + (o * length + index) * inner, byteCount: inner)
    }
    return out
}

/// `slices` (of one shape and dtype) stacked along a new `axis`, last first when `reversed`.
func stack(_ slices: [Tensor], axis: Int, reversed: Bool) throws -> Tensor {
    guard let first = slices.first else { return Tensor(zeros: [0]) }
    guard slices.allSatisfy({ $0.shape == first.shape && $0.dtype == first.dtype }) else {
        throw AidgeError.shapeMismatch("the iterations of a loop give scan outputs of different shapes or dtypes")
    }
    var shape = first.shape
    shape.insert(slices.count, at: axis)
    let out = Tensor(zeros: shape, dtype: first.dtype)
    let inner = ShapeUtil.count(Array(first.shape[axis...])) * first.dtype.byteSize
    let outer = ShapeUtil.count(Array(first.shape[..<axis]))
    for (t, s) in slices.enumerated() {
        let position = reversed ? slices.count - 1 - t : t
        let source = s.contiguous()
        for o in 0..<outer {
            (out.rawPointer + (o * slices.count + position) * inner).copyMemory(
                from: source.rawPointer + o * inner, byteCount: inner)
        }
    }
    return out
}

/// A control flow node's kernel: runs the operator, then checks its results against the planned outputs.
private final class ControlFlowKernel: Kernel {
    let runner: ControlFlowRunner

    init(runner: ControlFlowRunner) { self.runner = runner }

    func run(_ inputs: [Tensor?], _ outputs: [Tensor]) throws {
        let results = try runner.run(inputs)
        guard results.count >= outputs.count else {
            throw AidgeError.invalidModel("\(runner.op.type) gives \(results.count) outputs, the node has \(outputs.count)")
        }
        for (k, (result, output)) in zip(results, outputs).enumerated() {
            if result.count == 0 && output.count == 0 { continue }  // an empty scan output of a loop that never ran
            guard result.shape == output.shape, result.dtype == output.dtype else {
                throw AidgeError.shapeMismatch(
                    "\(runner.op.type) output \(k) is \(result.dtype) \(ShapeUtil.text(result.shape)) in this run, "
                        + "planned as \(output.dtype) \(ShapeUtil.text(output.shape)): the values that decide it must "
                        + "be known before running")
            }
            copyElements(from: result, to: output)
        }
    }
}

extension Tensor {
    /// A bool scalar.
    static func bool(_ value: Bool) -> Tensor {
        let t = Tensor(zeros: [], dtype: .bool)
        t.rawPointer.storeBytes(of: value ? 1 : 0, as: UInt8.self)
        return t
    }

    /// The truth of a one-element tensor (nil when it holds no element).
    var boolean: Bool? {
        guard count >= 1 else { return nil }
        if dtype == .bool { return contiguous().rawPointer.load(as: UInt8.self) != 0 }
        return doubles().first.map { $0 != 0 }
    }
}
