import Foundation
import ParScale

/// Where the training tokens come from.
public enum DataSource: Sendable, Equatable {
    case synthetic(seed: UInt64)
    case text(path: String)
}

/// Where a stream stands, so a resumed run continues exactly (saved in the trainer state).
/// No generator state is needed: every random draw is derived from (seed, cursor).
public struct StreamPosition: Codable, Equatable, Sendable {
    /// Synthetic: index of the example being read (the stream scans forward from it to the first
    /// example of its split). Text: number of windows drawn so far.
    public var cursor: UInt64
    /// Synthetic: bytes of that example already consumed. Text: always 0.
    public var offset: Int

    public init(cursor: UInt64 = 0, offset: Int = 0) {
        self.cursor = cursor
        self.offset = offset
    }

    public init(from decoder: Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        cursor = try c.decode(UInt64.self, forKey: .cursor)
        offset = try c.decodeIfPresent(Int.self, forKey: .offset) ?? 0
    }
}

/// Training or validation tokens as batches of consecutive-token rows.
public final class TokenStream {
    public let source: DataSource
    public let split: DataSplit
    public let seed: UInt64

    // Synthetic: the example being read.
    private var syntheticSeed: UInt64 = 0
    private var line: [UInt8] = []
    private var cursor: UInt64 = 0
    private var offset = 0
    // Text: the token ids of the split.
    private let text: TokenIds

    /// `corpus` only for .text sources (load it once outside and share it; when nil the path is
    /// read as byte-level text). For synthetic sources the examples depend on the source's seed
    /// only; `seed` drives the random windows of text sources.
    public init(source: DataSource, corpus: TokenCorpus?, split: DataSplit, seed: UInt64, position: StreamPosition? = nil) throws {
        self.source = source
        self.split = split
        self.seed = seed
        switch source {
        case .synthetic(let s):
            text = TokenIds([])
            syntheticSeed = s
            line.reserveCapacity(128)
            let start = position ?? StreamPosition()
            let found = SyntheticTasks.nextIndex(seed: s, split: split, from: start.cursor, into: &line)
            cursor = found.index
            guard start.offset >= 0, start.offset <= line.count, start.offset == 0 || found.index == start.cursor else {
                throw DataError("stream position \(start) does not fit the synthetic corpus (seed \(s), \(split.rawValue) split)")
            }
            offset = start.offset
        case .text(let path):
            let c = try corpus ?? TokenCorpus(bytes: TextCorpus(path: path))
            text = split == .train ? c.train : c.validation
            guard text.count > 0 else { throw DataError("\(path): the \(split.rawValue) split is empty") }
            let start = position ?? StreamPosition()
            guard start.offset == 0 else { throw DataError("stream position \(start) does not fit a text corpus (offset must be 0)") }
            cursor = start.cursor
        }
    }

    public var position: StreamPosition { StreamPosition(cursor: cursor, offset: offset) }

    /// B rows of S+1 consecutive tokens: inputs are [:, 0..<S], targets [:, 1...S], both
    /// flattened row-major (count B*S each).
    /// Synthetic: an endless concatenation of example lines; each row starts at the last token of
    /// the row before (also across calls), so every next-token pair is trained on exactly once.
    /// Text: independent random windows of the split's bytes (window k drawn from (seed, k)).
    public func nextBatch(batch: Int, sequence: Int) -> (inputs: [Int32], targets: [Int32]) {
        precondition(batch > 0 && sequence > 0, "batch and sequence must be positive")
        var inputs = [Int32](repeating: 0, count: batch * sequence)
        var targets = [Int32](repeating: 0, count: batch * sequence)
        var row = [Int32](repeating: 0, count: sequence + 1)
        for b in 0..<batch {
            nextRow(&row)
            let base = b * sequence
            for j in 0..<sequence {
                inputs[base + j] = row[j]
                targets[base + j] = row[j + 1]
            }
        }
        return (inputs, targets)
    }

