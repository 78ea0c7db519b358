@preconcurrency import CPython
import Aidge
import Synchronization

/// What a Python graph object holds: the graph, its scheduler (plans cached by input shapes), and a lock so that
/// two Python threads running the same graph take turns on its working memory.
final class GraphBox {
    let graph: GraphView
    /// Replaced when the graph moves to another backend (`set_backend`).
    var scheduler: Scheduler
    let lock = Mutex<Void>(())

    init(_ graph: GraphView) {
        self.graph = graph
        scheduler = Scheduler(graph)
    }
}

/// The type `_aidge.Graph` (wrapped in Python by `aidge.GraphView`).
enum GraphType {
    nonisolated(unsafe) static var type: OpaquePointer?

    static func wrap(_ graph: GraphView) throws -> PyObjectRef {
        guard let type else { throw PythonError.runtime("the graph type is not initialised") }
        return try makeObject(of: type, holding: GraphBox(graph))
    }

    static func box(_ o: PyObjectRef) throws -> GraphBox {
        guard isInstance(o, of: type), let box = payload(o, as: GraphBox.self) else {
            throw PythonError.type("expected an aidge graph, got \(typeName(o))")
        }
        return box
    }

    static func install(in module: PyObjectRef) throws {
        let methods = methodTable([
            keywordMethod("profile", profileMethod, "profile(inputs, runs=1)\n--\n\nRuns the graph and returns (node name, type, mean seconds) per kernel call, in execution order."),
            oneArgumentMethod("run", runMethod, "run(inputs)\n--\n\nRuns the graph on a list of tensors (one per graph input, in order); returns the output tensors. The GIL is released while it computes."),
            keywordMethod("optimize", optimizeMethod, "optimize(remove_identity=True, remove_dropout=True, constant_folding=True, fuse_batchnorm=True, fuse_activation=True, fuse_gelu=True)\n--\n\nApplies the inference recipes; returns {recipe: nodes changed}."),
            plainMethod("mermaid", mermaidMethod, "mermaid()\n--\n\nThe graph as a Mermaid flowchart."),
            plainMethod("node_list", nodeListMethod, "node_list()\n--\n\nThe Node objects, in topological order."),
            oneArgumentMethod("get_node", getNodeMethod, "get_node(name)\n--\n\nThe node called `name`, or None."),
            oneArgumentMethod("add", addMethod, "add(node_or_graph)\n--\n\nAdds a node (with its producers) or a graph's nodes."),
            plainMethod("ordered_inputs", orderedInputsMethod, "ordered_inputs()\n--\n\n(node, input index) that reads each graph input, in order."),
            plainMethod("ordered_outputs", orderedOutputsMethod, "ordered_outputs()\n--\n\n(node, output index) of each graph output, in order."),
            plainMethod("input_nodes", inputNodesMethod, "input_nodes()\n--\n\nNodes that read a graph input, in input order."),
            plainMethod("output_nodes", outputNodesMethod, "output_nodes()\n--\n\nNodes whose output is a graph output, in output order."),
            plainMethod("clone", cloneMethod, "clone()\n--\n\nA copy with new nodes; tensors are shared views."),
            keywordMethod("set_input_dims", setInputDimsMethod, "set_input_dims(dims, dtype=None)\n--\n\nFixes the input shapes (one list per input) and plans them, checking every operator's shapes."),
            oneArgumentMethod("apply_recipe", recipeMethod, "apply_recipe(name)\n--\n\nOne recipe (fuse_batchnorm, fuse_activation, fuse_gelu, fuse_linear, remove_identity, remove_dropout, remove_flatten, constant_folding, matmul_to_fc); returns nodes changed."),
            oneArgumentMethod("set_datatype", setDatatypeMethod, "set_datatype(dtype)\n--\n\nConverts the floating-point weights and inputs to `dtype` (Aidge's GraphView.set_datatype)."),
            keywordMethod("replace_node", replaceNodeMethod, "replace_node(old, new)\n--\n\nPuts `new` in place of `old`: same inputs, and every reader of old's outputs reads new's."),
            keywordMethod("replace", replaceMethod, "replace(old_nodes, new_nodes)\n--\n\nSwaps a connected piece of this graph for a chain of new nodes."),
            keywordMethod("run_recorded", runRecordedMethod, "run_recorded(inputs, training=False)\n--\n\nRuns the graph keeping what backward needs; returns (outputs, recording). Each run has its own recording."),
            keywordMethod("backward_recorded", backwardRecordedMethod, "backward_recorded(recording, output_gradients, inputs=())\n--\n\nBack-propagates a recorded run from one gradient per output (None for none); adds into the parameters' gradients; returns the gradients of the listed graph inputs."),
            plainMethod("backward", backwardMethod, "backward()\n--\n\nBack-propagates the last recorded run from the gradients a loss wrote on its outputs; accumulates into the parameters' gradients."),
            keywordMethod("train", trainMethod, "train(mode=True)\n--\n\nTraining mode (batch statistics, dropout, runs recorded for backward) or, with False, evaluation mode."),
            oneArgumentMethod("set_records_gradients", setRecordsGradientsMethod, "set_records_gradients(on)\n--\n\nWhether runs record for backward in evaluation mode too."),
            plainMethod("reset_grad", resetGradientsGraphMethod, "reset_grad()\n--\n\nEmpties the gradient of every parameter."),
            plainMethod("parameters", graphParametersMethod, "parameters()\n--\n\nThe Producer nodes that training updates."),
            oneArgumentMethod("set_backend", setBackendMethod, "set_backend(name)\n--\n\nRuns the graph on backend `name` ('cpu' or 'cuda') from now on; inputs on the host are copied to the device, outputs stay where the graph ran."),
            plainMethod("update_inputs_outputs", updateMethod, "update_inputs_outputs()\n--\n\nRecomputes the ordered inputs and outputs after edits."),
        ])
        let getters = getterTable([
            ("inputs", inputsGetter, "The graph inputs: (name, dtype, dims) with a string for a symbolic dimension."),
            ("outputs", outputsGetter, "The graph output names, in order."),
            ("kinds", kindsGetter, "What each input and output holds: 'tensor', or 'sequence(tensor)', 'optional(...)'."),
            ("nodes", nodesGetter, "The nodes: (name, type) in topological order."),
            ("name", nameGetter, "The graph's name."),
            ("backend", backendGetter, "The backend the graph runs on ('cpu' or 'cuda')."),
            ("training", trainingGetter, "Whether the graph is in training mode."),
            ("records_gradients", recordsGradientsGetter, "Whether runs record for backward in evaluation mode."),
        ])
        type = try makeType(
            "Graph", in: module, subclassable: false,
            slots: [
                (Py_tp_dealloc, unsafeBitCast(deallocate, to: UnsafeMutableRawPointer.self)),
                (Py_tp_methods, UnsafeMutableRawPointer(methods)),
                (Py_tp_getset, UnsafeMutableRawPointer(getters)),
                (Py_tp_doc, UnsafeMutableRawPointer(mutating: permanentCString("A computational graph with its scheduler."))),
            ])
    }
}

