@preconcurrency import CPython
import Aidge

/// What a Python node object holds. Several Python objects may hold the same node: they compare equal.
final class NodeBox {
    let node: Node
    init(_ node: Node) { self.node = node }
}

/// The type `_aidge.Node` (Aidge's `Node`: a graph vertex holding an operator).
enum NodeType {
    nonisolated(unsafe) static var type: OpaquePointer?

    static func wrap(_ node: Node) throws -> PyObjectRef {
        guard let type else { throw PythonError.runtime("the node type is not initialised") }
        return try makeObject(of: type, holding: NodeBox(node))
    }

    static func wrap(_ node: Node?) throws -> PyObjectRef { try node.map(wrap) ?? aidge_none() }

    static func unwrap(_ o: PyObjectRef, _ what: String = "argument") throws -> Node {
        guard isInstance(o, of: type), let box = payload(o, as: NodeBox.self) else {
            throw PythonError.type("\(what) must be an aidge Node, got \(typeName(o))")
        }
        return box.node
    }

    /// A node or a graph, for the builders.
    static func component(_ o: PyObjectRef, _ what: String) throws -> GraphComponent {
        if isInstance(o, of: type) { return try unwrap(o, what) }
        if let graph = attribute(o, "_graph") {  // aidge.GraphView
            defer { Py_DecRef(graph) }
            return try GraphType.box(graph).graph
        }
        return try GraphType.box(o).graph
    }

    static func install(in module: PyObjectRef) throws {
        let methods = methodTable([
            keywordMethod("add_child", addChildMethod, "add_child(other, out_id=0, other_in_id=None)\n--\n\nConnects output `out_id` of this node to input `other_in_id` of `other` (its first free data input by default)."),
            keywordMethod("set_input", setInputMethod, "set_input(index, parent, out_id=0)\n--\n\nConnects `parent`'s output `out_id` (or nothing, for None) to input `index`."),
            plainMethod("name", nameMethod, "name()\n--\n\nThe node's unique name."),
            plainMethod("type", typeMethod, "type()\n--\n\nThe operator type ('Conv', 'Relu', ...)."),
            oneArgumentMethod("set_name", setNameMethod, "set_name(name)\n--\n\nRenames the node."),
            oneArgumentMethod("set_producer_tensor", setProducerTensorMethod, "set_producer_tensor(tensor)\n--\n\nReplaces the tensor of a Producer node."),
            plainMethod("attributes", attributesMethod, "attributes()\n--\n\nThe operator's attributes as a dict."),
            plainMethod("inputs", inputsMethod, "inputs()\n--\n\n(parent node or None, parent output index) per input."),
        ])
        let getters = getterTable([
            ("input_names", inputNamesGetter, "The names of the inputs ('X', 'W', 'B' for Conv)."),
            ("output_count", outputCountGetter, "Number of outputs."),
            ("output_names", outputNamesGetter, "The names of the values the outputs carry (ONNX value names for imported nodes)."),
            ("parents", parentsGetter, "The parent node of each input (None where unconnected)."),
            ("children", childrenGetter, "The nodes that read an output of this one."),
            ("producer_tensor", producerTensorGetter, "The tensor of a Producer node, else None."),
        ])
        let compare: richcmpfunc = richCompare
        let hash: hashfunc = hashNode
        let repr: reprfunc = representation
        type = try makeType(
            "Node", in: module, subclassable: false,
            slots: [
                (Py_tp_dealloc, unsafeBitCast(deallocate, to: UnsafeMutableRawPointer.self)),
                (Py_tp_methods, UnsafeMutableRawPointer(methods)),
                (Py_tp_getset, UnsafeMutableRawPointer(getters)),
                (Py_tp_richcompare, unsafeBitCast(compare, to: UnsafeMutableRawPointer.self)),
                (Py_tp_hash, unsafeBitCast(hash, to: UnsafeMutableRawPointer.self)),
                (Py_tp_repr, unsafeBitCast(repr, to: UnsafeMutableRawPointer.self)),
                (Py_tp_doc, UnsafeMutableRawPointer(mutating: permanentCString("A graph node holding an operator."))),
            ])
    }
}

private let richCompare: richcmpfunc = { a, b, op in
    guard let a, let b, op == Py_EQ || op == Py_NE, isInstance(b, of: NodeType.type),
        let x = payload(a, as: NodeBox.self), let y = payload(b, as: NodeBox.self)
    else { return aidge_not_implemented() }
    return makeBool((x.node === y.node) == (op == Py_EQ))
}

