import AidgeCPU
import Dispatch
import XCTest

#if canImport(Glibc)
import Glibc
#endif

/// The worker pool behind `Parallel.forEach`: every index exactly once, nested and concurrent calls complete.
final class ParallelTests: XCTestCase {
    /// Runs `forEach` over `count` and returns how many times each index was visited.
    private static func visits(_ count: Int, grain: Int = 1) -> [Int] {
        var seen = [Int](repeating: 0, count: count)
        seen.withUnsafeMutableBufferPointer { buffer in
            nonisolated(unsafe) let b = buffer
            Parallel.forEach(count, grain: grain) { range in
                for i in range { b[i] += 1 }  // ranges are disjoint
            }
        }
        return seen
    }

    func testEveryIndexExactlyOnceOverManyCalls() {
        for round in 0..<5000 {
            let count = (round * 7919) % 257
            let grain = 1 + round % 5
            XCTAssertEqual(Self.visits(count, grain: grain), [Int](repeating: 1, count: count), "count \(count)")
        }
    }

    /// `forEach` over `outer` items, each summing a nested `forEach` over 100 (which runs serially inside a job).
    private static func nestedTotals(_ outer: Int) -> [Int] {
        var total = [Int](repeating: 0, count: outer)
        total.withUnsafeMutableBufferPointer { buffer in
            nonisolated(unsafe) let b = buffer
            Parallel.forEach(outer) { range in
                for i in range {
                    var inner = 0
                    Parallel.forEach(100) { r in inner += r.count }
                    b[i] = inner
                }
            }
        }
        return total
    }

    func testNestedCallsRunOnTheirCaller() {
        XCTAssertEqual(Self.nestedTotals(8), [Int](repeating: 100, count: 8))
    }

    func testConcurrentCallersAllComplete() {
        let results = UnsafeMutableBufferPointer<Int>.allocate(capacity: 4)
        defer { results.deallocate() }
        nonisolated(unsafe) let r = results
        DispatchQueue.concurrentPerform(iterations: 4) { caller in
            var ok = 0
            for _ in 0..<500 where Self.visits(97) == [Int](repeating: 1, count: 97) { ok += 1 }
            r[caller] = ok
        }
        XCTAssertEqual(Array(results), [500, 500, 500, 500])
    }

    /// With the process's OpenMP runtime (libgomp here, standing in for PyTorch's), work runs on its threads with
    /// the same guarantees; without one, sharing is refused and the engine's workers stay in charge.
    func testWorkOnTheProcessOpenMPThreads() {
        let runtime = dlopen("libgomp.so.1", RTLD_NOW | RTLD_GLOBAL)
        defer {
            Parallel.shareOpenMPThreads(false)
            if let runtime { dlclose(runtime) }
        }
        let threads = Parallel.threads
        Parallel.threads = 2
        defer { Parallel.threads = threads }
        XCTAssertEqual(Parallel.shareOpenMPThreads(true), runtime != nil)
        XCTAssertEqual(Parallel.sharesOpenMPThreads, runtime != nil)
        for round in 0..<2000 {
            let count = (round * 7919) % 257
            XCTAssertEqual(Self.visits(count), [Int](repeating: 1, count: count), "count \(count)")
        }
        XCTAssertEqual(Self.nestedTotals(4), [Int](repeating: 100, count: 4))
        XCTAssertFalse(Parallel.shareOpenMPThreads(false))
        XCTAssertEqual(Self.visits(100), [Int](repeating: 1, count: 100))
    }
}
