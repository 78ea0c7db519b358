/// Runs a graph with static plans: one plan per set of input shapes, built on first use and cached.
public final class Scheduler {
    public let graph: GraphView
    public let backend: String
    /// Largest output (in elements) that planning evaluates ahead of time when all inputs of a node are known.
    public var foldLimit = 1 << 16
    private var plans: [[[Int]]: Plan] = [:]

    public init(_ graph: GraphView, backend: String = "cpu") {
        self.graph = graph
        self.backend = backend
    }

    /// Runs the graph on `inputs` (one per graph input, in order) and returns its outputs.
    public func forward(_ inputs: [Tensor]) throws -> [Tensor] {
        let inputs = try checked(inputs)
        let plan = try self.plan(for: inputs.map(\.shape))
        return try plan.run(inputs)
    }

    /// Runs the graph `runs` times on `inputs` and returns each kernel call's mean time, in execution order.
    public func profile(_ inputs: [Tensor], runs: Int) throws -> [(node: Node, seconds: Double)] {
        let inputs = try checked(inputs)
        let plan = try self.plan(for: inputs.map(\.shape))
        var total = [Double](repeating: 0, count: plan.steps.count)
        try total.withUnsafeMutableBufferPointer { buffer in
            for _ in 0..<max(runs, 1) { _ = try plan.run(inputs, stepSeconds: buffer) }
        }
        return zip(plan.steps, total).map { ($0.node, $1 / Double(max(runs, 1))) }
    }

    /// The plan for these input shapes (built and cached on first use).
    public func plan(for shapes: [[Int]]) throws -> Plan {
        if let plan = plans[shapes] { return plan }
        let plan = try PlanBuilder(graph: graph, backend: backend, foldLimit: foldLimit).build(shapes)
        plans[shapes] = plan
        return plan
    }

    /// Drops cached plans (after the graph or its weights were edited).
    public func resetPlans() { plans = [:] }

    /// Checks count, dtypes and declared shapes of `inputs`; returns them contiguous.
    private func checked(_ inputs: [Tensor]) throws -> [Tensor] {
        guard inputs.count == graph.inputs.count else {
            throw AidgeError.invalidArgument(
                "the graph takes \(graph.inputs.count) inputs (\(graph.inputs.map(\.name).joined(separator: ", "))), "
                    + "got \(inputs.count)")
        }
        return try zip(graph.inputs, inputs).map { declared, tensor in
            guard tensor.device == .cpu || backend != "cpu" else {
                throw AidgeError.unsupported(
                    "input '\(declared.name)' is on \(tensor.device); running it needs the CUDA backend")
            }
            guard tensor.dtype == declared.dtype else {
                throw AidgeError.unsupportedType(
                    "input '\(declared.name)' must be \(declared.dtype), got \(tensor.dtype)")
            }
            if let dims = declared.shape {
                let matches = dims.count == tensor.rank && zip(dims, tensor.shape).allSatisfy { dim, n in
                    if case .fixed(let f) = dim { return f == n || f <= 0 }
                    return true
                }
                guard matches else {
                    throw AidgeError.shapeMismatch(
                        "input '\(declared.name)' has shape \(ShapeUtil.text(tensor.shape)), the model expects "
                            + dims.map(\.description).joined(separator: "x"))
                }
            }
            return tensor.contiguous()
        }
    }
}
