/// Places buffers with known lifetimes in one arena, reusing the space of buffers that are dead.
///
/// Greedy first fit in order of definition: a buffer defined at step `first` and last read at step `last` may
/// share bytes with any buffer whose lifetime does not overlap.
public struct MemoryPlanner {
    public struct Request {
        public let bytes: Int
        public let first: Int
        public fileprivate(set) var last: Int
    }

    public private(set) var requests: [Request] = []

    public init() {}

    /// Adds a buffer; returns its index.
    public mutating func add(bytes: Int, first: Int, last: Int) -> Int {
        requests.append(Request(bytes: bytes, first: first, last: last))
        return requests.count - 1
    }

    /// Keeps buffer `index` alive through step `last` (a view of it is read that late).
    public mutating func extend(_ index: Int, through last: Int) {
        requests[index].last = max(requests[index].last, last)
    }

    /// Offsets (aligned to `alignment`) for each request, and the arena size.
    public func plan(alignment: Int = Storage.alignment) -> (offsets: [Int], size: Int) {
        func align(_ n: Int) -> Int { (n + alignment - 1) / alignment * alignment }
        var offsets = [Int](repeating: 0, count: requests.count)
        var live: [(offset: Int, end: Int, last: Int)] = []
        var size = 0
        let order = requests.indices.sorted { (requests[$0].first, -requests[$0].bytes) < (requests[$1].first, -requests[$1].bytes) }
        for i in order {
            let r = requests[i]
            live.removeAll { $0.last < r.first }
            live.sort { $0.offset < $1.offset }
            let need = align(max(r.bytes, 1))
            var candidate = 0
            for block in live {
                if block.offset - candidate >= need { break }
                candidate = max(candidate, block.end)
            }
            offsets[i] = candidate
            live.append((candidate, candidate + need, r.last))
            size = max(size, candidate + need)
        }
        return (offsets, size)
    }
}