private let runMethod: PyCFunction = { o, arg in
    pyCall {
        let box = try GraphType.box(o!)
        let items = try sequenceItems(arg!, "inputs")
        defer { items.forEach { Py_DecRef($0) } }
        let declared = box.graph.inputs
        let inputs = try items.enumerated().map { i, item in
            try value(item, "input \(i)", dtype: i < declared.count ? declared[i].dtype : .float32)
        }
        let outputs = try withoutGIL {
            try box.lock.withLock { _ in try box.scheduler.run(inputs) }
        }
        return try makeList(try outputs.map(wrap))
    }
}

/// A graph input from Python: a tensor, a list of tensors (a sequence; `dtype` types an empty one) or None (an
/// empty optional).
private func value(_ o: PyObjectRef, _ what: String, dtype: DType) throws -> Value {
    if aidge_is_none(o) != 0 { return .absent }
    guard PyList_Check_(o) != 0 else { return .tensor(try TensorType.unwrapOnAnyDevice(o, what)) }
    let items = try sequenceItems(o, what)
    defer { items.forEach { Py_DecRef($0) } }
    let tensors = try items.enumerated().map { k, item in try TensorType.unwrap(item, "\(what)[\(k)]") }
    return .sequence(try TensorSequence(dtype: tensors.first?.dtype ?? dtype, tensors))
}

/// A graph output for Python: a tensor, a list of tensors, or None.
private func wrap(_ value: Value) throws -> PyObjectRef {
    switch value {
    case .tensor(let t): return try TensorType.wrap(t)
    case .sequence(let s): return try makeList(try s.tensors.map(TensorType.wrap))
    case .absent: return aidge_none()
    }
}

