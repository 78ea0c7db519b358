@preconcurrency import CPython
import Aidge

#if canImport(Glibc)
import Glibc
#endif

/// A `PyObject *` as Swift sees it.
typealias PyObjectRef = UnsafeMutablePointer<PyObject>

/// A Python exception to raise: its kind and message. Thrown by binding code, raised by `pyCall`.
struct PythonError: Error {
    enum Kind: Sendable {
        case value, type, buffer, runtime
        /// The module's UnsupportedTypeError (a TypeError).
        case unsupportedType
        /// The module's NotSupportedError (a NotImplementedError): a feature not built, such as a device.
        case notSupported
        /// Python already has the exception set (a failed C-API call).
        case alreadySet
    }

    let kind: Kind
    let message: String

    static func value(_ message: String) -> PythonError { PythonError(kind: .value, message: message) }
    static func type(_ message: String) -> PythonError { PythonError(kind: .type, message: message) }
    static func buffer(_ message: String) -> PythonError { PythonError(kind: .buffer, message: message) }
    static func runtime(_ message: String) -> PythonError { PythonError(kind: .runtime, message: message) }
    static func unsupportedType(_ message: String) -> PythonError { PythonError(kind: .unsupportedType, message: message) }
    static let alreadySet = PythonError(kind: .alreadySet, message: "")

    /// Sets the exception in the interpreter.
    func raise() {
        let type: PyObjectRef
        switch kind {
        case .value: type = aidge_exc_value_error()
        case .type: type = aidge_exc_type_error()
        case .buffer: type = aidge_exc_buffer_error()
        case .runtime: type = aidge_exc_runtime_error()
        case .unsupportedType: type = Exceptions.type ?? aidge_exc_type_error()
        case .notSupported: type = Exceptions.notSupported ?? aidge_exc_not_implemented_error()
        case .alreadySet:
            if PyErr_Occurred() != nil { return }
            type = aidge_exc_runtime_error()
        }
        PyErr_SetString(type, message.isEmpty ? "unknown error" : message)
    }
}

/// The exception classes of the module, created at import: `AidgeError` and one subclass per kind that also
/// derives from the matching built-in exception (so `except ValueError` catches a shape mismatch).
enum Exceptions {
    nonisolated(unsafe) static var base: PyObjectRef?
    nonisolated(unsafe) static var value: PyObjectRef?
    nonisolated(unsafe) static var type: PyObjectRef?
    nonisolated(unsafe) static var notSupported: PyObjectRef?
    nonisolated(unsafe) static var file: PyObjectRef?
    nonisolated(unsafe) static var processor: PyObjectRef?
    nonisolated(unsafe) static var device: PyObjectRef?

    /// Creates the classes and adds them to `module`.
    static func install(in module: PyObjectRef) throws {
        let base = try make("AidgeError", bases: [aidge_exc_exception()], doc: "Base class of the engine's errors.")
        self.base = base
        value = try make("InvalidValueError", bases: [base, aidge_exc_value_error()], doc: "A bad value, shape or model.")
        type = try make("UnsupportedTypeError", bases: [base, aidge_exc_type_error()], doc: "A dtype that is not taken.")
        notSupported = try make(
            "NotSupportedError", bases: [base, aidge_exc_not_implemented_error()], doc: "An operator or feature not built.")
        file = try make("FileError", bases: [base, aidge_exc_os_error()], doc: "A file that cannot be read or written.")
        processor = try make(
            "ProcessorError", bases: [base, aidge_exc_runtime_error()], doc: "The processor lacks what the kernels need.")
        device = try make(
            "DeviceError", bases: [base, aidge_exc_runtime_error()], doc: "A GPU or its libraries are missing or failed.")
        for (name, cls) in [
            ("AidgeError", base), ("InvalidValueError", value), ("UnsupportedTypeError", type),
            ("NotSupportedError", notSupported), ("FileError", file), ("ProcessorError", processor),
            ("DeviceError", device),
        ] {
            guard let cls, PyModule_AddObjectRef(module, name, cls) == 0 else { throw PythonError.alreadySet }
        }
    }

    private static func make(_ name: String, bases: [PyObjectRef], doc: String) throws -> PyObjectRef {
        let tuple = try makeTuple(bases.map { Py_NewRef($0) })
        defer { Py_DecRef(tuple) }
        guard let cls = PyErr_NewExceptionWithDoc("aidge.\(name)", doc, tuple, nil) else { throw PythonError.alreadySet }
        return cls
    }

