@preconcurrency import CPython
import Aidge

/// What a Python optimizer object holds.
final class OptimizerBox {
    let optimizer: Optimizer
    init(_ optimizer: Optimizer) { self.optimizer = optimizer }
}

/// The type `_aidge.Optimizer` (wrapped in Python by `aidge.learning.SGD` / `Adam`): the engine's optimizers,
/// updating parameters in place.
enum OptimizerType {
    nonisolated(unsafe) static var type: OpaquePointer?

    static func unwrap(_ o: PyObjectRef) throws -> Optimizer {
        guard isInstance(o, of: type), let box = payload(o, as: OptimizerBox.self) else {
            throw PythonError.type("expected an aidge optimizer, got \(typeName(o))")
        }
        return box.optimizer
    }

    static func install(in module: PyObjectRef) throws {
        let methods = methodTable([
            oneArgumentMethod("set_parameters", setParametersMethod, "set_parameters(parameters)\n--\n\nThe tensors (or Producer nodes) to update; resets the state."),
            plainMethod("parameters", parametersMethod, "parameters()\n--\n\nThe tensors this optimizer updates."),
            plainMethod("reset_grad", resetGradientsMethod, "reset_grad()\n--\n\nEmpties every parameter's gradient."),
            plainMethod("update", updateMethod, "update()\n--\n\nOne update step; the learning-rate schedule advances."),
            plainMethod("learning_rate", learningRateMethod, "learning_rate()\n--\n\nThe learning rate of the next update."),
            keywordMethod("set_schedule", setScheduleMethod, "set_schedule(kind, lr, step_size=0, gamma=0.1, max_steps=0, min_decay=0.0, warmup=0)\n--\n\nThe learning-rate schedule: 'constant', 'step' or 'cosine'."),
            plainMethod("state", stateMethod, "state()\n--\n\n(step, [[buffer tensors] per parameter]): copies."),
            keywordMethod("load_state", loadStateMethod, "load_state(step, buffers)\n--\n\nRestores a state from state()."),
        ])
        let getters = getterTable([("step", stepGetter, "Updates done so far.")])
        type = try makeType(
            "Optimizer", in: module, subclassable: false,
            slots: [
                (Py_tp_dealloc, unsafeBitCast(deallocate, to: UnsafeMutableRawPointer.self)),
                (Py_tp_methods, UnsafeMutableRawPointer(methods)),
                (Py_tp_getset, UnsafeMutableRawPointer(getters)),
                (Py_tp_doc, UnsafeMutableRawPointer(mutating: permanentCString("An optimizer of the engine."))),
            ])
    }
}

/// `optimizer(kind, lr, momentum=0, dampening=0, weight_decay=0, nesterov=False, beta1=0.9, beta2=0.999,
/// epsilon=1e-8, decoupled_weight_decay=False)`.
let optimizerFunction: KeywordFunction = { _, args, kwargs in
    pyCall {
        let a = try Arguments(
            args, kwargs,
            names: [
                "kind", "lr", "momentum", "dampening", "weight_decay", "nesterov", "beta1", "beta2", "epsilon",
                "decoupled_weight_decay",
            ], required: 2, function: "optimizer")
        func number(_ name: String, _ fallback: Double) throws -> Double {
            guard let o = a[name] else { return fallback }
            return try floatValue(o, name)
        }
        let kind = try stringValue(try a.required("kind"), "kind")
        let rate = try floatValue(try a.required("lr"), "lr")
        let optimizer: Optimizer
        switch kind {
        case "sgd":
            optimizer = try SGD(
                learningRate: rate, momentum: try number("momentum", 0), dampening: try number("dampening", 0),
                weightDecay: try number("weight_decay", 0), nesterov: try a["nesterov"].map(boolValue) ?? false)
        case "adam":
            optimizer = try Adam(
                learningRate: rate, beta1: try number("beta1", 0.9), beta2: try number("beta2", 0.999),
                epsilon: try number("epsilon", 1e-8), weightDecay: try number("weight_decay", 0),
                decoupledWeightDecay: try a["decoupled_weight_decay"].map(boolValue) ?? false)
        default:
            throw PythonError.value("unknown optimizer '\(kind)' (sgd or adam)")
        }
        guard let type = OptimizerType.type else { throw PythonError.runtime("the optimizer type is not initialised") }
        return try makeObject(of: type, holding: OptimizerBox(optimizer))
    }
}