private let hashNode: hashfunc = { o in
    guard let o, let box = payload(o, as: NodeBox.self) else { return 0 }
    return Py_hash_t(truncatingIfNeeded: ObjectIdentifier(box.node).hashValue & Int.max)
}

private let representation: reprfunc = { o in
    pyCall {
        let node = try NodeType.unwrap(o!)
        return try makeString("Node(name='\(node.name)', type='\(node.type)')")
    }
}

private let nameMethod: PyCFunction = { o, _ in pyCall { try makeString(try NodeType.unwrap(o!).name) } }
private let typeMethod: PyCFunction = { o, _ in pyCall { try makeString(try NodeType.unwrap(o!).type) } }
private let inputNamesGetter: getter = { o, _ in
    pyCall { try makeList(try NodeType.unwrap(o!).inputNames.map(makeString)) }
}
private let outputNamesGetter: getter = { o, _ in
    pyCall { try makeList(try NodeType.unwrap(o!).outputNames.map(makeString)) }
}
private let outputCountGetter: getter = { o, _ in pyCall { try makeInt(try NodeType.unwrap(o!).outputCount) } }
private let parentsGetter: getter = { o, _ in
    pyCall { try makeList(try NodeType.unwrap(o!).parents.map(NodeType.wrap)) }
}
private let childrenGetter: getter = { o, _ in
    pyCall { try makeList(try NodeType.unwrap(o!).children.map(NodeType.wrap)) }
}
private let producerTensorGetter: getter = { o, _ in
    pyCall { try NodeType.unwrap(o!).producedTensor.map(TensorType.wrap) ?? aidge_none() }
}

private let inputsMethod: PyCFunction = { o, _ in
    pyCall {
        let node = try NodeType.unwrap(o!)
        return try makeList(
            try node.inputs.map { input in
                try makeTuple([try NodeType.wrap(input?.node), try makeInt(input?.index ?? -1)])
            })
    }
}

private let addChildMethod: KeywordFunction = { o, args, kwargs in
    pyCall {
        let a = try Arguments(args, kwargs, names: ["other", "out_id", "other_in_id"], required: 1, function: "add_child")
        let node = try NodeType.unwrap(o!)
        let child = try NodeType.unwrap(try a.required("other"), "other")
        try node.addChild(
            child, output: try a["out_id"].map { try intValue($0, "out_id") } ?? 0,
            input: try a["other_in_id"].map { try intValue($0, "other_in_id") })
        return aidge_none()
    }
}

private let setInputMethod: KeywordFunction = { o, args, kwargs in
    pyCall {
        let a = try Arguments(args, kwargs, names: ["index", "parent", "out_id"], required: 1, function: "set_input")
        let node = try NodeType.unwrap(o!)
        let parent = try a["parent"].map { try NodeType.unwrap($0, "parent") }
        try node.setInput(
            try intValue(try a.required("index"), "index"), from: parent,
            output: try a["out_id"].map { try intValue($0, "out_id") } ?? 0)
        return aidge_none()
    }
}

private let setNameMethod: PyCFunction = { o, arg in
    pyCall {
        try NodeType.unwrap(o!).name = try stringValue(arg!, "name")
        return aidge_none()
    }
}

private let setProducerTensorMethod: PyCFunction = { o, arg in
    pyCall {
        let node = try NodeType.unwrap(o!)
        guard node.type == "Producer" else { throw PythonError.type("\(node.name) is a \(node.type), not a Producer") }
        // A device tensor is read where it is by graphs on that device's backend (a host backend refuses it).
        node.setProducedTensor(try TensorType.unwrapOnAnyDevice(arg!, "tensor"))
        return aidge_none()
    }
}

private let attributesMethod: PyCFunction = { o, _ in
    pyCall {
        let node = try NodeType.unwrap(o!)
        guard let dict = PyDict_New() else { throw PythonError.alreadySet }
        for (key, value) in node.op.attributes.values {
            let item: PyObjectRef
            switch value {
            case .int(let v): item = try makeInt(v)
            case .float(let v): item = PyFloat_FromDouble(Double(v))
            case .string(let s): item = try makeString(s)
            case .ints(let v): item = try makeList(try v.map(makeInt))
            case .floats(let v): item = try makeList(v.map { PyFloat_FromDouble(Double($0)) })
            case .strings(let v): item = try makeList(try v.map(makeString))
            case .tensor(let t): item = try TensorType.wrap(t)
            case .graph(let g): item = try makeString("<graph \(g.graph.name)>")
            }
            PyDict_SetItemString(dict, key, item)
            Py_DecRef(item)
        }
        return dict
    }
}

