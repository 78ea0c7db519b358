#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif

/// Whole-file and ranged reads and writes with errors that name the file and the system's reason.
public enum FileIO {
    /// Reads `length` bytes at `offset` (the rest of the file when `length` is nil).
    public static func read(_ path: String, offset: Int = 0, length: Int? = nil) throws -> [UInt8] {
        guard let file = fopen(path, "rb") else { throw AidgeError.io("cannot open '\(path)': \(reason())") }
        defer { fclose(file) }
        var info = stat()
        guard fstat(fileno(file), &info) == 0 else { throw AidgeError.io("cannot read '\(path)': \(reason())") }
        if (info.st_mode & S_IFMT) == S_IFDIR { throw AidgeError.io("'\(path)' is a directory, not a file") }
        let size = Int(info.st_size)
        let count = length ?? (size - Swift.min(Swift.max(offset, 0), size))
        guard offset >= 0, count >= 0, count <= size, offset <= size - count else {
            throw AidgeError.io("'\(path)' has \(size) bytes; cannot read \(count) bytes at offset \(offset)")
        }
        var bytes = [UInt8](repeating: 0, count: count)
        if count == 0 { return bytes }
        guard fseeko(file, off_t(offset), SEEK_SET) == 0 else { throw AidgeError.io("cannot seek in '\(path)': \(reason())") }
        let read = bytes.withUnsafeMutableBytes { fread($0.baseAddress, 1, count, file) }
        guard read == count else { throw AidgeError.io("short read of '\(path)' (\(read) of \(count) bytes)") }
        return bytes
    }

    /// The size in bytes of the file at `path` (which must be a file, not a directory).
    public static func size(_ path: String) throws -> Int {
        var info = stat()
        guard stat(path, &info) == 0 else { throw AidgeError.io("cannot open '\(path)': \(reason())") }
        if (info.st_mode & S_IFMT) == S_IFDIR { throw AidgeError.io("'\(path)' is a directory, not a file") }
        return Int(info.st_size)
    }

    /// Reads `count` bytes at `offset` straight into `destination`.
    public static func read(_ path: String, offset: Int, count: Int, into destination: UnsafeMutableRawPointer) throws {
        guard let file = fopen(path, "rb") else { throw AidgeError.io("cannot open '\(path)': \(reason())") }
        defer { fclose(file) }
        var info = stat()
        guard fstat(fileno(file), &info) == 0 else { throw AidgeError.io("cannot read '\(path)': \(reason())") }
        let size = Int(info.st_size)
        guard offset >= 0, count >= 0, count <= size, offset <= size - count else {
            throw AidgeError.io("'\(path)' has \(size) bytes; cannot read \(count) bytes at offset \(offset)")
        }
        guard fseeko(file, off_t(offset), SEEK_SET) == 0 else { throw AidgeError.io("cannot seek in '\(path)': \(reason())") }
        let read = fread(destination, 1, count, file)
        guard read == count else { throw AidgeError.io("short read of '\(path)' (\(read) of \(count) bytes)") }
    }

    /// Writes `bytes` to `path`, replacing it.
    public static func write(_ bytes: [UInt8], to path: String) throws {
        guard let file = fopen(path, "wb") else { throw AidgeError.io("cannot create '\(path)': \(reason())") }
        defer { fclose(file) }
        let written = bytes.withUnsafeBytes { fwrite($0.baseAddress, 1, bytes.count, file) }
        guard written == bytes.count else { throw AidgeError.io("cannot write '\(path)': \(reason())") }
    }

    /// Whether `path` names an existing directory.
    public static func isDirectory(_ path: String) -> Bool {
        var info = stat()
        return stat(path, &info) == 0 && (info.st_mode & S_IFMT) == S_IFDIR
    }

    /// Creates the directory `path` and any missing parents (as `mkdir -p`).
    public static func createDirectory(_ path: String) throws {
        if isDirectory(path) { return }
        let parent = directory(of: path)
        if parent != path, parent != ".", parent != "/" { try createDirectory(parent) }
        guard mkdir(path, 0o755) == 0 || (errno == EEXIST && isDirectory(path)) else {
            throw AidgeError.io("cannot create directory '\(path)': \(reason())")
        }
    }

    /// The folder part of a path ("." when there is none).
    public static func directory(of path: String) -> String {
        guard let slash = path.lastIndex(of: "/") else { return "." }
        return slash == path.startIndex ? "/" : String(path[..<slash])
    }

    private static func reason() -> String { String(cString: strerror(errno)) }
}
