import Synchronization

/// Compiled code for one node at fixed input shapes: made once when a plan is built (attributes parsed,
/// weights packed, scratch memory allocated), then run any number of times.
public protocol Kernel: AnyObject {
    /// Reads `inputs` (contiguous; nil for absent optional inputs) and writes every element of `outputs`
    /// (contiguous, preallocated with the inferred shapes).
    func run(_ inputs: [Tensor?], _ outputs: [Tensor]) throws
}

/// What a kernel factory is asked to build.
public struct KernelRequest: Sendable {
    public let op: Operator
    public let nodeName: String
    public let inputs: [ValueInfo?]
    public let outputs: [ValueInfo]

    public init(op: Operator, nodeName: String, inputs: [ValueInfo?], outputs: [ValueInfo]) {
        self.op = op
        self.nodeName = nodeName
        self.inputs = inputs
        self.outputs = outputs
    }

    public var attributes: Attributes { op.attributes }

    /// The info of required input `i`.
    public func input(_ i: Int) throws -> ValueInfo {
        guard i < inputs.count, let info = inputs[i] else {
            throw AidgeError.invalidModel("\(op.type) node \(nodeName) is missing input \(i)")
        }
        return info
    }

    /// An error for a dtype this kernel does not take.
    public func unsupportedType(_ dtype: DType) -> AidgeError {
        .unsupportedType("\(op.type) (node \(nodeName)) has no CPU kernel for \(dtype)")
    }
}

public typealias KernelFactory = @Sendable (KernelRequest) throws -> any Kernel

/// A backend: a named set of kernels, registered by one explicit call.
public protocol Backend {
    static var name: String { get }
    static func register() throws
}

/// Kernel factories by backend and operator type.
public final class KernelRegistry: Sendable {
    public static let shared = KernelRegistry()
    private let table = Mutex<[String: [String: KernelFactory]]>([:])
    let gradientTable = Mutex<[String: [String: GradientKernelFactory]]>([:])

    public init() {}

    public func register(_ type: String, backend: String, _ factory: @escaping KernelFactory) {
        table.withLock { $0[backend, default: [:]][type] = factory }
    }

    public func factory(_ type: String, backend: String) -> KernelFactory? {
        table.withLock { $0[backend]?[type] }
    }

    /// Operator types with a kernel on `backend`, sorted.
    public func types(backend: String) -> [String] {
        table.withLock { ($0[backend].map { Array($0.keys) } ?? []).sorted() }
    }

    /// Whether any kernel is registered for `backend`.
    public func isAvailable(_ backend: String) -> Bool {
        table.withLock { !($0[backend]?.isEmpty ?? true) }
    }

    /// Builds the kernel of `request` on `backend`, or says which operator is not supported.
    public func makeKernel(_ request: KernelRequest, backend: String) throws -> any Kernel {
        guard let factory = factory(request.op.type, backend: backend) else {
            throw AidgeError.unsupported(
                "operator \(request.op.type) (node \(request.nodeName)) is not supported by the \(backend) backend")
        }
        do {
            return try factory(request)
        } catch {
            throw error.aidgePrefixed("\(request.op.type) node \(request.nodeName)")
        }
    }
}
