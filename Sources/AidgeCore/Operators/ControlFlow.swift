/// Control flow: If, Loop and Scan, whose subgraphs (graph attributes) are planned to infer the outputs. Values
/// their subgraphs read from the enclosing graph are trailing inputs of the node (see `Subgraph`).
///
/// When every input is known, planning runs the operator, so its outputs are known too (a Loop whose trip count
/// comes from shapes, an If on a constant condition); otherwise the outputs' shapes must follow from the
/// subgraphs' shapes alone, or planning asks for the values that decide them.
extension OperatorSchema {
    static let controlFlowSchemas: [OperatorSchema] = ["If", "Loop", "Scan"].map { type in
        OperatorSchema(type, inputs: ["inputs"], minInputs: type == "If" ? 1 : 0, variadic: true) { attributes, inputs in
            let op = Operator(type, attributes: attributes)
            if inputs.allSatisfy({ $0 == nil || $0?.value != nil }) {
                let runner = ControlFlowRunner(op, backend: PlanningContext.backend)
                return try runner.run(inputs.map { $0?.value }).map { ValueInfo($0) }
            }
            switch type {
            case "If": return try ControlFlowInference.ifOutputs(attributes, inputs)
            case "Loop": return try ControlFlowInference.loopOutputs(attributes, inputs)
            default: return try ControlFlowInference.scanOutputs(attributes, inputs)
            }
        }
    }
}

/// Output inference of the control flow operators from their subgraphs' plans.
enum ControlFlowInference {
    /// The outputs of `subgraph` fed `inputs`: dtypes and shapes, and values where planning computed them.
    static func outputs(_ subgraph: Subgraph, _ inputs: [ValueInfo]) throws -> [ValueInfo] {
        let plan: Plan
        do {
            plan = try PlanBuilder(
                graph: subgraph.graph, backend: PlanningContext.backend, foldLimit: 1 << 16, mode: .inference
            ).build(infos: inputs)
        } catch let stop as PlanBuilder.ValuesNeeded {
            throw stop.error
        }
        return zip(plan.outputInfos, plan.outputSources).map { info, source in
            if case .constant(let value) = source { return ValueInfo(value) }
            return info
        }
    }

    /// The node's inputs from `start` on (the values its subgraphs read from the enclosing graph).
    static func captured(_ inputs: [ValueInfo?], from start: Int) throws -> [ValueInfo] {
        try (start..<max(start, inputs.count)).map { i in
            guard let info = inputs[i] else { throw AidgeError.invalidModel("captured value \(i) is absent") }
            return info
        }
    }

    static func ifOutputs(_ attributes: Attributes, _ inputs: [ValueInfo?]) throws -> [ValueInfo] {
        let captured = try captured(inputs, from: 1)
        if let condition = try inputs.required(0).value?.boolean {
            return try outputs(try attributes.subgraph(condition ? "then_branch" : "else_branch"), captured)
        }
        let thenOutputs = try outputs(try attributes.subgraph("then_branch"), captured)
        let elseOutputs = try outputs(try attributes.subgraph("else_branch"), captured)
        let agree =
            thenOutputs.count == elseOutputs.count
            && zip(thenOutputs, elseOutputs).allSatisfy { $0.dtype == $1.dtype && $0.shape == $1.shape }
        guard agree else {
            throw AidgeError.unknownValue(
                "the condition of If must be known before running: its branches give different outputs")
        }
        return thenOutputs.map { ValueInfo(dtype: $0.dtype, shape: $0.shape) }
    }

    static func loopOutputs(_ attributes: Attributes, _ inputs: [ValueInfo?]) throws -> [ValueInfo] {
        let body = try attributes.subgraph("body")
        let carried = body.formalInputCount - 2
        guard carried >= 0, inputs.count >= 2 + carried else {
            throw AidgeError.invalidModel("Loop takes M, cond and \(max(carried, 0)) carried values")
        }
        let tripCount = inputs[0]
        let condition = inputs[1]
        let initial = try (0..<carried).map { try inputs.required(2 + $0) }
        // The condition fed to the body: known when it is (or when it is absent: the loop is a for loop).
        let conditionIn =
            condition.map { $0.value == nil ? ValueInfo(dtype: .bool, shape: []) : $0 } ?? ValueInfo(Tensor.bool(true))
        let bodyInputs =
            [ValueInfo(dtype: .int64, shape: []), conditionIn]
            + initial.map { ValueInfo(dtype: $0.dtype, shape: $0.shape) }
            + (try captured(inputs, from: 2 + carried))
        let results = try outputs(body, bodyInputs)
        guard results.count >= 1 + carried else {
            throw AidgeError.invalidModel("Loop body has \(results.count) outputs, fewer than 1 + \(carried)")
        }
        for k in 0..<carried where results[1 + k].dtype != initial[k].dtype || results[1 + k].shape != initial[k].shape {
            throw AidgeError.unknownValue(
                "Loop-carried value \(k) changes from \(initial[k].dtype) \(initial[k].shape) to \(results[1 + k].dtype) "
                    + "\(results[1 + k].shape) in the body: the loop's inputs must be known before running")
        }
        let scans = results.dropFirst(1 + carried)
        var iterations: Int?
        if !scans.isEmpty {
            let trip = tripCount?.value?.integers().first
            let always = condition == nil || (conditionIn.value?.boolean == true && results[0].value?.boolean == true)
            if let trip, always { iterations = max(trip, 0) }
            guard let iterations else {
                throw AidgeError.unknownValue("the trip count of a Loop with scan outputs must be known before running")
            }
            return initial.map { ValueInfo(dtype: $0.dtype, shape: $0.shape) }
                + scans.map { ValueInfo(dtype: $0.dtype, shape: [iterations] + $0.shape) }
        }
        return initial.map { ValueInfo(dtype: $0.dtype, shape: $0.shape) }
    }