    /// Raises the Python exception for an engine error.
    static func raise(_ error: AidgeError) {
        let cls: PyObjectRef?
        switch error {
        case .invalidArgument, .shapeMismatch, .invalidModel: cls = value
        case .unsupportedType: cls = type
        case .unsupported, .unknownValue: cls = notSupported
        case .io: cls = file
        case .unsupportedProcessor: cls = processor
        case .device: cls = device
        }
        PyErr_SetString(cls ?? aidge_exc_runtime_error(), error.message)
    }
}

/// Runs `body`, turning a thrown error into a Python exception (and nil, as the C API expects).
@inline(__always)
func pyCall(_ body: () throws -> PyObjectRef?) -> PyObjectRef? {
    do {
        return try body()
    } catch let error as PythonError {
        error.raise()
        return nil
    } catch let error as AidgeError {
        Exceptions.raise(error)
        return nil
    } catch {
        PyErr_SetString(aidge_exc_runtime_error(), "\(error)")
        return nil
    }
}

/// Runs `body` with the GIL released (compute that touches no Python object).
func withoutGIL<T>(_ body: () throws -> T) rethrows -> T {
    let state = PyEval_SaveThread()
    defer { PyEval_RestoreThread(state) }
    return try body()
}

// MARK: - Conversions

/// A C string that lives as long as the process (names and docs of methods and types).
func permanentCString(_ s: String) -> UnsafePointer<CChar> {
    UnsafePointer(strdup(s)!)
}

func makeTuple(_ items: [PyObjectRef]) throws -> PyObjectRef {
    guard let tuple = PyTuple_New(items.count) else { throw PythonError.alreadySet }
    for (i, item) in items.enumerated() { PyTuple_SetItem(tuple, i, item) }  // steals each reference
    return tuple
}

func makeList(_ items: [PyObjectRef]) throws -> PyObjectRef {
    guard let list = PyList_New(items.count) else { throw PythonError.alreadySet }
    for (i, item) in items.enumerated() { PyList_SetItem(list, i, item) }  // steals each reference
    return list
}

func makeInt(_ v: Int) throws -> PyObjectRef {
    guard let o = PyLong_FromLongLong(Int64(v)) else { throw PythonError.alreadySet }
    return o
}

func makeString(_ s: String) throws -> PyObjectRef {
    var s = s
    return try s.withUTF8 { utf8 in
        guard let o = PyUnicode_FromStringAndSize(UnsafeRawPointer(utf8.baseAddress)?.assumingMemoryBound(to: CChar.self), utf8.count)
        else { throw PythonError.alreadySet }
        return o
    }
}

func makeBool(_ b: Bool) -> PyObjectRef { b ? aidge_true() : aidge_false() }

func intValue(_ o: PyObjectRef, _ what: String) throws -> Int {
    guard PyLong_Check_(o) != 0 || PyIndex_Check(o) != 0 else {
        throw PythonError.type("\(what) must be an integer, got \(typeName(o))")
    }
    let v = PyLong_AsLongLong(o)
    if v == -1, PyErr_Occurred() != nil { throw PythonError.alreadySet }
    return Int(v)
}

func stringValue(_ o: PyObjectRef, _ what: String) throws -> String {
    guard PyUnicode_Check_(o) != 0 else { throw PythonError.type("\(what) must be a string, got \(typeName(o))") }
    var size = 0
    guard let utf8 = PyUnicode_AsUTF8AndSize(o, &size) else { throw PythonError.alreadySet }
    return String(decoding: UnsafeRawBufferPointer(start: utf8, count: size), as: UTF8.self)
}

/// A float argument (ints accepted); NaN is a ValueError naming it.
func floatValue(_ o: PyObjectRef, _ what: String) throws -> Double {
    guard PyFloat_Check_(o) != 0 || PyLong_Check_(o) != 0 else {
        throw PythonError.type("\(what) must be a number, got \(typeName(o))")
    }
    let v = PyFloat_AsDouble(o)
    if v == -1, PyErr_Occurred() != nil { throw PythonError.alreadySet }
    guard !v.isNaN else { throw PythonError.value("\(what) is NaN") }
    return v
}

func boolValue(_ o: PyObjectRef) throws -> Bool {
    let v = PyObject_IsTrue(o)
    if v < 0 { throw PythonError.alreadySet }
    return v == 1
}

/// A sequence of integers (list, tuple, or anything iterable).
func intList(_ o: PyObjectRef, _ what: String) throws -> [Int] {
    try sequenceItems(o, what).map { item in
        defer { Py_DecRef(item) }
        return try intValue(item, "an element of \(what)")
    }
}