private let setBackendMethod: PyCFunction = { o, arg in
    pyCall {
        let box = try GraphType.box(o!)
        let name = try stringValue(arg!, "backend")
        try Backends.load(name)
        box.lock.withLock { _ in
            let recording = box.scheduler.recordsGradients
            box.scheduler = Scheduler(box.graph, backend: name)
            box.scheduler.recordsGradients = recording
        }
        return aidge_none()
    }
}

private let backendGetter: getter = { o, _ in
    pyCall { try makeString(try GraphType.box(o!).scheduler.backend) }
}

private let profileMethod: KeywordFunction = { o, args, kwargs in
    pyCall {
        let a = try Arguments(args, kwargs, names: ["inputs", "runs"], required: 1, function: "profile")
        let box = try GraphType.box(o!)
        let items = try sequenceItems(try a.required("inputs"), "inputs")
        defer { items.forEach { Py_DecRef($0) } }
        let inputs = try items.enumerated().map { i, item in try TensorType.unwrap(item, "input \(i)") }
        let runs = try a["runs"].map { try intValue($0, "runs") } ?? 1
        let steps = try withoutGIL {
            try box.lock.withLock { _ in
                try box.scheduler.profile(inputs, runs: runs).map { ($0.node.name, $0.node.type, $0.seconds) }
            }
        }
        return try makeList(
            try steps.map { try makeTuple([try makeString($0.0), try makeString($0.1), PyFloat_FromDouble($0.2)]) })
    }
}

private let optimizeMethod: KeywordFunction = { o, args, kwargs in
    pyCall {
        let names = [
            "remove_identity", "remove_dropout", "constant_folding", "fuse_batchnorm", "fuse_activation", "fuse_gelu",
        ]
        let a = try Arguments(args, kwargs, names: names, function: "optimize")
        var options = Recipes.Options()
        options.removeIdentity = try a["remove_identity"].map(boolValue) ?? true
        options.removeDropout = try a["remove_dropout"].map(boolValue) ?? true
        options.constantFolding = try a["constant_folding"].map(boolValue) ?? true
        options.fuseBatchNorm = try a["fuse_batchnorm"].map(boolValue) ?? true
        options.fuseActivation = try a["fuse_activation"].map(boolValue) ?? true
        options.fuseGelu = try a["fuse_gelu"].map(boolValue) ?? true
        let box = try GraphType.box(o!)
        let changes = try withoutGIL {
            try box.lock.withLock { _ in
                defer { box.scheduler.resetPlans() }
                return try Recipes.optimizeForInference(box.graph, options: options)
            }
        }
        guard let dict = PyDict_New() else { throw PythonError.alreadySet }
        for (key, value) in changes {
            let v = try makeInt(value)
            PyDict_SetItemString(dict, key, v)
            Py_DecRef(v)
        }
        return dict
    }
}

private let mermaidMethod: PyCFunction = { o, _ in
    pyCall { try makeString(try GraphType.box(o!).graph.mermaid()) }
}

private let inputsGetter: getter = { o, _ in
    pyCall {
        let graph = try GraphType.box(o!).graph
        return try makeList(
            try graph.inputs.map { input in
                let dims: PyObjectRef
                if let shape = input.shape {
                    dims = try makeList(
                        try shape.map { d in
                            switch d {
                            case .fixed(let n): return try makeInt(n)
                            case .symbolic(let s): return try makeString(s)
                            }
                        })
                } else {
                    dims = aidge_none()
                }
                return try makeTuple([try makeString(input.name), try makeString(input.dtype.rawValue), dims])
            })
    }
}

private let kindsGetter: getter = { o, _ in
    pyCall {
        let graph = try GraphType.box(o!).graph
        return try makeTuple([
            try makeList(try graph.inputs.map { try makeString($0.kind.description) }),
            try makeList(try graph.outputs.map { try makeString($0.kind.description) }),
        ])
    }
}

private let outputsGetter: getter = { o, _ in
    pyCall { try makeList(try GraphType.box(o!).graph.outputs.map { try makeString($0.name) }) }
}

private let nodesGetter: getter = { o, _ in
    pyCall {
        let graph = try GraphType.box(o!).graph
        return try makeList(
            try graph.topologicalOrder().map { try makeTuple([try makeString($0.name), try makeString($0.type)]) })
    }
}

private let nameGetter: getter = { o, _ in
    pyCall { try makeString(try GraphType.box(o!).graph.name) }
}

