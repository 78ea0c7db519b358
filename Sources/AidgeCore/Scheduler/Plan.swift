/// Where a kernel finds one of its tensors when a plan runs.
enum Slot {
    case constant(Tensor)
    case graphInput(Int)
    case arena(Tensor)
    case graphOutput(Int)
}

/// One kernel call of a plan.
struct Step {
    let node: Node
    let kernel: any Kernel
    let inputs: [Slot?]
    let outputs: [Slot]
}

/// A static plan for one set of input shapes: kernels in topological order, intermediate tensors placed in one
/// arena by liveness. Running it allocates only the returned outputs.
public final class Plan {
    let steps: [Step]
    let arena: Storage
    let inputInfos: [ValueInfo]
    let outputSources: [Slot]
    let outputInfos: [ValueInfo]

    init(steps: [Step], arena: Storage, inputInfos: [ValueInfo], outputSources: [Slot], outputInfos: [ValueInfo]) {
        self.steps = steps
        self.arena = arena
        self.inputInfos = inputInfos
        self.outputSources = outputSources
        self.outputInfos = outputInfos
    }

    /// Bytes of the arena that holds every intermediate tensor.
    public var arenaBytes: Int { arena.byteCount }
    /// Number of kernel calls per run.
    public var stepCount: Int { steps.count }
    /// Node names in execution order.
    public var order: [String] { steps.map(\.node.name) }
    /// Shapes and dtypes of the outputs.
    public var outputs: [ValueInfo] { outputInfos }

    /// Runs every step on `inputs` (contiguous, already checked) and returns the outputs. With `stepSeconds`
    /// (one entry per step), each step's wall time is added to its entry.
    func run(_ inputs: [Tensor], stepSeconds: UnsafeMutableBufferPointer<Double>? = nil) throws -> [Tensor] {
        let fresh = outputInfos.map { Tensor(zeros: $0.shape, dtype: $0.dtype) }
        func resolve(_ slot: Slot) -> Tensor {
            switch slot {
            case .constant(let t), .arena(let t): return t
            case .graphInput(let i): return inputs[i]
            case .graphOutput(let i): return fresh[i]
            }
        }
        for (k, step) in steps.enumerated() {
            let ins = step.inputs.map { $0.map(resolve) }
            let outs = step.outputs.map(resolve)
            do {
                if let stepSeconds {
                    let start = Clock.seconds()
                    try step.kernel.run(ins, outs)
                    stepSeconds[k] += Clock.seconds() - start
                } else {
                    try step.kernel.run(ins, outs)
                }
            } catch {
                throw error.aidgePrefixed("\(step.node.type) node \(step.node.name)")
            }
        }
        return outputSources.enumerated().map { i, slot in
            if case .graphOutput(let j) = slot, j == i { return fresh[i] }
            return resolve(slot).copy()
        }
    }
}