    /// Fills `row` (count S+1) with the next window.
    func nextRow(_ row: inout [Int32]) {
        let length = row.count
        switch source {
        case .synthetic:
            row.withUnsafeMutableBufferPointer { out in
                var j = 0
                while j < length - 1 {
                    if offset == line.count { advanceLine() }
                    let n = min(line.count - offset, length - 1 - j)
                    line.withUnsafeBufferPointer { src in
                        for k in 0..<n { out[j + k] = Int32(src[offset + k]) }
                    }
                    offset += n
                    j += n
                }
                // The last token is peeked, not consumed: the next row starts with it.
                if offset == line.count { advanceLine() }
                out[length - 1] = Int32(line[offset])
            }
        case .text:
            let n = text.count
            var g = SeededGenerator(seed: mixSeed(seed, cursor))
            cursor &+= 1
            let start = n >= length ? Int(g.next() % UInt64(n - length + 1)) : Int(g.next() % UInt64(n))
            let src = text.base
            row.withUnsafeMutableBufferPointer { out in
                if start + length <= n {
                    for k in 0..<length { out[k] = src[start + k] }
                } else {  // only when the text is shorter than a window: wrap around
                    for k in 0..<length { out[k] = src[(start + k) % n] }
                }
            }
        }
    }

    private func advanceLine() {
        let found = SyntheticTasks.nextIndex(seed: syntheticSeed, split: split, from: cursor &+ 1, into: &line)
        cursor = found.index
        offset = 0
    }
}

/// A FIXED validation set: `count` windows of `sequence + 1` tokens from the validation split, the
/// same on every call with the same arguments. Synthetic: the first windows of the validation
/// stream (consecutive, each starting at the last token of the one before). Text: evenly spaced
/// windows over the validation tokens (an error if they are shorter than one window).
public func validationWindows(source: DataSource, corpus: TokenCorpus?, count: Int, sequence: Int) throws -> [[Int32]] {
    guard count >= 0, sequence > 0 else {
        throw DataError("validation windows: count must be >= 0 and sequence > 0 (got \(count), \(sequence))")
    }
    let length = sequence + 1
    switch source {
    case .synthetic:
        let stream = try TokenStream(source: source, corpus: nil, split: .validation, seed: 0)
        var row = [Int32](repeating: 0, count: length)
        return (0..<count).map { _ in
            stream.nextRow(&row)
            return row
        }
    case .text(let path):
        let c = try corpus ?? TokenCorpus(bytes: TextCorpus(path: path))
        let v = c.validation
        guard v.count >= length else {
            throw DataError(
                "\(path): the validation text has \(v.count) tokens, shorter than one window of \(length) "
                    + "(use a shorter sequence or more text)")
        }
        let span = v.count - length
        return (0..<count).map { i in
            let start = count > 1 ? i * span / (count - 1) : 0
            return v.slice(start, length)
        }
    }
}

/// Held-out task examples for task accuracy: the first `count` validation examples of `seed`.
public func heldOutTasks(seed: UInt64, count: Int) -> [TaskExample] {
    var out: [TaskExample] = []
    out.reserveCapacity(max(0, count))
    var cursor: UInt64 = 0
    for _ in 0..<max(0, count) {
        let (example, next) = SyntheticTasks.next(seed: seed, split: .validation, cursor: cursor)
        out.append(example)
        cursor = next
    }
    return out
}

/// Entropy (nats) of the token frequencies: the loss of the best model that ignores context.
public func unigramEntropy(_ tokens: [Int32]) -> Double {
    guard !tokens.isEmpty else { return 0 }
    var counts = [Int](repeating: 0, count: 256)
    var others: [Int32: Int] = [:]
    for t in tokens {
        if t >= 0 && t < 256 { counts[Int(t)] += 1 } else { others[t, default: 0] += 1 }
    }
    let total = Double(tokens.count)
    var h = 0.0
    for c in counts + Array(others.values) where c > 0 {
        let p = Double(c) / total
        h -= p * log(p)
    }
    return h
}
