import Aidge
import ArgumentParser

#if canImport(Glibc)
import Glibc
#endif

struct BenchCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "bench", abstract: "Measure a model's latency on random inputs.")

    @OptionGroup var options: ModelOptions

    @Option(help: "Batch size for a symbolic first dimension.")
    var batch: Int?

    @Option(help: "Timed runs.")
    var runs = 50

    @Option(help: "Untimed runs first.")
    var warmup = 5

    @Flag(help: "Print one JSON object on stdout.")
    var json = false

    @Flag(help: "Also time each kernel call and print the time per operator type and the slowest nodes.")
    var profile = false

    func run() throws {
        guard runs > 0, warmup >= 0 else { throw AidgeError.invalidArgument("--runs must be positive and --warmup non-negative") }
        if let batch, batch <= 0 { throw AidgeError.invalidArgument("--batch must be positive, got \(batch)") }
        let graph = try options.load()
        let shapes = try options.inputShapes(graph, batch: batch)
        let inputs = try options.placed(zip(graph.inputs, shapes).enumerated().map { k, pair in
            randomInput(dtype: pair.0.dtype, shape: pair.1, seed: UInt64(k))
        })
        let scheduler = Scheduler(graph, backend: options.backend)
        for _ in 0..<warmup { _ = try scheduler.forward(inputs) }
        try options.finish()
        let progress = isatty(2) != 0
        var times: [Double] = []
        for r in 0..<runs {
            let start = Clock.seconds()
            _ = try scheduler.forward(inputs)
            try options.finish()
            times.append((Clock.seconds() - start) * 1000)
            if progress {
                let width = 30
                let done = (r + 1) * width / runs
                let bar = String(repeating: "#", count: done) + String(repeating: ".", count: width - done)
                writeStderr("\r[\(bar)] \(r + 1)/\(runs)")
            }
        }
        if progress { writeStderr("\n") }
        times.sort()
        let median = times.count % 2 == 1 ? times[times.count / 2] : (times[times.count / 2 - 1] + times[times.count / 2]) / 2
        let minimum = times.first ?? 0
        let maximum = times.last ?? 0
        let mean = times.reduce(0, +) / Double(times.count)
        let threads = Parallel.threads
        let shapeText = shapes.map { ShapeUtil.text($0) }
        if json {
            let shapesJSON = shapeText.map { "\"\($0)\"" }.joined(separator: ", ")
            print(
                "{\"model\": \"\(escapeJSON(options.model))\", \"backend\": \"\(options.backend)\", \"median_ms\": \(fmt(median)), \"min_ms\": \(fmt(minimum)), "
                    + "\"max_ms\": \(fmt(maximum)), \"mean_ms\": \(fmt(mean)), \"runs\": \(runs), \"warmup\": \(warmup), "
                    + "\"threads\": \(threads), \"input_shapes\": [\(shapesJSON)]}")
        } else {
            print("model: \(options.model)")
            print("backend: \(options.backend), inputs: \(shapeText.joined(separator: ", ")), threads: \(threads), runs: \(runs) (+\(warmup) warm-up)")
            print("median \(fmt(median)) ms, min \(fmt(minimum)) ms, max \(fmt(maximum)) ms, mean \(fmt(mean)) ms")
        }
        if profile { try printProfile(scheduler.profile(inputs, runs: runs)) }
    }

    /// Mean milliseconds per run by operator type, then the 20 slowest kernel calls (on stderr under --json).
    private func printProfile(_ steps: [(node: Node, seconds: Double)]) {
        let out: (String) -> Void = json ? { writeStderr($0 + "\n") } : { print($0) }
        let total = steps.reduce(0) { $0 + $1.seconds }
        var byType: [String: (seconds: Double, count: Int)] = [:]
        for step in steps {
            let entry = byType[step.node.type, default: (0, 0)]
            byType[step.node.type] = (entry.seconds + step.seconds, entry.count + 1)
        }
        out("profile: \(steps.count) kernel calls, \(fmt(total * 1000)) ms per run")
        for (type, entry) in byType.sorted(by: { $0.value.seconds > $1.value.seconds }) {
            out("  \(type) x\(entry.count): \(fmt(entry.seconds * 1000)) ms (\(Int((entry.seconds / max(total, 1e-12) * 100).rounded()))%)")
        }
        out("slowest:")
        for step in steps.sorted(by: { $0.seconds > $1.seconds }).prefix(20) {
            out("  \(step.node.name) (\(step.node.type)): \(fmt(step.seconds * 1000)) ms")
        }
    }

    private func writeStderr(_ text: String) {
        var bytes = Array(text.utf8)
        _ = bytes.withUnsafeMutableBytes { write(2, $0.baseAddress, $0.count) }
    }


    private func fmt(_ v: Double) -> String {
        let scaled = (v * 1000).rounded() / 1000
        return String(scaled)
    }

    private func escapeJSON(_ s: String) -> String {
        var out = ""
        for ch in s.unicodeScalars {
            switch ch {
            case "\"": out += "\\\""
            case "\\": out += "\\\\"
            default: out += ch.value < 0x20 ? "?" : String(ch)
            }
        }
        return out
    }
}