// MARK: - Factories and builders

/// `factory(kind, args, kwargs)`: Aidge's operator factories (`Conv2D`, `FC`, `ReLU`, ...) with their Python
/// argument names and defaults.
let factoryFunction: PyCFunction = { _, arguments in
    pyCall {
        guard let arguments, PyTuple_Size(arguments) == 3, let kindObject = PyTuple_GetItem(arguments, 0) else {
            throw PythonError.type("factory(kind, args, kwargs)")
        }
        let kind = try stringValue(kindObject, "kind")
        let args = PyTuple_GetItem(arguments, 1)
        let kwargs = PyTuple_GetItem(arguments, 2).flatMap { aidge_is_none($0) != 0 ? nil : $0 }
        guard let (names, required, make) = factories[kind] else {
            throw PythonError.value("no operator factory named '\(kind)'")
        }
        let a = try Arguments(args, kwargs, names: names, required: required, function: kind)
        return try NodeType.wrap(try make(FactoryArguments(a)))
    }
}

/// Typed access to a factory's arguments.
struct FactoryArguments {
    let a: Arguments
    init(_ a: Arguments) { self.a = a }
    func int(_ n: String, _ d: Int = 0) throws -> Int { try a[n].map { try intValue($0, n) } ?? d }
    func ints(_ n: String, _ d: [Int] = []) throws -> [Int] { try a[n].map { try intList($0, n) } ?? d }
    func bool(_ n: String, _ d: Bool = false) throws -> Bool { try a[n].map(boolValue) ?? d }
    func string(_ n: String) throws -> String { try a[n].map { try stringValue($0, n) } ?? "" }
    func float(_ n: String, _ d: Float) throws -> Float {
        guard let o = a[n] else { return d }
        let v = PyFloat_AsDouble(o)
        if v == -1, PyErr_Occurred() != nil { throw PythonError.alreadySet }
        return Float(v)
    }
    var name: String { get throws { try string("name") } }
}

private typealias Factory = (names: [String], required: Int, make: (FactoryArguments) throws -> Node)

