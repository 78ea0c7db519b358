import Aidge
import ArgumentParser

struct OpsCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "ops", abstract: "List the operator types the CPU backend runs.")

    func run() throws {
        try CPUBackend.register()
        for type in KernelRegistry.shared.types(backend: "cpu") { print(type) }
    }
}
