import Foundation

/// Byte-level BPE: merge ranks in an open-addressing table keyed by the pair of ids, the merge
/// loop (lowest rank first, leftmost on ties, as HF's heap over symbols), and a per-thread word
/// cache. Pre-tokens are raw UTF-8 bytes; the byte-level alphabet is folded into `byteIds`.

/// (left id, right id) -> (rank, merged id).
final class MergeTable {
    let keys: UnsafeMutablePointer<UInt64>
    let values: UnsafeMutablePointer<UInt64>
    let mask: Int
    static let none = UInt64.max
    private static let empty = UInt64.max

    init(capacityFor count: Int) {
        var cap = 16
        while cap < count * 2 { cap <<= 1 }
        keys = .allocate(capacity: cap)
        keys.initialize(repeating: Self.empty, count: cap)
        values = .allocate(capacity: cap)
        values.initialize(repeating: 0, count: cap)
        mask = cap - 1
    }

    deinit { keys.deallocate(); values.deallocate() }

    @inline(__always) private func slot(_ key: UInt64) -> Int { Self.slot(key, mask) }

    @inline(__always) static func slot(_ key: UInt64, _ mask: Int) -> Int {
        Int(truncatingIfNeeded: (key &* 0x9E37_79B9_7F4A_7C15) >> 29) & mask
    }

    @inline(__always)
    static func lookup(_ keys: UnsafeMutablePointer<UInt64>, _ values: UnsafeMutablePointer<UInt64>, _ mask: Int,
                       _ left: Int32, _ right: Int32) -> UInt64 {
        let key = UInt64(UInt32(bitPattern: left)) << 32 | UInt64(UInt32(bitPattern: right))
        var i = slot(key, mask)
        while true {
            let k = keys[i]
            if k == key { return values[i] }
            if k == empty { return none }
            i = (i + 1) & mask
        }
    }

    /// A later merge of the same pair replaces the earlier one (as HF's map built in file order).
    func insert(left: Int32, right: Int32, rank: UInt32, merged: Int32) {
        let key = UInt64(UInt32(bitPattern: left)) << 32 | UInt64(UInt32(bitPattern: right))
        var i = slot(key)
        while keys[i] != Self.empty && keys[i] != key { i = (i + 1) & mask }
        keys[i] = key
        values[i] = UInt64(rank) << 32 | UInt64(UInt32(bitPattern: merged))
    }

    /// rank << 32 | merged id, or `MergeTable.none`.
    @inline(__always) func lookup(_ left: Int32, _ right: Int32) -> UInt64 {
        let key = UInt64(UInt32(bitPattern: left)) << 32 | UInt64(UInt32(bitPattern: right))
        var i = slot(key)
        while true {
            let k = keys[i]
            if k == key { return values[i] }
            if k == Self.empty { return Self.none }
            i = (i + 1) & mask
        }
    }
}

@inline(__always) func hashBytes(_ p: UnsafePointer<UInt8>, _ n: Int) -> UInt64 {
    var h: UInt64 = 0x9E37_79B9_7F4A_7C15 ^ UInt64(n)
    var i = 0
    let raw = UnsafeRawPointer(p)
    while i + 8 <= n {
        h = (h ^ raw.loadUnaligned(fromByteOffset: i, as: UInt64.self)) &* 0xFF51_AFD7_ED55_8CCD
        h ^= h >> 32
        i += 8
    }
    if i < n {
        var w: UInt64 = 0
        var s: UInt64 = 0
        while i < n { w |= UInt64(p[i]) << s; s += 8; i += 1 }
        h = (h ^ w) &* 0xC4CE_B9FE_1A85_EC53
    }
    h ^= h >> 29
    return h &* 0xFF51_AFD7_ED55_8CCD
}