private let nodeListMethod: PyCFunction = { o, _ in
    pyCall { try makeList(try GraphType.box(o!).graph.topologicalOrder().map(NodeType.wrap)) }
}

private let getNodeMethod: PyCFunction = { o, arg in
    pyCall { try NodeType.wrap(try GraphType.box(o!).graph.node(named: try stringValue(arg!, "name"))) }
}

private let addMethod: PyCFunction = { o, arg in
    pyCall {
        let box = try GraphType.box(o!)
        let part = try NodeType.component(arg!, "node_or_graph")
        box.lock.withLock { _ in
            if let node = part as? Node { box.graph.add(node) } else { box.graph.add(part.asGraph) }
            box.graph.updateInputsOutputs()
            box.scheduler.resetPlans()
        }
        return aidge_none()
    }
}

private let setDatatypeMethod: PyCFunction = { o, arg in
    pyCall {
        let box = try GraphType.box(o!)
        let dtype = try dtypeValue(arg!)
        guard dtype.isFloatingPoint else { throw PythonError.value("set_datatype takes a floating-point type, got \(dtype)") }
        box.lock.withLock { _ in
            for producer in box.graph.producers {
                if let t = producer.producedTensor, t.dtype.isFloatingPoint, t.dtype != dtype {
                    producer.setProducedTensor(t.cast(to: dtype))
                }
            }
            for i in box.graph.inputs.indices where box.graph.inputs[i].dtype.isFloatingPoint {
                box.graph.inputs[i].dtype = dtype
            }
            box.scheduler.resetPlans()
        }
        return aidge_none()
    }
}

private let replaceMethod: KeywordFunction = { o, args, kwargs in
    pyCall {
        let a = try Arguments(args, kwargs, names: ["old_nodes", "new_nodes"], required: 2, function: "replace")
        let box = try GraphType.box(o!)
        func nodes(_ name: String) throws -> [Node] {
            let items = try sequenceItems(try a.required(name), name)
            defer { items.forEach { Py_DecRef($0) } }
            return try items.map { try NodeType.unwrap($0, "an element of \(name)") }
        }
        let old = try nodes("old_nodes")
        let new = try nodes("new_nodes")
        try box.lock.withLock { _ in
            defer { box.scheduler.resetPlans() }
            try box.graph.replace(old, with: new)
        }
        return aidge_none()
    }
}

private let replaceNodeMethod: KeywordFunction = { o, args, kwargs in
    pyCall {
        let a = try Arguments(args, kwargs, names: ["old", "new"], required: 2, function: "replace_node")
        let box = try GraphType.box(o!)
        let old = try NodeType.unwrap(try a.required("old"), "old")
        let new = try NodeType.unwrap(try a.required("new"), "new")
        guard box.graph.contains(old) else { throw PythonError.value("node \(old.name) is not in this graph") }
        guard new.outputCount >= old.outputCount else {
            throw PythonError.value("\(new.name) has \(new.outputCount) outputs, \(old.name) needs \(old.outputCount)")
        }
        try box.lock.withLock { _ in
            defer { box.scheduler.resetPlans() }
            let graph = box.graph
            for (i, source) in old.inputs.enumerated() {
                if let source { try new.setInput(i, from: source.node, output: source.index) }
            }
            for i in graph.inputs.indices {
                for j in graph.inputs[i].consumers.indices where graph.inputs[i].consumers[j].node === old {
                    graph.inputs[i].consumers[j] = (new, graph.inputs[i].consumers[j].index)
                }
            }
            for k in 0..<old.outputCount { try graph.replaceUses(of: (old, k), with: (new, k)) }
            graph.add(new)
            old.disconnectInputs()
            graph.remove(old)
        }
        return aidge_none()
    }
}

private let updateMethod: PyCFunction = { o, _ in
    pyCall {
        let box = try GraphType.box(o!)
        box.lock.withLock { _ in
            box.graph.updateInputsOutputs()
            box.scheduler.resetPlans()
        }
        return aidge_none()
    }
}

private let orderedInputsMethod: PyCFunction = { o, _ in
    pyCall {
        try makeList(
            try GraphType.box(o!).graph.inputs.map { input in
                let first = input.consumers.first
                return try makeTuple([try NodeType.wrap(first?.node), try makeInt(first?.index ?? -1)])
            })
    }
}

private let orderedOutputsMethod: PyCFunction = { o, _ in
    pyCall {
        try makeList(
            try GraphType.box(o!).graph.outputs.map { try makeTuple([try NodeType.wrap($0.node), try makeInt($0.index)]) })
    }
}

