/// Where a storage's bytes live.
public enum Device: Sendable, Hashable, CustomStringConvertible {
    case cpu
    case cuda(Int)

    public var description: String {
        switch self {
        case .cpu: return "cpu"
        case .cuda(let id): return "cuda:\(id)"
        }
    }
}
