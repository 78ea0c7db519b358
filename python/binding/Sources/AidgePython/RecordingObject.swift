@preconcurrency import CPython
import Aidge

/// What a Python recording object holds: one recorded run and the graph that made it.
final class RecordingBox {
    let recording: Recording
    let graph: GraphBox
    init(_ recording: Recording, _ graph: GraphBox) {
        self.recording = recording
        self.graph = graph
    }
}

/// The type `_aidge.Recording`: what a recorded run keeps for its backward (activations, saved state). Each run
/// has its own, so runs can be back-propagated in any order (PyTorch's autograd does this).
enum RecordingType {
    nonisolated(unsafe) static var type: OpaquePointer?

    static func install(in module: PyObjectRef) throws {
        type = try makeType(
            "Recording", in: module, subclassable: false,
            slots: [
                (Py_tp_dealloc, unsafeBitCast(deallocate, to: UnsafeMutableRawPointer.self)),
                (Py_tp_doc, UnsafeMutableRawPointer(mutating: permanentCString("A recorded run, for its backward."))),
            ])
    }

    static func unwrap(_ o: PyObjectRef) throws -> RecordingBox {
        guard isInstance(o, of: type), let box = payload(o, as: RecordingBox.self) else {
            throw PythonError.type("expected a recording from run_recorded, got \(typeName(o))")
        }
        return box
    }
}

/// `run_recorded(inputs, training=False, record=True)`: runs the graph keeping what backward needs; returns
/// `(outputs, recording)`. With `record=False` the run keeps nothing (the recording is None) but still reads the
/// parameters at every run, as a recorded one does: for callers that change them in place between runs.
let runRecordedMethod: KeywordFunction = { o, args, kwargs in
    pyCall {
        let a = try Arguments(
            args, kwargs, names: ["inputs", "training", "record"], required: 1, function: "run_recorded")
        let box = try GraphType.box(o!)
        let items = try sequenceItems(try a.required("inputs"), "inputs")
        defer { items.forEach { Py_DecRef($0) } }
        let inputs = try items.enumerated().map { i, item in try TensorType.unwrapOnAnyDevice(item, "input \(i)") }
        let training = try a["training"].map(boolValue) ?? false
        let record = try a["record"].map(boolValue) ?? true
        let mode = PlanMode(training: training, recording: record, variableParameters: true)
        // The record leaves the lock through a local: it is only used again under the graph's lock.
        var made: Recording?
        try withoutGIL {
            try box.lock.withLock { _ in made = try box.scheduler.forward(inputs, mode: mode) }
        }
        guard let recording = made else { throw PythonError.runtime("the run produced no record") }
        guard let type = RecordingType.type else { throw PythonError.runtime("the recording type is not initialised") }
        let outputs = try makeList(try recording.outputs.map(TensorType.wrap))
        guard record else { return try makeTuple([outputs, aidge_none()]) }
        return try makeTuple([outputs, try makeObject(of: type, holding: RecordingBox(recording, box))])
    }
}

/// `backward_recorded(recording, output_gradients, inputs=())`: back-propagates a recorded run from one gradient
/// per output (None: none), adds into the parameters' gradients, and returns the gradient of each graph input
/// listed in `inputs` (None for the others).
let backwardRecordedMethod: KeywordFunction = { o, args, kwargs in
    pyCall {
        let a = try Arguments(
            args, kwargs, names: ["recording", "output_gradients", "inputs"], required: 2,
            function: "backward_recorded")
        let box = try GraphType.box(o!)
        let recorded = try RecordingType.unwrap(try a.required("recording"))
        guard recorded.graph === box else { throw PythonError.value("the recording belongs to another graph") }
        let items = try sequenceItems(try a.required("output_gradients"), "output_gradients")
        defer { items.forEach { Py_DecRef($0) } }
        let seeds: [Tensor?] = try items.enumerated().map { i, item in
            aidge_is_none(item) != 0 ? nil : try TensorType.unwrapOnAnyDevice(item, "output_gradients[\(i)]")
        }
        let wanted = Set(try a["inputs"].map { try intList($0, "inputs") } ?? [])
        let gradients = try withoutGIL {
            try box.lock.withLock { _ in
                try box.scheduler.backward(recorded.recording, outputGradients: seeds, inputs: wanted)
            }
        }
        return try makeList(try gradients.map { g in try g.map(TensorType.wrap) ?? aidge_none() })
    }
}