/// Byte string -> a run of ids, open addressing over arenas; `clear()` empties it when full.
final class ByteStringTable {
    private var slots: UnsafeMutablePointer<Int32>       // entry index, -1 empty
    private var slotMask: Int
    private(set) var count = 0
    // Entries: hash, key (offset, length) in keyBytes, value (offset, length) in valueIds.
    private var hashes = [UInt64]()
    private var keyOffsets = [Int32](), keyLengths = [Int32]()
    private var valueOffsets = [Int32](), valueLengths = [Int32]()
    private var keyBytes = [UInt8]()
    private var valueIds = [Int32]()

    init(slots capacity: Int) {
        var cap = 16
        while cap < capacity { cap <<= 1 }
        slots = .allocate(capacity: cap)
        slots.initialize(repeating: -1, count: cap)
        slotMask = cap - 1
    }

    deinit { slots.deallocate() }

    var capacity: Int { slotMask + 1 }

    func clear() {
        slots.update(repeating: -1, count: slotMask + 1)
        count = 0
        hashes.removeAll(keepingCapacity: true)
        keyOffsets.removeAll(keepingCapacity: true); keyLengths.removeAll(keepingCapacity: true)
        valueOffsets.removeAll(keepingCapacity: true); valueLengths.removeAll(keepingCapacity: true)
        keyBytes.removeAll(keepingCapacity: true); valueIds.removeAll(keepingCapacity: true)
    }

    private func grow() {
        let cap = (slotMask + 1) * 2
        slots.deallocate()
        slots = .allocate(capacity: cap)
        slots.initialize(repeating: -1, count: cap)
        slotMask = cap - 1
        for e in 0..<count {
            var i = Int(truncatingIfNeeded: hashes[e]) & slotMask
            while slots[i] >= 0 { i = (i + 1) & slotMask }
            slots[i] = Int32(e)
        }
    }

    /// The entry's ids (offset, count) in `valueIds`, or nil.
    @inline(__always)
    func find(_ p: UnsafePointer<UInt8>, _ n: Int, hash h: UInt64) -> (Int, Int)? {
        var i = Int(truncatingIfNeeded: h) & slotMask
        return keyBytes.withUnsafeBufferPointer { kb in
            hashes.withUnsafeBufferPointer { hs in
                while true {
                    let e = Int(slots[i])
                    if e < 0 { return nil }
                    if hs[e] == h && Int(keyLengths[e]) == n
                        && memcmp(kb.baseAddress! + Int(keyOffsets[e]), p, n) == 0 {
                        return (Int(valueOffsets[e]), Int(valueLengths[e]))
                    }
                    i = (i + 1) & slotMask
                }
            }
        }
    }

    @inline(__always) func withIds<R>(_ offset: Int, _ n: Int, _ body: (UnsafeBufferPointer<Int32>) -> R) -> R {
        valueIds.withUnsafeBufferPointer { body(UnsafeBufferPointer(rebasing: $0[offset..<offset + n])) }
    }

    /// Inserts (the caller checked it is absent).
    func insert(_ p: UnsafePointer<UInt8>, _ n: Int, hash h: UInt64, ids: UnsafeBufferPointer<Int32>) {
        if (count + 1) * 2 > slotMask + 1 { grow() }
        let e = count
        hashes.append(h)
        keyOffsets.append(Int32(keyBytes.count)); keyLengths.append(Int32(n))
        keyBytes.append(contentsOf: UnsafeBufferPointer(start: p, count: n))
        valueOffsets.append(Int32(valueIds.count)); valueLengths.append(Int32(ids.count))
        valueIds.append(contentsOf: ids)
        var i = Int(truncatingIfNeeded: h) & slotMask
        while slots[i] >= 0 { i = (i + 1) & slotMask }
        slots[i] = Int32(e)
        count += 1
    }
}

/// The immutable BPE model shared by all threads.
final class BPEModel {
    let merges: MergeTable
    /// Vocabulary id of each byte's symbol.
    let byteIds: [Int32]
    /// ignore_merges: a whole pre-token found in the vocabulary is taken as is.
    let ignoreMerges: Bool
    /// Raw bytes of byte-level vocabulary tokens -> id (used when ignoreMerges).
    let vocabBytes: ByteStringTable?