private let setParametersMethod: PyCFunction = { o, arg in
    pyCall {
        let optimizer = try OptimizerType.unwrap(o!)
        let items = try sequenceItems(arg!, "parameters")
        defer { items.forEach { Py_DecRef($0) } }
        let tensors: [Tensor] = try items.enumerated().map { i, item in
            if isInstance(item, of: NodeType.type) {
                let node = try NodeType.unwrap(item)
                guard node.type == "Producer", let t = node.producedTensor else {
                    throw PythonError.value("parameter \(i): node \(node.name) is a \(node.type), not a Producer")
                }
                guard t.gradient != nil else {
                    throw PythonError.value("parameter \(i): Producer \(node.name) is constant, it cannot be trained")
                }
                return t
            }
            return try TensorType.unwrap(item, "parameter \(i)")
        }
        try optimizer.setParameters(tensors)
        return aidge_none()
    }
}

private let parametersMethod: PyCFunction = { o, _ in
    pyCall { try makeList(try OptimizerType.unwrap(o!).parameters.map(TensorType.wrap)) }
}

private let resetGradientsMethod: PyCFunction = { o, _ in
    pyCall {
        try OptimizerType.unwrap(o!).resetGradients()
        return aidge_none()
    }
}

private let updateMethod: PyCFunction = { o, _ in
    pyCall {
        try OptimizerType.unwrap(o!).update()
        return aidge_none()
    }
}

private let learningRateMethod: PyCFunction = { o, _ in
    pyCall {
        guard let f = PyFloat_FromDouble(try OptimizerType.unwrap(o!).learningRate) else { throw PythonError.alreadySet }
        return f
    }
}

private let stepGetter: getter = { o, _ in pyCall { try makeInt(try OptimizerType.unwrap(o!).step) } }

private let setScheduleMethod: KeywordFunction = { o, args, kwargs in
    pyCall {
        let a = try Arguments(
            args, kwargs, names: ["kind", "lr", "step_size", "gamma", "max_steps", "min_decay", "warmup"],
            required: 2, function: "set_schedule")
        let optimizer = try OptimizerType.unwrap(o!)
        let base = try floatValue(try a.required("lr"), "lr")
        let warmup = try a["warmup"].map { try intValue($0, "warmup") } ?? 0
        let shape: LearningRateSchedule.Shape
        switch try stringValue(try a.required("kind"), "kind") {
        case "constant": shape = .constant
        case "step":
            shape = .step(
                stepSize: try a["step_size"].map { try intValue($0, "step_size") } ?? 0,
                gamma: try a["gamma"].map { try floatValue($0, "gamma") } ?? 0.1)
        case "cosine":
            shape = .cosine(
                maxSteps: try a["max_steps"].map { try intValue($0, "max_steps") } ?? 0,
                minDecay: try a["min_decay"].map { try floatValue($0, "min_decay") } ?? 0)
        case let other: throw PythonError.value("unknown schedule '\(other)' (constant, step or cosine)")
        }
        optimizer.schedule = try LearningRateSchedule(base: base, shape: shape, warmup: warmup)
        return aidge_none()
    }
}

private let stateMethod: PyCFunction = { o, _ in
    pyCall {
        let state = try OptimizerType.unwrap(o!).state
        let buffers = try makeList(try state.buffers.map { try makeList(try $0.map(TensorType.wrap)) })
        return try makeTuple([try makeInt(state.step), buffers])
    }
}

private let loadStateMethod: KeywordFunction = { o, args, kwargs in
    pyCall {
        let a = try Arguments(args, kwargs, names: ["step", "buffers"], required: 2, function: "load_state")
        let optimizer = try OptimizerType.unwrap(o!)
        let step = try intValue(try a.required("step"), "step")
        let lists = try sequenceItems(try a.required("buffers"), "buffers")
        defer { lists.forEach { Py_DecRef($0) } }
        let buffers: [[Tensor]] = try lists.enumerated().map { i, list in
            let items = try sequenceItems(list, "buffers[\(i)]")
            defer { items.forEach { Py_DecRef($0) } }
            return try items.enumerated().map { k, t in try TensorType.unwrap(t, "buffers[\(i)][\(k)]") }
        }
        try optimizer.load(OptimizerState(step: step, buffers: buffers))
        return aidge_none()
    }
}
