/// Added tokens matched in the raw text before normalisation, leftmost-longest (as HF's
/// Aho-Corasick automaton with MatchKind::LeftmostLongest): at the first position where any
/// token starts, the longest token that matches there.
struct AddedTokenMatcher {
    struct Token { let bytes: [UInt8]; let id: Int32 }
    /// Tokens by first byte, longest first.
    private let byFirstByte: [[Token]]
    private let firstBytes: [Bool]
    let isEmpty: Bool

    init(_ tokens: [(content: String, id: Int32)]) {
        var table = [[Token]](repeating: [], count: 256)
        for t in tokens where !t.content.isEmpty {
            let b = Array(t.content.utf8)
            table[Int(b[0])].append(Token(bytes: b, id: t.id))
        }
        for i in 0..<256 { table[i].sort { $0.bytes.count > $1.bytes.count } }
        byFirstByte = table
        firstBytes = table.map { !$0.isEmpty }
        isEmpty = tokens.allSatisfy { $0.content.isEmpty }
    }

    /// The next match in p[from..<n]: (start, end, id), or nil.
    func next(_ p: UnsafePointer<UInt8>, from: Int, _ n: Int) -> (Int, Int, Int32)? {
        if isEmpty { return nil }
        return firstBytes.withUnsafeBufferPointer { first in
            var i = from
            while i < n {
                if first[Int(p[i])] {
                    for t in byFirstByte[Int(p[i])] where t.bytes.count <= n - i {
                        let ok = t.bytes.withUnsafeBufferPointer { memcmp($0.baseAddress!, p + i, $0.count) == 0 }
                        if ok { return (i, i + t.bytes.count, t.id) }
                    }
                }
                i += 1
            }
            return nil
        }
    }
}

import Foundation