    init(merges: MergeTable, byteIds: [Int32], ignoreMerges: Bool, vocabBytes: ByteStringTable?) {
        self.merges = merges
        self.byteIds = byteIds
        self.ignoreMerges = ignoreMerges
        self.vocabBytes = vocabBytes
    }
}

/// Per-thread BPE state: scratch buffers and the word cache.
final class BPEWorker {
    let model: BPEModel
    // The hot loop reads only these (no retain/release of shared objects, which would make
    // threads contend on their reference counts): the merge table's storage (kept alive by
    // `model`) and a private copy of the byte ids.
    private let mergeKeys: UnsafeMutablePointer<UInt64>
    private let mergeValues: UnsafeMutablePointer<UInt64>
    private let mergeMask: Int
    private let byteIds: UnsafeMutablePointer<Int32>
    private let ignoreMerges: Bool
    let cache = ByteStringTable(slots: 1 << 15)
    static let cacheMaxEntries = 1 << 16
    static let cacheMaxLength = 256
    private var scratch = [Int32]()
    // Heap path buffers.
    private var sym = [Int32](), prev = [Int32](), next = [Int32](), heap = [UInt64]()
    // Scratch of the encoder that owns this worker (normalised text, piece ends).
    var normalized = [UInt8]()
    var pieceEnds = [Int]()

    init(model: BPEModel) {
        self.model = model
        mergeKeys = model.merges.keys
        mergeValues = model.merges.values
        mergeMask = model.merges.mask
        byteIds = .allocate(capacity: 256)
        for b in 0..<256 { byteIds[b] = model.byteIds[b] }
        ignoreMerges = model.ignoreMerges
    }

    deinit { byteIds.deallocate() }

    @inline(__always) private func lookup(_ a: Int32, _ b: Int32) -> UInt64 {
        MergeTable.lookup(mergeKeys, mergeValues, mergeMask, a, b)
    }

    /// Appends the ids of one pre-token (raw bytes p[0..<n], n > 0).
    @inline(__always)
    func encode(_ p: UnsafePointer<UInt8>, _ n: Int, into out: inout [Int32]) {
        if n == 1 { out.append(byteIds[Int(p[0])]); return }
        if n <= Self.cacheMaxLength {
            let h = hashBytes(p, n)
            if let (o, c) = cache.find(p, n, hash: h) {
                cache.withIds(o, c) { out.append(contentsOf: $0) }
                return
            }
            scratch.removeAll(keepingCapacity: true)
            compute(p, n, into: &scratch)
            if cache.count >= Self.cacheMaxEntries { cache.clear() }
            scratch.withUnsafeBufferPointer { cache.insert(p, n, hash: h, ids: $0) }
            out.append(contentsOf: scratch)
        } else {
            compute(p, n, into: &out)
        }
    }

    func compute(_ p: UnsafePointer<UInt8>, _ n: Int, into out: inout [Int32]) {
        if ignoreMerges, let table = model.vocabBytes, let (o, c) = table.find(p, n, hash: hashBytes(p, n)) {
            table.withIds(o, c) { out.append(contentsOf: $0) }
            return
        }
        if n <= 64 { mergeSmall(p, n, into: &out) } else { mergeLarge(p, n, into: &out) }
    }

