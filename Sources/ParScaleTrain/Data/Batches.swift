import Foundation
import ParScale

public enum DataSource: Sendable, Equatable {
    case synthetic(seed: UInt64)
    case text(path: String)
}

/// Where a token stream stands, saved with a checkpoint so a resumed run reads the same data.
public struct StreamPosition: Codable, Equatable, Sendable {
    /// Synthetic: index of the next example; text: number of windows drawn so far.
    public var cursor: UInt64
    /// Synthetic: bytes of the current example not yet consumed.
    public var pending: [UInt8]
}

/// Batches of B rows of S+1 tokens (inputs are the first S, targets the last S).
/// Synthetic: the examples of one split, concatenated without end. Text: windows at positions
/// drawn from a counter-based hash of (seed, window number), so the position is one counter.
public final class TokenStream {
    let source: DataSource
    let bytes: [UInt8]  // text sources: the split's bytes
    let split: DataSplit
    let seed: UInt64
    public private(set) var position: StreamPosition

    public init(
        source: DataSource, corpus: TextCorpus?, split: DataSplit, seed: UInt64, position: StreamPosition? = nil
    ) throws {
        self.source = source
        self.split = split
        self.seed = seed
        self.position = position ?? StreamPosition(cursor: 0, pending: [])
        if case .text(let path) = source {
            guard let corpus else { throw DataError("--data \(path): corpus not loaded") }
            bytes = split == .train ? corpus.train : corpus.validation
        } else {
            bytes = []
        }
    }

    /// The next `count` tokens of the stream.
    func take(_ count: Int) -> [Int32] {
        switch source {
        case .synthetic(let dataSeed):
            var out: [Int32] = []
            out.reserveCapacity(count)
            while out.count < count {
                if position.pending.isEmpty {
                    let (example, next) = SyntheticTasks.next(seed: dataSeed, split: split, cursor: position.cursor)
                    position.cursor = next
                    position.pending = Array(example.text.utf8)
                }
                let n = min(count - out.count, position.pending.count)
                out += position.pending[..<n].map { Int32($0) }
                position.pending.removeFirst(n)
            }
            return out
        case .text:
            var h = fnv1a(withUnsafeBytes(of: (seed, position.cursor)) { Array($0) })
            h ^= h >> 29
            position.cursor += 1
            let start = Int(h % UInt64(max(1, bytes.count - count + 1)))
            return bytes[start..<min(bytes.count, start + count)].map { Int32($0) }
        }
    }

    public func nextBatch(batch: Int, sequence: Int) -> (inputs: [Int32], targets: [Int32]) {
        var inputs: [Int32] = [], targets: [Int32] = []
        inputs.reserveCapacity(batch * sequence)
        targets.reserveCapacity(batch * sequence)
        for _ in 0..<batch {
            let row = take(sequence + 1)
            inputs += row.dropLast()
            targets += row.dropFirst()
        }
        return (inputs, targets)
    }
}

/// A fixed validation set of `count` windows of `sequence + 1` tokens: the first windows of the
/// validation stream (synthetic) or windows evenly spaced over the validation text.
public func validationWindows(source: DataSource, corpus: TextCorpus?, count: Int, sequence: Int) throws -> [[Int32]] {
    switch source {
    case .synthetic(let seed):
        let stream = try TokenStream(source: source, corpus: nil, split: .validation, seed: seed)
        return (0..<count).map { _ in stream.take(sequence + 1) }
    case .text(let path):
        guard let text = corpus?.validation, text.count >= sequence + 1 else {
            throw DataError("--data \(path): the validation text (\(corpus?.validation.count ?? 0) bytes) is shorter than one window of \(sequence + 1) tokens")
        }
        let span = text.count - (sequence + 1)
        return (0..<count).map { i in
            let start = count > 1 ? span * i / (count - 1) : 0
            return text[start..<start + sequence + 1].map { Int32($0) }
        }
    }
}

/// The first `count` held-out task examples of the synthetic corpus `seed`.
public func heldOutTasks(seed: UInt64, count: Int) -> [TaskExample] {
    var cursor: UInt64 = 0
    return (0..<count).map { _ in
        let (e, next) = SyntheticTasks.next(seed: seed, split: .validation, cursor: cursor)
        cursor = next
        return e
    }
}

/// Entropy in nats of the token frequencies: the loss of the best model that ignores context.
public func unigramEntropy(_ tokens: [Int32]) -> Double {
    var counts: [Int32: Int] = [:]
    for t in tokens { counts[t, default: 0] += 1 }
    let n = Double(tokens.count)
    return counts.values.reduce(0.0) { $0 - Double($1) / n * log(Double($1) / n) }
}