/// The items of a sequence, each a new reference.
func sequenceItems(_ o: PyObjectRef, _ what: String) throws -> [PyObjectRef] {
    guard let iterator = PyObject_GetIter(o) else {
        PyErr_Clear()
        throw PythonError.type("\(what) must be a sequence, got \(typeName(o))")
    }
    defer { Py_DecRef(iterator) }
    var items: [PyObjectRef] = []
    while let item = PyIter_Next(iterator) { items.append(item) }
    if PyErr_Occurred() != nil {
        items.forEach { Py_DecRef($0) }
        throw PythonError.alreadySet
    }
    return items
}

/// The type name of an object, for messages.
func typeName(_ o: PyObjectRef) -> String {
    guard let name = PyType_GetName(Py_TYPE(o)) else {
        PyErr_Clear()
        return "object"
    }
    defer { Py_DecRef(name) }
    return (try? stringValue(name, "name")) ?? "object"
}

/// An attribute of `o`, or nil (and no exception) when it has none.
func attribute(_ o: PyObjectRef, _ name: String) -> PyObjectRef? {
    guard let value = PyObject_GetAttrString(o, name) else {
        PyErr_Clear()
        return nil
    }
    return value
}

// MARK: - Arguments

/// Positional and keyword arguments of a METH_VARARGS | METH_KEYWORDS call, matched against parameter names.
struct Arguments {
    private var values: [PyObjectRef?]
    let names: [String]
    let function: String

    /// Matches `args` and `kwargs` against `names`; the first `required` are mandatory.
    init(_ args: PyObjectRef?, _ kwargs: PyObjectRef?, names: [String], required: Int = 0, function: String) throws {
        self.names = names
        self.function = function
        values = Array(repeating: nil, count: names.count)
        let count = args.map { PyTuple_Size($0) } ?? 0
        guard count <= names.count else {
            throw PythonError.type("\(function)() takes at most \(names.count) arguments (\(count) given)")
        }
        for i in 0..<count { values[i] = PyTuple_GetItem(args, i) }
        if let kwargs {
            var position = 0
            var key: PyObjectRef?
            var value: PyObjectRef?
            while PyDict_Next(kwargs, &position, &key, &value) != 0 {
                guard let key, let value else { continue }
                let name = try stringValue(key, "a keyword")
                guard let i = names.firstIndex(of: name) else {
                    throw PythonError.type("\(function)() got an unexpected keyword argument '\(name)'")
                }
                guard values[i] == nil else {
                    throw PythonError.type("\(function)() got multiple values for argument '\(name)'")
                }
                values[i] = value
            }
        }
        for i in 0..<required where values[i] == nil {
            throw PythonError.type("\(function)() missing required argument '\(names[i])'")
        }
    }

    /// The argument called `name` (borrowed); a TypeError when it is absent or None.
    func required(_ name: String) throws -> PyObjectRef {
        guard let value = self[name] else { throw PythonError.type("\(function)() needs '\(name)' (not None)") }
        return value
    }

    /// The argument called `name` (borrowed), nil when absent or None.
    subscript(_ name: String) -> PyObjectRef? {
        guard let i = names.firstIndex(of: name), let v = values[i], aidge_is_none(v) == 0 else { return nil }
        return v
    }
}

// MARK: - Extension objects

/// The Swift object held by an extension object (`AidgeObject.swift`).
func payload<T: AnyObject>(_ o: PyObjectRef, as type: T.Type) -> T? {
    let object = UnsafeMutableRawPointer(o).assumingMemoryBound(to: AidgeObject.self)
    guard let raw = object.pointee.swift else { return nil }
    return Unmanaged<AnyObject>.fromOpaque(raw).takeUnretainedValue() as? T
}

/// Allocates an object of `type` holding `value` (retained until the object dies).
func makeObject(of type: OpaquePointer, holding value: AnyObject) throws -> PyObjectRef {
    guard let alloc = PyType_GetSlot(type, Py_tp_alloc) else { throw PythonError.runtime("type has no allocator") }
    let allocate = unsafeBitCast(alloc, to: allocfunc.self)
    guard let o = allocate(type, 0) else { throw PythonError.alreadySet }
    let object = UnsafeMutableRawPointer(o).assumingMemoryBound(to: AidgeObject.self)
    object.pointee.swift = Unmanaged.passRetained(value).toOpaque()
    return o
}