nonisolated(unsafe) private let factories: [String: Factory] = {
    func simple(_ make: @escaping (String) -> Node) -> Factory { (["name"], 0, { make(try $0.name) }) }
    return [
        "Conv2D": (["in_channels", "out_channels", "kernel_dims", "name", "stride_dims", "dilation_dims", "no_bias"], 3, {
            Conv2D(
                inChannels: try $0.int("in_channels"), outChannels: try $0.int("out_channels"),
                kernelDims: try $0.ints("kernel_dims"), name: try $0.name, strideDims: try $0.ints("stride_dims", [1, 1]),
                dilationDims: try $0.ints("dilation_dims", [1, 1]), noBias: try $0.bool("no_bias"))
        }),
        "PaddedConv2D": (
            ["in_channels", "out_channels", "kernel_dims", "name", "stride_dims", "padding_dims", "dilation_dims", "no_bias"], 3, {
                PaddedConv2D(
                    inChannels: try $0.int("in_channels"), outChannels: try $0.int("out_channels"),
                    kernelDims: try $0.ints("kernel_dims"), name: try $0.name,
                    strideDims: try $0.ints("stride_dims", [1, 1]), paddingDims: try $0.ints("padding_dims", [0, 0, 0, 0]),
                    dilationDims: try $0.ints("dilation_dims", [1, 1]), noBias: try $0.bool("no_bias"))
            }),
        "ConvDepthWise2D": (["nb_channels", "kernel_dims", "name", "stride_dims", "dilation_dims", "no_bias"], 2, {
            ConvDepthWise2D(
                nbChannels: try $0.int("nb_channels"), kernelDims: try $0.ints("kernel_dims"), name: try $0.name,
                strideDims: try $0.ints("stride_dims", [1, 1]), dilationDims: try $0.ints("dilation_dims", [1, 1]),
                noBias: try $0.bool("no_bias"))
        }),
        "FC": (["in_channels", "out_channels", "no_bias", "name"], 2, {
            FC(inChannels: try $0.int("in_channels"), outChannels: try $0.int("out_channels"),
               noBias: try $0.bool("no_bias"), name: try $0.name)
        }),
        "BatchNorm2D": (["nb_features", "epsilon", "momentum", "name"], 1, {
            BatchNorm2D(
                nbFeatures: try $0.int("nb_features"), epsilon: try $0.float("epsilon", 1e-5),
                momentum: try $0.float("momentum", 0.1), name: try $0.name)
        }),
        "ReLU": simple { ReLU(name: $0) },
        "Sigmoid": simple { Sigmoid(name: $0) },
        "Tanh": simple { Tanh(name: $0) },
        "Identity": simple { Identity(name: $0) },
        "Add": simple { Add(name: $0) },
        "Sub": simple { Sub(name: $0) },
        "Mul": simple { Mul(name: $0) },
        "Div": simple { Div(name: $0) },
        "MatMul": simple { MatMul(name: $0) },
        "GlobalAveragePooling": simple { GlobalAveragePooling(name: $0) },
        "LeakyReLU": (["negative_slope", "name"], 0, {
            LeakyReLU(negativeSlope: try $0.float("negative_slope", 0.01), name: try $0.name)
        }),
        "Softmax": (["axis", "name"], 1, { Softmax(axis: try $0.int("axis"), name: try $0.name) }),
        "Flatten": (["axis", "name"], 0, { Flatten(axis: try $0.int("axis", 1), name: try $0.name) }),
        "Transpose": (["output_dims_order", "name"], 1, {
            Transpose(outputDimsOrder: try $0.ints("output_dims_order"), name: try $0.name)
        }),
        "Reshape": (["shape", "name"], 1, { Reshape(shape: try $0.ints("shape"), name: try $0.name) }),
        "Concat": (["nb_inputs", "axis", "name"], 1, {
            Concat(nbInputs: try $0.int("nb_inputs"), axis: try $0.int("axis"), name: try $0.name)
        }),
        "MaxPooling2D": (["kernel_dims", "name", "stride_dims", "ceil_mode"], 1, {
            MaxPooling2D(
                kernelDims: try $0.ints("kernel_dims"), name: try $0.name, strideDims: try $0.ints("stride_dims", [1, 1]),
                ceilMode: try $0.bool("ceil_mode"))
        }),
        "AvgPooling2D": (["kernel_dims", "name", "stride_dims"], 1, {
            AvgPooling2D(kernelDims: try $0.ints("kernel_dims"), name: try $0.name, strideDims: try $0.ints("stride_dims", [1, 1]))
        }),
        "Pad": (["begin_end_borders", "border_value", "name"], 1, {
            Pad(beginEndBorders: try $0.ints("begin_end_borders"), borderValue: try $0.float("border_value", 0),
                name: try $0.name)
        }),
        "Producer": (["tensor", "name", "constant"], 1, {
            guard let t = $0.a["tensor"] else { throw PythonError.type("Producer needs a tensor") }
            return Producer(try TensorType.unwrap(t, "tensor"), name: try $0.name, constant: try $0.bool("constant"))
        }),
        "GenericOperator": (["type", "nb_data", "nb_param", "nb_out", "name"], 4, {
            GenericOperator(
                type: try $0.string("type"), nbData: try $0.int("nb_data"), nbParam: try $0.int("nb_param"),
                nbOut: try $0.int("nb_out"), name: try $0.name)
        }),
    ]
}()

/// `build(kind, components, name)`: `sequential`, `parallel` or `residual` over nodes and graphs, or `graph` (a
/// graph of the given nodes and graphs as they are connected).
let buildFunction: PyCFunction = { _, arguments in
    pyCall {
        guard let arguments, PyTuple_Size(arguments) == 3, let k = PyTuple_GetItem(arguments, 0),
            let list = PyTuple_GetItem(arguments, 1), let n = PyTuple_GetItem(arguments, 2)
        else { throw PythonError.type("build(kind, components, name)") }
        let kind = try stringValue(k, "kind")
        let name = try stringValue(n, "name")
        let items = try sequenceItems(list, "components")
        defer { items.forEach { Py_DecRef($0) } }
        let parts = try items.enumerated().map { i, o in try NodeType.component(o, "component \(i)") }
        let graph: GraphView
        switch kind {
        case "sequential": graph = try GraphView.sequential(parts, name: name)
        case "parallel": graph = GraphView.parallel(parts, name: name)
        case "residual": graph = try GraphView.residual(parts, name: name)
        case "graph":
            graph = GraphView(name: name)
            for part in parts {
                if let node = part as? Node { graph.add(node) } else { graph.add(part.asGraph) }
            }
            graph.updateInputsOutputs()
        default: throw PythonError.value("unknown builder '\(kind)'")
        }
        return try GraphType.wrap(graph)
    }
}