private let inputNodesMethod: PyCFunction = { o, _ in
    pyCall {
        var seen = Set<ObjectIdentifier>()
        let nodes = try GraphType.box(o!).graph.inputs.flatMap { $0.consumers.map(\.node) }
            .filter { seen.insert(ObjectIdentifier($0)).inserted }
        return try makeList(try nodes.map(NodeType.wrap))
    }
}

private let outputNodesMethod: PyCFunction = { o, _ in
    pyCall {
        var seen = Set<ObjectIdentifier>()
        let nodes = try GraphType.box(o!).graph.outputs.map(\.node).filter { seen.insert(ObjectIdentifier($0)).inserted }
        return try makeList(try nodes.map(NodeType.wrap))
    }
}

private let cloneMethod: PyCFunction = { o, _ in
    pyCall { try GraphType.wrap(try GraphType.box(o!).graph.clone()) }
}

private let setInputDimsMethod: KeywordFunction = { o, args, kwargs in
    pyCall {
        let a = try Arguments(args, kwargs, names: ["dims", "dtype"], required: 1, function: "set_input_dims")
        let box = try GraphType.box(o!)
        let items = try sequenceItems(try a.required("dims"), "dims")
        defer { items.forEach { Py_DecRef($0) } }
        let shapes = try items.map { try intList($0, "dims") }
        let dtype = try a["dtype"].map(dtypeValue)
        guard shapes.count == box.graph.inputs.count else {
            throw PythonError.value("the graph has \(box.graph.inputs.count) inputs, \(shapes.count) dims were given")
        }
        try withoutGIL {
            try box.lock.withLock { _ in
                for (i, shape) in shapes.enumerated() {
                    box.graph.inputs[i].shape = shape.map { .fixed($0) }
                    if let dtype { box.graph.inputs[i].dtype = dtype }
                }
                box.scheduler.resetPlans()
                _ = try box.scheduler.plan(for: shapes)
            }
        }
        return aidge_none()
    }
}

private let recipeMethod: PyCFunction = { o, arg in
    pyCall {
        let box = try GraphType.box(o!)
        let name = try stringValue(arg!, "name")
        let count = try box.lock.withLock { _ -> Int in
            defer { box.scheduler.resetPlans() }
            switch name {
            case "fuse_batchnorm": return try Recipes.fuseBatchNorm(box.graph)
            case "fuse_activation": return try Recipes.fuseActivation(box.graph)
            case "fuse_gelu": return try Recipes.fuseGelu(box.graph)
            case "fuse_linear": return try Recipes.fuseLinear(box.graph)
            case "remove_identity": return try Recipes.removeIdentity(box.graph)
            case "remove_dropout": return try Recipes.removeDropout(box.graph)
            case "remove_flatten": return try Recipes.removeFlatten(box.graph)
            case "constant_folding": return try Recipes.constantFolding(box.graph)
            case "matmul_to_fc": return try Recipes.matMulToFC(box.graph)
            default: throw PythonError.value("unknown recipe '\(name)'")
            }
        }
        return try makeInt(count)
    }
}

/// `load_onnx(path=None, data=None, base_dir=None)`: a graph from a file or from bytes (external data is found
/// next to `path`, or in `base_dir`).
let loadONNXFunction: KeywordFunction = { _, args, kwargs in
    pyCall {
        let a = try Arguments(args, kwargs, names: ["path", "data", "base_dir"], function: "load_onnx")
        let graph: GraphView
        if let path = a["path"] {
            let p = try stringValue(path, "path")
            graph = try withoutGIL { try ONNX.load(path: p) }
        } else if let data = a["data"] {
            guard PyBytes_Check_(data) != 0 else { throw PythonError.type("data must be bytes, got \(typeName(data))") }
            var pointer: UnsafeMutablePointer<CChar>?
            var size = 0
            guard PyBytes_AsStringAndSize(data, &pointer, &size) == 0, let pointer else { throw PythonError.alreadySet }
            let bytes = [UInt8](UnsafeRawBufferPointer(start: pointer, count: size))
            let base = try a["base_dir"].map { try stringValue($0, "base_dir") } ?? "."
            graph = try withoutGIL { try ONNX.load(bytes: bytes, baseDirectory: base) }
        } else {
            throw PythonError.type("load_onnx() needs a path or bytes")
        }
        return try GraphType.wrap(graph)
    }
}
