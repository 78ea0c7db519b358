#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif
import AidgeCore

/// A shared library opened at run time, so that the package builds and runs where the NVIDIA libraries are absent.
final class SharedLibrary: Sendable {
    let path: String
    /// The `dlopen` handle, kept for the life of the process (CUDA libraries are never unloaded).
    private let address: UInt

    private init(path: String, handle: UnsafeMutableRawPointer) {
        self.path = path
        address = UInt(bitPattern: handle)
    }

    /// Opens the first of `candidates` (file names searched by the system loader, or paths) that loads, looking
    /// also in `directories`. The error lists what was tried and why the last attempt failed.
    static func open(_ what: String, candidates: [String], directories: [String]) throws -> SharedLibrary {
        var tried: [String] = []
        var reason = ""
        for name in candidates {
            let paths = name.contains("/") ? [name] : directories.map { "\($0)/\(name)" } + [name]
            for path in paths {
                tried.append(path)
                if let handle = dlopen(path, RTLD_NOW | RTLD_LOCAL) { return SharedLibrary(path: path, handle: handle) }
                if let message = dlerror() { reason = String(cString: message) }
            }
        }
        throw AidgeError.device("the CUDA backend needs \(what), which could not be loaded (tried \(tried.joined(separator: ", "))): \(reason)")
    }

    /// The C function `name`, typed as `T` (a `@convention(c)` function type that matches its declaration).
    func function<T>(_ name: String, as type: T.Type = T.self) throws -> T {
        guard let handle = UnsafeMutableRawPointer(bitPattern: address), let symbol = dlsym(handle, name) else {
            throw AidgeError.device("\(path) has no function \(name): a newer version of that library is needed")
        }
        return unsafeBitCast(symbol, to: T.self)
    }

    /// Whether the library defines `name`.
    func has(_ name: String) -> Bool {
        guard let handle = UnsafeMutableRawPointer(bitPattern: address) else { return false }
        return dlsym(handle, name) != nil
    }
}

/// Where the CUDA libraries are looked for: `AIDGE_CUDA_LIBRARY_PATH` (folders separated by `:`), the usual
/// toolkit folders, then the system loader's own search. PyTorch's NVIDIA wheels put NVRTC and cuBLAS in
/// `site-packages/nvidia/cu13/lib`; the Python package adds that folder to the path before loading.
enum LibrarySearch {
    static var directories: [String] {
        var folders: [String] = []
        if let value = getenv("AIDGE_CUDA_LIBRARY_PATH") {
            folders += String(cString: value).split(separator: ":").map(String.init)
        }
        if let home = getenv("CUDA_HOME") { folders.append(String(cString: home) + "/lib64") }
        folders += ["/usr/local/cuda/lib64", "/usr/local/cuda/targets/x86_64-linux/lib", "/usr/lib/x86_64-linux-gnu"]
        return folders
    }

    /// The CPU emulator of the driver, NVRTC and cuBLAS that tests name with `AIDGE_CUDA_EMULATOR`, if any.
    static var emulator: String? {
        guard let value = getenv("AIDGE_CUDA_EMULATOR") else { return nil }
        let path = String(cString: value)
        return path.isEmpty ? nil : path
    }
}
