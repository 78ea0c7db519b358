import Aidge
import ArgumentParser

struct OpsCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "ops", abstract: "List the operator types the CPU backend runs.")

    @Flag(help: "Mark the operators that have a backward (can be trained through).")
    var backward = false

    func run() throws {
        try CPUBackend.register()
        let trainable = Set(KernelRegistry.shared.gradientTypes(backend: "cpu"))
        for type in KernelRegistry.shared.types(backend: "cpu") {
            print(backward && trainable.contains(type) ? "\(type)\tbackward" : type)
        }
    }
}
