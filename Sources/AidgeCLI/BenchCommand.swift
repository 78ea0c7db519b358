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

    func run() throws {
        guard runs > 0, warmup >= 0 else { throw AidgeError.invalidArgument("--runs must be positive and --warmup non-negative") }
        if let batch, batch <= 0 { throw AidgeError.invalidArgument("--batch must be positive, got \(batch)") }
        let graph = try options.load()
        let shapes = try options.inputShapes(graph, batch: batch)
        let inputs = zip(graph.inputs, shapes).enumerated().map { k, pair in
            randomInput(dtype: pair.0.dtype, shape: pair.1, seed: UInt64(k))
        }
        let scheduler = Scheduler(graph)
        for _ in 0..<warmup { _ = try scheduler.forward(inputs) }
        let progress = isatty(2) != 0
        var times: [Double] = []
        for r in 0..<runs {
            let start = now()
            _ = try scheduler.forward(inputs)
            times.append((now() - start) * 1000)
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
                "{\"model\": \"\(escapeJSON(options.model))\", \"median_ms\": \(fmt(median)), \"min_ms\": \(fmt(minimum)), "
                    + "\"max_ms\": \(fmt(maximum)), \"mean_ms\": \(fmt(mean)), \"runs\": \(runs), \"warmup\": \(warmup), "
                    + "\"threads\": \(threads), \"input_shapes\": [\(shapesJSON)]}")
        } else {
            print("model: \(options.model)")
            print("inputs: \(shapeText.joined(separator: ", ")), threads: \(threads), runs: \(runs) (+\(warmup) warm-up)")
            print("median \(fmt(median)) ms, min \(fmt(minimum)) ms, max \(fmt(maximum)) ms, mean \(fmt(mean)) ms")
        }
    }

    private func writeStderr(_ text: String) {
        var bytes = Array(text.utf8)
        _ = bytes.withUnsafeMutableBytes { write(2, $0.baseAddress, $0.count) }
    }

    private func now() -> Double {
        var ts = timespec()
        clock_gettime(CLOCK_MONOTONIC, &ts)
        return Double(ts.tv_sec) + Double(ts.tv_nsec) * 1e-9
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
