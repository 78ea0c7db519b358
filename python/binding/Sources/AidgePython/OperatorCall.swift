@preconcurrency import CPython
import Aidge

/// `apply(type, inputs, attributes=None)`: runs one operator eagerly (tensor arithmetic, one-off operations) and
/// returns its outputs. The GIL is released while it computes.
let applyFunction: KeywordFunction = { _, args, kwargs in
    pyCall {
        let a = try Arguments(args, kwargs, names: ["type", "inputs", "attributes"], required: 2, function: "apply")
        let type = try stringValue(try a.required("type"), "type")
        let items = try sequenceItems(try a.required("inputs"), "inputs")
        defer { items.forEach { Py_DecRef($0) } }
        let inputs: [Tensor?] = try items.enumerated().map { i, o in
            aidge_is_none(o) != 0 ? nil : try TensorType.unwrapOnAnyDevice(o, "input \(i)")
        }
        let attributes = try a["attributes"].map(attributeValues) ?? Attributes()
        // Like torch, an operator runs where its tensors are.
        let backend = inputs.contains { $0.map { !$0.isOnHost } ?? false } ? CUDABackend.name : CPUBackend.name
        let outputs = try withoutGIL {
            try Scheduler.runOperator(type, attributes, inputs: inputs, backend: backend)
        }
        return try makeList(try outputs.map(TensorType.wrap))
    }
}

/// `gradients(type, inputs, output_gradients, attributes=None, constants=None, training=False)`: runs one
/// operator forward and backward (the vector-Jacobian product) and returns `(outputs, input_gradients)`; inputs
/// listed in `constants` are fixed at planning (shapes, axes) and get no gradient (None).
let gradientsFunction: KeywordFunction = { _, args, kwargs in
    pyCall {
        let a = try Arguments(
            args, kwargs, names: ["type", "inputs", "output_gradients", "attributes", "constants", "training"],
            required: 3, function: "gradients")
        let type = try stringValue(try a.required("type"), "type")
        let inputs = try optionalTensors(try a.required("inputs"), "inputs")
        let seeds = try optionalTensors(try a.required("output_gradients"), "output_gradients")
        let attributes = try a["attributes"].map(attributeValues) ?? Attributes()
        var constants = Set<Int>()
        if let c = a["constants"] {
            let items = try sequenceItems(c, "constants")
            defer { items.forEach { Py_DecRef($0) } }
            constants = Set(try items.map { try intValue($0, "constants") })
        }
        let training = try a["training"].map { PyObject_IsTrue($0) == 1 } ?? false
        let (outputs, gradients) = try withoutGIL {
            try Scheduler.operatorGradients(
                type, attributes, inputs: inputs, constants: constants, outputs: seeds.count, outputGradients: seeds,
                training: training)
        }
        let outList = try makeList(try outputs.map(TensorType.wrap))
        let gradList = try makeList(try gradients.map { g in try g.map(TensorType.wrap) ?? aidge_none() })
        return try makeTuple([outList, gradList])
    }
}

/// Tensors from a sequence in which None stands for an absent value.
private func optionalTensors(_ sequence: PyObjectRef, _ what: String) throws -> [Tensor?] {
    let items = try sequenceItems(sequence, what)
    defer { items.forEach { Py_DecRef($0) } }
    return try items.enumerated().map { i, o in
        aidge_is_none(o) != 0 ? nil : try TensorType.unwrap(o, "\(what)[\(i)]")
    }
}

/// Operator attributes from a dict of ints, floats, strings, tensors and lists of them.
private func attributeValues(_ dict: PyObjectRef) throws -> Attributes {
    guard PyDict_Check_(dict) != 0 else { throw PythonError.type("attributes must be a dict, got \(typeName(dict))") }
    var attributes = Attributes()
    var position = 0
    var key: PyObjectRef?
    var value: PyObjectRef?
    while PyDict_Next(dict, &position, &key, &value) != 0 {
        guard let key, let value else { continue }
        let name = try stringValue(key, "an attribute name")
        attributes[name] = try attributeValue(value, name)
    }
    return attributes
}

private func attributeValue(_ o: PyObjectRef, _ name: String) throws -> AttributeValue {
    if PyBool_Check_(o) != 0 || PyLong_Check_(o) != 0 { return .int(try intValue(o, name)) }
    if PyFloat_Check_(o) != 0 { return .float(Float(PyFloat_AsDouble(o))) }
    if PyUnicode_Check_(o) != 0 { return .string(try stringValue(o, name)) }
    if isInstance(o, of: TensorType.base) { return .tensor(try TensorType.unwrap(o, name)) }
    if PyList_Check_(o) != 0 || PyTuple_Check_(o) != 0 {
        let items = try sequenceItems(o, name)
        defer { items.forEach { Py_DecRef($0) } }
        if items.allSatisfy({ PyLong_Check_($0) != 0 }) { return .ints(try items.map { try intValue($0, name) }) }
        if items.allSatisfy({ PyUnicode_Check_($0) != 0 }) { return .strings(try items.map { try stringValue($0, name) }) }
        if items.allSatisfy({ PyFloat_Check_($0) != 0 || PyLong_Check_($0) != 0 }) {
            return .floats(items.map { Float(PyFloat_AsDouble($0)) })
        }
    }
    throw PythonError.type("attribute '\(name)' has an unsupported value of type \(typeName(o))")
}
