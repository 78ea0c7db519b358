#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif

/// A block of memory that tensors view.
///
/// Either allocated here (64-byte aligned, zero-filled) or borrowed from someone else's object (a NumPy array, a
/// torch tensor, a DLPack capsule), which `owner` keeps alive and `release` gives back exactly once.
///
/// `@unchecked Sendable`: the storage only hands out a pointer; like any tensor library, synchronising writes
/// to the same bytes is the caller's job (the scheduler never runs two writers on one buffer).
public final class Storage: @unchecked Sendable {
    public static let alignment = 64

    public let pointer: UnsafeMutableRawPointer
    public let byteCount: Int
    public let device: Device
    public let isReadOnly: Bool
    private let owner: AnyObject?
    private let release: (@Sendable (UnsafeMutableRawPointer) -> Void)?

    /// Allocates `byteCount` zeroed bytes on the CPU.
    public init(byteCount: Int) {
        let size = max(byteCount, 1)
        pointer = UnsafeMutableRawPointer.allocate(byteCount: size, alignment: Storage.alignment)
        pointer.initializeMemory(as: UInt8.self, repeating: 0, count: size)
        self.byteCount = byteCount
        device = .cpu
        isReadOnly = false
        owner = nil
        release = { $0.deallocate() }
    }

    /// Wraps memory that belongs to someone else, without copying it.
    public init(
        borrowing pointer: UnsafeMutableRawPointer, byteCount: Int, device: Device = .cpu, readOnly: Bool = false,
        owner: AnyObject? = nil, release: (@Sendable (UnsafeMutableRawPointer) -> Void)? = nil
    ) {
        self.pointer = pointer
        self.byteCount = byteCount
        self.device = device
        self.isReadOnly = readOnly
        self.owner = owner
        self.release = release
    }

    deinit { release?(pointer) }
}