/// `tp_dealloc` of every extension type: releases the Swift object, frees the memory, drops the heap type.
let deallocate: @convention(c) (PyObjectRef?) -> Void = { o in
    guard let o else { return }
    let object = UnsafeMutableRawPointer(o).assumingMemoryBound(to: AidgeObject.self)
    if let raw = object.pointee.swift {
        object.pointee.swift = nil
        Unmanaged<AnyObject>.fromOpaque(raw).release()
    }
    guard let type = Py_TYPE(o) else { return }
    if let free = PyType_GetSlot(type, Py_tp_free) {
        unsafeBitCast(free, to: freefunc.self)(UnsafeMutableRawPointer(o))
    }
    Py_DecRef(UnsafeMutablePointer<PyObject>(type))
}

/// A `PyMethodDef` table (terminated), kept for the life of the process.
func methodTable(_ methods: [(String, PyCFunction, Int32, String)]) -> UnsafeMutablePointer<PyMethodDef> {
    let table = UnsafeMutablePointer<PyMethodDef>.allocate(capacity: methods.count + 1)
    for (i, m) in methods.enumerated() {
        table[i] = PyMethodDef(ml_name: permanentCString(m.0), ml_meth: m.1, ml_flags: m.2, ml_doc: permanentCString(m.3))
    }
    table[methods.count] = PyMethodDef(ml_name: nil, ml_meth: nil, ml_flags: 0, ml_doc: nil)
    return table
}

typealias KeywordFunction = @convention(c) (PyObjectRef?, PyObjectRef?, PyObjectRef?) -> PyObjectRef?

/// A METH_VARARGS | METH_KEYWORDS entry.
func keywordMethod(_ name: String, _ f: KeywordFunction, _ doc: String, isStatic: Bool = false)
    -> (String, PyCFunction, Int32, String)
{
    (name, unsafeBitCast(f, to: PyCFunction.self), aidge_meth_varargs_keywords() | (isStatic ? aidge_meth_static() : 0), doc)
}

/// A METH_NOARGS entry.
func plainMethod(_ name: String, _ f: PyCFunction, _ doc: String) -> (String, PyCFunction, Int32, String) {
    (name, f, aidge_meth_noargs(), doc)
}

/// A METH_O entry.
func oneArgumentMethod(_ name: String, _ f: PyCFunction, _ doc: String) -> (String, PyCFunction, Int32, String) {
    (name, f, aidge_meth_o(), doc)
}

/// A `PyGetSetDef` table of read-only properties (terminated), kept for the life of the process.
func getterTable(_ getters: [(String, getter, String)]) -> UnsafeMutablePointer<PyGetSetDef> {
    let table = UnsafeMutablePointer<PyGetSetDef>.allocate(capacity: getters.count + 1)
    for (i, g) in getters.enumerated() {
        table[i] = PyGetSetDef(name: permanentCString(g.0), get: g.1, set: nil, doc: permanentCString(g.2), closure: nil)
    }
    table[getters.count] = PyGetSetDef(name: nil, get: nil, set: nil, doc: nil, closure: nil)
    return table
}

/// Creates a heap type from `slots`, adds it to `module` under `name`.
func makeType(
    _ name: String, in module: PyObjectRef, subclassable: Bool, slots: [(Int32, UnsafeMutableRawPointer?)]
) throws -> OpaquePointer {
    let table = UnsafeMutablePointer<PyType_Slot>.allocate(capacity: slots.count + 1)
    for (i, s) in slots.enumerated() { table[i] = PyType_Slot(slot: s.0, pfunc: s.1) }
    table[slots.count] = PyType_Slot(slot: 0, pfunc: nil)
    let spec = UnsafeMutablePointer<PyType_Spec>.allocate(capacity: 1)
    spec.pointee = PyType_Spec(
        name: permanentCString("aidge._aidge.\(name)"), basicsize: Int32(MemoryLayout<AidgeObject>.size), itemsize: 0,
        flags: UInt32(subclassable ? aidge_tpflags_default_base() : aidge_tpflags_default()), slots: table)
    guard let type = PyType_FromSpec(spec) else { throw PythonError.alreadySet }
    guard PyModule_AddObjectRef(module, name, type) == 0 else { throw PythonError.alreadySet }
    return OpaquePointer(type)
}

/// Whether `o` is an instance of `type` or of a subclass.
func isInstance(_ o: PyObjectRef, of type: OpaquePointer?) -> Bool {
    guard let type else { return false }
    return PyType_IsSubtype(Py_TYPE(o), type) != 0
}