    /// Quadratic merge over a small array: each step merges the leftmost pair of lowest rank.
    func mergeSmall(_ p: UnsafePointer<UInt8>, _ n: Int, into out: inout [Int32]) {
        withUnsafeTemporaryAllocation(of: Int32.self, capacity: n) { s in
            withUnsafeTemporaryAllocation(of: UInt64.self, capacity: n) { r in
                for i in 0..<n { s[i] = byteIds[Int(p[i])] }
                var count = n
                for i in 0..<count - 1 { r[i] = lookup(s[i], s[i + 1]) }
                while count > 1 {
                    var best = 0
                    var bestValue = r[0]
                    for i in 1..<count - 1 where r[i] >> 32 < bestValue >> 32 {
                        best = i; bestValue = r[i]
                    }
                    if bestValue == MergeTable.none { break }
                    s[best] = Int32(truncatingIfNeeded: bestValue & 0xFFFF_FFFF)
                    var k = best + 1
                    while k < count - 1 { s[k] = s[k + 1]; r[k] = r[k + 1]; k += 1 }
                    count -= 1
                    if best > 0 { r[best - 1] = lookup(s[best - 1], s[best]) }
                    if best < count - 1 { r[best] = lookup(s[best], s[best + 1]) }
                }
                out.append(contentsOf: UnsafeBufferPointer(start: s.baseAddress, count: count))
            }
        }
    }

    /// O(n log n) merge for long pre-tokens: symbols in a linked list and a min-heap of
    /// (rank << 32 | position) with stale entries skipped, as HF's word.rs.
    func mergeLarge(_ p: UnsafePointer<UInt8>, _ n: Int, into out: inout [Int32]) {
        sym.removeAll(keepingCapacity: true); prev.removeAll(keepingCapacity: true)
        next.removeAll(keepingCapacity: true); heap.removeAll(keepingCapacity: true)
        for i in 0..<n {
            sym.append(byteIds[Int(p[i])])
            prev.append(Int32(i - 1))
            next.append(i + 1 < n ? Int32(i + 1) : -1)
        }
        sym.withUnsafeMutableBufferPointer { sym in
        prev.withUnsafeMutableBufferPointer { prev in
        next.withUnsafeMutableBufferPointer { next in
            for i in 0..<n - 1 {
                let v = lookup(sym[i], sym[i + 1])
                if v != MergeTable.none { heapPush((v >> 32) << 32 | UInt64(i)) }
            }
            while let top = heapPop() {
                let rank = top >> 32
                let pos = Int(top & 0xFFFF_FFFF)
                if sym[pos] < 0 { continue }                  // merged into its left neighbour
                let r = Int(next[pos])
                if r < 0 { continue }
                let v = lookup(sym[pos], sym[r])
                if v == MergeTable.none || v >> 32 != rank { continue }   // stale
                sym[pos] = Int32(truncatingIfNeeded: v & 0xFFFF_FFFF)
                sym[r] = -1
                let rr = Int(next[r])
                next[pos] = Int32(rr)
                if rr >= 0 { prev[rr] = Int32(pos) }
                let l = Int(prev[pos])
                if l >= 0 {
                    let w = lookup(sym[l], sym[pos])
                    if w != MergeTable.none { heapPush((w >> 32) << 32 | UInt64(l)) }
                }
                if rr >= 0 {
                    let w = lookup(sym[pos], sym[rr])
                    if w != MergeTable.none { heapPush((w >> 32) << 32 | UInt64(pos)) }
                }
            }
            var i = 0
            while i >= 0 { out.append(sym[i]); i = Int(next[i]) }
        }
        }
        }
    }

    private func heapPush(_ v: UInt64) {
        heap.append(v)
        heap.withUnsafeMutableBufferPointer { h in
            var i = h.count - 1
            while i > 0 {
                let parent = (i - 1) >> 1
                if h[parent] <= v { break }
                h[i] = h[parent]; i = parent
            }
            h[i] = v
        }
    }

    private func heapPop() -> UInt64? {
        guard let last = heap.popLast() else { return nil }
        if heap.isEmpty { return last }
        return heap.withUnsafeMutableBufferPointer { h -> UInt64 in
            let top = h[0]
            let n = h.count
            var i = 0
            while true {
                var c = 2 * i + 1
                if c >= n { break }
                if c + 1 < n && h[c + 1] < h[c] { c += 1 }
                if h[c] >= last { break }
                h[i] = h[c]; i = c
            }
            h[i] = last
            return top
        }
    }
}
