@preconcurrency import CPython
import Aidge

/// Training methods of `_aidge.Graph`: mode, recorded forwards and backward.

/// `backward()`: back-propagates the last recorded forward from the gradients a loss wrote on its outputs.
let backwardMethod: PyCFunction = { o, _ in
    pyCall {
        let box = try GraphType.box(o!)
        try withoutGIL { try box.lock.withLock { _ in try box.scheduler.backward() } }
        return aidge_none()
    }
}

/// `train(mode=True)`: training mode (batch statistics, dropout, recorded forwards) or evaluation mode.
let trainMethod: KeywordFunction = { o, args, kwargs in
    pyCall {
        let a = try Arguments(args, kwargs, names: ["mode"], function: "train")
        let box = try GraphType.box(o!)
        let on = try a["mode"].map(boolValue) ?? true
        box.lock.withLock { _ in box.graph.train(on) }
        return aidge_none()
    }
}

let trainingGetter: getter = { o, _ in pyCall { makeBool(try GraphType.box(o!).graph.isTraining) } }

/// `records_gradients`: whether forwards record for backward in evaluation mode too (Aidge's schedulers do).
let recordsGradientsGetter: getter = { o, _ in pyCall { makeBool(try GraphType.box(o!).scheduler.recordsGradients) } }

/// `set_records_gradients(on)`.
let setRecordsGradientsMethod: PyCFunction = { o, arg in
    pyCall {
        let box = try GraphType.box(o!)
        let on = try boolValue(arg!)
        box.lock.withLock { _ in box.scheduler.recordsGradients = on }
        return aidge_none()
    }
}

/// `parameters()`: the Producer nodes that training updates (float weights feeding differentiable inputs).
let graphParametersMethod: PyCFunction = { o, _ in
    pyCall { try makeList(try GraphType.box(o!).graph.parameters.map(NodeType.wrap)) }
}

/// `reset_grad()`: empties the gradient of every parameter of the graph.
let resetGradientsGraphMethod: PyCFunction = { o, _ in
    pyCall {
        let box = try GraphType.box(o!)
        box.lock.withLock { _ in
            for node in box.graph.parameters { node.producedTensor?.gradient?.reset() }
        }
        return aidge_none()
    }
}
