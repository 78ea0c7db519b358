/// Every failure the engine reports. Each case carries the text a user needs to find the problem; the Python
/// binding maps the cases to `ValueError`, `TypeError`, `NotImplementedError` and `RuntimeError`.
public enum AidgeError: Error, Sendable, CustomStringConvertible, Equatable {
    /// A value the caller passed is out of its domain (an axis, an attribute, a file's content).
    case invalidArgument(String)
    /// Shapes that do not fit together.
    case shapeMismatch(String)
    /// An element type that an operator or a conversion does not take.
    case unsupportedType(String)
    /// An operator with no kernel, or a feature not built yet.
    case unsupported(String)
    /// A model file or graph that is malformed.
    case invalidModel(String)
    /// A file that cannot be read or written.
    case io(String)
    /// The processor lacks what the kernels need.
    case unsupportedProcessor(String)
    /// A shape-deciding input (axes, a target shape, pads) whose value is not known when planning.
    case unknownValue(String)
    /// A device (a GPU) or its libraries are missing or failed.
    case device(String)

    public var message: String {
        switch self {
        case .invalidArgument(let m), .shapeMismatch(let m), .unsupportedType(let m), .unsupported(let m),
            .invalidModel(let m), .io(let m), .unsupportedProcessor(let m), .unknownValue(let m), .device(let m):
            return m
        }
    }

    public var description: String { message }

    /// The same error, its message prefixed by where it happened.
    public func prefixed(_ context: String) -> AidgeError {
        let text = "\(context): \(message)"
        switch self {
        case .invalidArgument: return .invalidArgument(text)
        case .shapeMismatch: return .shapeMismatch(text)
        case .unsupportedType: return .unsupportedType(text)
        case .unsupported: return .unsupported(text)
        case .invalidModel: return .invalidModel(text)
        case .io: return .io(text)
        case .unsupportedProcessor: return .unsupportedProcessor(text)
        case .unknownValue: return .unknownValue(text)
        case .device: return .device(text)
        }
    }
}

extension Error {
    /// This error as an `AidgeError`, prefixed by `context`.
    public func aidgePrefixed(_ context: String) -> AidgeError {
        if let e = self as? AidgeError { return e.prefixed(context) }
        return .invalidArgument("\(context): \(self)")
    }
}