    static func scanOutputs(_ attributes: Attributes, _ inputs: [ValueInfo?]) throws -> [ValueInfo] {
        let layout = try ScanLayout(attributes, inputShapes: try inputs.indices.map { try inputs.required($0).shape })
        let states = try (0..<layout.states).map { try inputs.required($0) }
        let slices = try (0..<layout.scanInputs).map { k -> ValueInfo in
            let x = try inputs.required(layout.states + k)
            var shape = x.shape
            shape.remove(at: layout.inputAxes[k])
            return ValueInfo(dtype: x.dtype, shape: shape)
        }
        let bodyInputs =
            states.map { ValueInfo(dtype: $0.dtype, shape: $0.shape) } + slices
            + (try captured(inputs, from: layout.states + layout.scanInputs))
        let results = try outputs(layout.body, bodyInputs)
        guard results.count >= layout.states else {
            throw AidgeError.invalidModel("Scan body has \(results.count) outputs, fewer than its \(layout.states) states")
        }
        for k in 0..<layout.states where results[k].dtype != states[k].dtype || results[k].shape != states[k].shape {
            throw AidgeError.shapeMismatch("Scan state \(k) changes from \(states[k].shape) to \(results[k].shape) in the body")
        }
        let scanOutputs = Array(results.dropFirst(layout.states))
        let axes = try layout.outputAxes(count: scanOutputs.count, ranks: scanOutputs.map { $0.shape.count + 1 })
        return states.map { ValueInfo(dtype: $0.dtype, shape: $0.shape) }
            + zip(scanOutputs, axes).map { out, axis in
                var shape = out.shape
                shape.insert(layout.length, at: axis)
                return ValueInfo(dtype: out.dtype, shape: shape)
            }
    }
}

/// Scan's attributes resolved against its inputs: states, scan inputs, axes, directions and the sequence length.
struct ScanLayout {
    let body: Subgraph
    let states: Int
    let scanInputs: Int
    let inputAxes: [Int]
    let inputReversed: [Bool]
    let length: Int
    private let attributes: Attributes

    init(_ attributes: Attributes, inputShapes: [[Int]]) throws {
        self.attributes = attributes
        body = try attributes.subgraph("body")
        scanInputs = try attributes.int("num_scan_inputs")
        states = body.formalInputCount - scanInputs
        guard scanInputs >= 1, states >= 0, inputShapes.count >= body.formalInputCount else {
            throw AidgeError.invalidModel(
                "Scan needs num_scan_inputs >= 1 (\(scanInputs)) and a body with as many inputs as the node's states and "
                    + "scan inputs")
        }
        let rawAxes = try attributes.ints("scan_input_axes", default: Array(repeating: 0, count: scanInputs))
        let directions = try attributes.ints("scan_input_directions", default: Array(repeating: 0, count: scanInputs))
        guard rawAxes.count == scanInputs, directions.count == scanInputs else {
            throw AidgeError.invalidModel("Scan scan_input_axes and scan_input_directions need \(scanInputs) values")
        }
        let (states, scanInputs) = (self.states, self.scanInputs)
        let axes = try (0..<scanInputs).map { k in
            try ShapeUtil.axis(rawAxes[k], rank: inputShapes[states + k].count, context: "Scan scan_input_axes")
        }
        inputAxes = axes
        inputReversed = directions.map { $0 != 0 }
        let lengths = (0..<scanInputs).map { inputShapes[states + $0][axes[$0]] }
        guard let first = lengths.first, lengths.allSatisfy({ $0 == first }) else {
            throw AidgeError.shapeMismatch("Scan inputs have different sequence lengths \(lengths)")
        }
        length = first
    }

    /// The axis of each scan output in the stacked result, of rank `ranks[k]`.
    func outputAxes(count: Int, ranks: [Int]) throws -> [Int] {
        let raw = try attributes.ints("scan_output_axes", default: Array(repeating: 0, count: count))
        guard raw.count == count else { throw AidgeError.invalidModel("Scan scan_output_axes needs \(count) values") }
        return try (0..<count).map { try ShapeUtil.axis(raw[$0], rank: ranks[$0], context: "Scan scan_output_axes") }
    }

    func outputReversed(count: Int) throws -> [Bool] {
        let raw = try attributes.ints("scan_output_directions", default: Array(repeating: 0, count: count))
        guard raw.count == count else { throw AidgeError.invalidModel("Scan scan_output_directions needs \(count) values") }
        return raw.map { $0 != 0 }
    }
}
