@preconcurrency import CPython
import Aidge

/// `export_onnx(graph, path=None, opset=None, external_data=False, size_threshold=1024, input_shapes=None,
/// output_shapes=None)`: writes the graph as an ONNX model at `path` (None), or returns the serialized model (bytes).
let exportONNXFunction: KeywordFunction = { _, args, kwargs in
    pyCall {
        let a = try Arguments(
            args, kwargs,
            names: ["graph", "path", "opset", "external_data", "size_threshold", "input_shapes", "output_shapes"],
            required: 1, function: "export_onnx")
        let box = try GraphType.box(try a.required("graph"))
        var options = ONNX.ExportOptions()
        options.opset = try a["opset"].map { try intValue($0, "opset") }
        options.externalData = try a["external_data"].map(boolValue) ?? false
        options.sizeThreshold = try a["size_threshold"].map { try intValue($0, "size_threshold") } ?? 1024
        options.inputShapes = try a["input_shapes"].map { try shapeList($0, "input_shapes") }
        options.outputShapes = try a["output_shapes"].map { try shapeList($0, "output_shapes") }
        if let path = a["path"] {
            let p = try stringValue(path, "path")
            try withoutGIL { try box.lock.withLock { _ in try ONNX.export(box.graph, path: p, options: options) } }
            return aidge_none()
        }
        let bytes = try withoutGIL { try box.lock.withLock { _ in try ONNX.serialize(box.graph, options: options) } }
        guard let object = bytes.withUnsafeBufferPointer({ buffer in
            buffer.baseAddress.flatMap { base in
                base.withMemoryRebound(to: CChar.self, capacity: buffer.count) { PyBytes_FromStringAndSize($0, buffer.count) }
            } ?? PyBytes_FromStringAndSize(nil, 0)
        }) else { throw PythonError.alreadySet }
        return object
    }
}

/// A list of shapes, each a sequence of dimensions: integers, or strings for symbolic ones.
private func shapeList(_ o: PyObjectRef, _ what: String) throws -> [[Dim]] {
    let shapes = try sequenceItems(o, what)
    defer { shapes.forEach { Py_DecRef($0) } }
    return try shapes.map { shape in
        let dims = try sequenceItems(shape, "a shape of \(what)")
        defer { dims.forEach { Py_DecRef($0) } }
        return try dims.map { d in
            if PyUnicode_Check_(d) != 0 { return Dim.symbolic(try stringValue(d, "a dimension of \(what)")) }
            let n = try intValue(d, "a dimension of \(what)")
            guard n >= 0 else { throw PythonError.value("a dimension of \(what) is negative: \(n)") }
            return Dim.fixed(n)
        }
    }
}
