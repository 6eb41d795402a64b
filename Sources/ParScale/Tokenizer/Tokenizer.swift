import Dispatch
import Foundation

/// A Hugging Face `tokenizer.json` reader for byte-level BPE (the Qwen2 family), id-for-id equal
/// to HF `tokenizers` 0.23: added tokens matched in the raw text (leftmost-longest), NFC, the
/// pre-tokenizer's regex split (a hand-written scanner for the Qwen2 pattern, ICU for others),
/// GPT-2's byte-level alphabet, and BPE merges. Every field is read from the file; anything this
/// reader does not implement is a TokenizerError naming it, never a silent difference.
public final class Tokenizer: @unchecked Sendable {
    public static let fileName = "tokenizer.json"
    public static let configFileName = "tokenizer_config.json"

    public let path: String
    /// FNV-1a 64 of tokenizer.json's bytes, 16 hex digits.
    public let fingerprint: String
    /// Special tokens named by tokenizer_config.json (nil when absent or null).
    public let eosTokenId: Int32?
    public let padTokenId: Int32?
    public let bosTokenId: Int32?
    /// Added tokens (content, id) in file order.
    public let addedTokens: [(content: String, id: Int32)]

    let normalizeNFC: Bool
    let preTokenizer: PreTokenizerKind
    let model: BPEModel
    private let matcher: AddedTokenMatcher
    private let tokenStrings: [String?]        // id -> vocabulary / added token string
    private let vocab: [String: Int32]
    private let decodeOffsets: [Int]           // id -> bytes decodeOffsets[id]..<decodeOffsets[id + 1]
    private let decodeBytes: [UInt8]
    private let hasByteLevelDecoder: Bool
    private let poolLock = NSLock()
    private var pool = [BPEWorker]()

    /// Inputs of at least this many bytes are split across threads when threads > 1.
    public static let parallelThreshold = 1 << 20

    /// Reads tokenizer.json and, if present beside it, tokenizer_config.json.
    public convenience init(file: String) throws {
        try self.init(file: file, forceGeneralRegex: false)
    }

    /// `forceGeneralRegex`: use NSRegularExpression even for the Qwen2 pattern (for tests).
    init(file: String, forceGeneralRegex: Bool) throws {
        path = file
        let json = JSONFields(file: file)
        let data: Data
        do { data = try Data(contentsOf: URL(fileURLWithPath: file)) } catch {
            throw TokenizerError("\(file): cannot be read (\(error.localizedDescription))")
        }
        fingerprint = data.withUnsafeBytes { raw -> String in
            var h: UInt64 = 0xCBF2_9CE4_8422_2325
            for b in raw { h = (h ^ UInt64(b)) &* 0x0000_0100_0000_01B3 }
            return String(format: "%016llx", h)
        }
        let root = try json.parse(data)

        for key in ["truncation", "padding"] where !JSONFields.isNull(root[key]) {
            throw json.error("\(key) is set; it would change the ids of encode, and is not supported (expected null)")
        }
        normalizeNFC = try Self.readNormalizer(root["normalizer"], json)
        var kind = try Self.readPreTokenizer(root["pre_tokenizer"], json)
        if forceGeneralRegex, case .qwen2 = kind {
            kind = .regex(try Patterns.compile(Patterns.qwen2, file: file, isLiteral: false), source: Patterns.qwen2)
        }
        preTokenizer = kind
        hasByteLevelDecoder = try Self.readDecoder(root["decoder"], json)
        try Self.readPostProcessor(root["post_processor"], json)

        // Model.
        let m = try json.object(root["model"], "model")
        let type = try json.optionalString(m["type"], "model.type") ?? "(missing)"
        guard type == "BPE" else {
            throw json.error("model.type \"\(JSONFields.short(type, 60))\" is not supported (only byte-level BPE)")
        }
        if !JSONFields.isNull(m["dropout"]) { throw json.error("model.dropout is set; BPE dropout is not supported (expected null)") }
        if let unk = try json.optionalString(m["unk_token"], "model.unk_token") {
            throw json.error("model.unk_token \"\(JSONFields.short(unk, 60))\" is not supported (expected null)")
        }
        for key in ["continuing_subword_prefix", "end_of_word_suffix"] {
            if let s = try json.optionalString(m[key], "model.\(key)"), !s.isEmpty {
                throw json.error("model.\(key) \"\(JSONFields.short(s, 60))\" is not supported (expected \"\" or null)")
            }
        }
        for key in ["fuse_unk", "byte_fallback"] where try json.bool(m[key], "model.\(key)", default: false) {
            throw json.error("model.\(key) true is not supported (expected false)")
        }
        let ignoreMerges = try json.bool(m["ignore_merges"], "model.ignore_merges", default: false)

        let vocabObject = try json.object(m["vocab"], "model.vocab")
        var vocab = [String: Int32](minimumCapacity: vocabObject.count)
        var maxId = -1
        var seen = [Int: String]()
        seen.reserveCapacity(vocabObject.count)
        for (token, value) in vocabObject {
            let id = try json.int(value, "model.vocab[\"\(JSONFields.short(token, 60))\"]")
            try Self.checkToken(token, id: id, what: "model.vocab", json)
            if let other = seen[id] {
                throw json.error("model.vocab gives id \(id) to two tokens, \"\(JSONFields.short(other, 60))\" and \"\(JSONFields.short(token, 60))\"")
            }
            seen[id] = token
            vocab[token] = Int32(id)
            maxId = max(maxId, id)
        }

        var byteIds = [Int32]()
        var missing = [String]()
        for b in 0..<256 {
            let s = ByteLevel.symbol(UInt8(b))
            if let id = vocab[s] { byteIds.append(id) } else { byteIds.append(-1); missing.append("\"\(s)\" (byte \(b))") }
        }
        if !missing.isEmpty {
            throw json.error("model.vocab lacks \(missing.count) of the 256 byte-level symbols, e.g. \(missing.prefix(4).joined(separator: ", ")); not a byte-level BPE vocabulary")
        }

        let mergeList = try json.array(m["merges"], "model.merges")
        let merges = MergeTable(capacityFor: mergeList.count)
        for (k, item) in mergeList.enumerated() {
            let a: String, b: String
            if let s = item as? String {
                guard let sp = s.firstIndex(of: " ") else {
                    throw json.error("model.merges[\(k)] \"\(JSONFields.short(s, 60))\" is not two tokens separated by a space")
                }
                a = String(s[..<sp]); b = String(s[s.index(after: sp)...])
            } else if let pair = item as? [Any], pair.count == 2, let x = pair[0] as? String, let y = pair[1] as? String {
                a = x; b = y
            } else {
                throw json.error("model.merges[\(k)] is neither \"a b\" nor [\"a\", \"b\"] (\(JSONFields.describe(item)))")
            }
            guard let ia = vocab[a] else { throw json.error("model.merges[\(k)] names \"\(JSONFields.short(a, 60))\", which is not in model.vocab") }
            guard let ib = vocab[b] else { throw json.error("model.merges[\(k)] names \"\(JSONFields.short(b, 60))\", which is not in model.vocab") }
            guard let merged = vocab[a + b] else {
                throw json.error("model.merges[\(k)] (\"\(JSONFields.short(a, 40))\" + \"\(JSONFields.short(b, 40))\"): the result is not in model.vocab")
            }
            merges.insert(left: ia, right: ib, rank: UInt32(k), merged: merged)
        }

        var vocabBytes: ByteStringTable? = nil
        if ignoreMerges {
            let table = ByteStringTable(slots: vocab.count * 2)
            for (token, id) in vocab {
                guard let bytes = ByteLevel.bytes(of: token), !bytes.isEmpty else { continue }
                var one = id
                bytes.withUnsafeBufferPointer { b in
                    withUnsafePointer(to: &one) { table.insert(b.baseAddress!, b.count, hash: hashBytes(b.baseAddress!, b.count), ids: UnsafeBufferPointer(start: $0, count: 1)) }
                }
            }
            vocabBytes = table
        }
        model = BPEModel(merges: merges, byteIds: byteIds, ignoreMerges: ignoreMerges, vocabBytes: vocabBytes)

        // Added tokens.
        var added = [(content: String, id: Int32)]()
        var addedIds = Set<Int>(), addedContents = Set<String>()
        if !JSONFields.isNull(root["added_tokens"]) {
            for (k, item) in try json.array(root["added_tokens"], "added_tokens").enumerated() {
                let where_ = "added_tokens[\(k)]"
                let t = try json.object(item, where_)
                let content = try json.string(t["content"], "\(where_).content")
                let id = try json.int(t["id"], "\(where_).id")
                try Self.checkToken(content, id: id, what: "added_tokens", json)
                let name = "\(where_) (\"\(JSONFields.short(content, 60))\")"
                if content.isEmpty { throw json.error("\(name): empty content") }
                for key in ["single_word", "lstrip", "rstrip"] where try json.bool(t[key], "\(where_).\(key)", default: false) {
                    throw json.error("\(name): \(key) true is not supported (expected false)")
                }
                if try json.bool(t["normalized"], "\(where_).normalized", default: false) {
                    throw json.error("\(name): normalized true is not supported (expected false: matched in the raw text)")
                }
                if !addedIds.insert(id).inserted { throw json.error("\(name): id \(id) is given to another added token too") }
                if !addedContents.insert(content).inserted { throw json.error("\(name): the same content appears twice") }
                if let v = vocab[content], Int(v) != id {
                    throw json.error("\(name) has id \(id) but model.vocab gives it id \(v)")
                }
                if let other = seen[id], other != content {
                    throw json.error("\(name) has id \(id), which model.vocab gives to \"\(JSONFields.short(other, 60))\"")
                }
                added.append((content, Int32(id)))
                maxId = max(maxId, id)
            }
        }
        addedTokens = added
        matcher = AddedTokenMatcher(added)

        var strings = [String?](repeating: nil, count: maxId + 1)
        for (token, id) in vocab { strings[Int(id)] = token }
        for (content, id) in added { strings[Int(id)] = content; vocab[content] = id }
        tokenStrings = strings
        self.vocab = vocab

        // Decoded bytes of every id: the ByteLevel decoder maps each character back to its byte,
        // or keeps a token's own UTF-8 when a character is outside the alphabet (as HF).
        var offsets = [Int](repeating: 0, count: strings.count + 1)
        var bytes = [UInt8]()
        for (id, s) in strings.enumerated() {
            if let s = s {
                if hasByteLevelDecoder, let b = ByteLevel.bytes(of: s) { bytes.append(contentsOf: b) } else { bytes.append(contentsOf: s.utf8) }
            }
            offsets[id + 1] = bytes.count
        }
        decodeOffsets = offsets
        decodeBytes = bytes

        // tokenizer_config.json beside the file.
        let configPath = URL(fileURLWithPath: file).deletingLastPathComponent().appendingPathComponent(Self.configFileName).path
        var special: [String: Int32] = [:]
        if FileManager.default.fileExists(atPath: configPath) {
            let cj = JSONFields(file: configPath)
            let data: Data
            do { data = try Data(contentsOf: URL(fileURLWithPath: configPath)) } catch {
                throw TokenizerError("\(configPath): cannot be read (\(error.localizedDescription))")
            }
            let config = try cj.parse(data)
            for key in ["eos_token", "pad_token", "bos_token"] where !JSONFields.isNull(config[key]) {
                let content: String
                if let s = config[key] as? String { content = s } else {
                    content = try cj.string(try cj.object(config[key], key)["content"], "\(key).content")
                }
                guard let id = vocab[content] else {
                    throw cj.error("\(key) \"\(JSONFields.short(content, 60))\" is neither an added token nor in the vocabulary of \(file)")
                }
                special[key] = id
            }
        }
        eosTokenId = special["eos_token"]
        padTokenId = special["pad_token"]
        bosTokenId = special["bos_token"]
    }

    /// tokenizer.json in a model folder, or nil when the folder has none.
    public static func load(modelDirectory: String) throws -> Tokenizer? {
        let p = URL(fileURLWithPath: modelDirectory).appendingPathComponent(fileName).path
        guard FileManager.default.fileExists(atPath: p) else { return nil }
        return try Tokenizer(file: p)
    }

    /// 1 + the largest id of the vocabulary and added tokens.
    public var vocabularySize: Int { tokenStrings.count }

    /// ids of eos_token (tokenizer_config.json) and of "<|endoftext|>" / "<|im_end|>" when they
    /// are added tokens; no duplicates.
    public var endOfTextIds: [Int32] {
        var ids = [Int32]()
        if let e = eosTokenId { ids.append(e) }
        for name in ["<|endoftext|>", "<|im_end|>"] {
            if let t = addedTokens.first(where: { $0.content == name }), !ids.contains(t.id) { ids.append(t.id) }
        }
        return ids
    }

    /// The vocabulary string of an id (added tokens included), nil if unknown.
    public func piece(_ id: Int32) -> String? {
        id >= 0 && Int(id) < tokenStrings.count ? tokenStrings[Int(id)] : nil
    }

    /// The id of a vocabulary string or added token.
    public func tokenId(_ piece: String) -> Int32? { vocab[piece] }

    // MARK: Encoding

    public func encode(_ text: String) throws -> [Int32] {
        var t = text
        return t.withUTF8 { encodeValid($0, threads: 1) }
    }

    /// Encodes UTF-8 bytes; invalid UTF-8 is refused with the offset of the first bad byte.
    /// threads > 1 splits inputs of parallelThreshold bytes or more at boundaries that cannot
    /// change the result; the ids are the same as with one thread.
    public func encode(utf8 bytes: UnsafeBufferPointer<UInt8>, threads: Int = 1) throws -> [Int32] {
        guard let base = bytes.baseAddress, bytes.count > 0 else { return [] }
        if let bad = UTF8Text.firstInvalid(base, bytes.count) {
            throw TokenizerError("text to encode is not valid UTF-8: byte offset \(bad) (0x\(String(base[bad], radix: 16, uppercase: true)))")
        }
        return encodeValid(bytes, threads: threads)
    }

    func takeWorker() -> BPEWorker {
        poolLock.lock()
        defer { poolLock.unlock() }
        return pool.popLast() ?? BPEWorker(model: model)
    }

    func returnWorker(_ w: BPEWorker) {
        poolLock.lock()
        if pool.count < 64 { pool.append(w) }
        poolLock.unlock()
    }

    private func encodeValid(_ bytes: UnsafeBufferPointer<UInt8>, threads: Int) -> [Int32] {
        guard let p = bytes.baseAddress, bytes.count > 0 else { return [] }
        let n = bytes.count
        if threads > 1 && n >= Self.parallelThreshold { return encodeParallel(p, n, threads: threads) }
        let w = takeWorker()
        defer { returnWorker(w) }
        var out = [Int32]()
        out.reserveCapacity(n / 3 + 16)
        encodeRange(p, 0, n, w, &out)
        return out
    }

    /// p[from..<to]: added tokens, and the text between them through NFC, pre-tokenizer, BPE.
    private func encodeRange(_ p: UnsafePointer<UInt8>, _ from: Int, _ to: Int, _ w: BPEWorker, _ out: inout [Int32]) {
        var pos = from
        while pos < to {
            if let (s, e, id) = matcher.next(p, from: pos, to) {
                if s > pos { encodeText(p + pos, s - pos, w, &out) }
                out.append(id)
                pos = e
            } else {
                encodeText(p + pos, to - pos, w, &out)
                pos = to
            }
        }
    }

    /// Text without added tokens.
    private func encodeText(_ p: UnsafePointer<UInt8>, _ n: Int, _ w: BPEWorker, _ out: inout [Int32]) {
        if normalizeNFC {
            var buffer = w.normalized
            w.normalized = []
            buffer.removeAll(keepingCapacity: true)
            if NFC.normalize(p, n, into: &buffer) {
                buffer.withUnsafeBufferPointer { preTokenize($0.baseAddress!, $0.count, w, &out) }
                w.normalized = buffer
                return
            }
            w.normalized = buffer
        }
        preTokenize(p, n, w, &out)
    }

    private func preTokenize(_ p: UnsafePointer<UInt8>, _ n: Int, _ w: BPEWorker, _ out: inout [Int32]) {
        if n == 0 { return }
        switch preTokenizer {
        case .qwen2:
            var i = 0
            while i < n {
                let j = Qwen2Scanner.next(p, i, n)
                w.encode(p + i, j - i, into: &out)
                i = j
            }
        case .none:
            w.encode(p, n, into: &out)
        case .regex(let re, _):
            var ends = w.pieceEnds
            w.pieceEnds = []
            ends.removeAll(keepingCapacity: true)
            Patterns.split(re, p, n, into: &ends)
            var i = 0
            for e in ends { w.encode(p + i, e - i, into: &out); i = e }
            w.pieceEnds = ends
        }
    }

    // MARK: Threads

    private func encodeParallel(_ p: UnsafePointer<UInt8>, _ n: Int, threads: Int) -> [Int32] {
        let target = max(1 << 16, n / (threads * 4))
        if case .regex = preTokenizer { return encodeParallelPieces(p, n, threads: threads, target: target) }
        // Cut at added-token boundaries and, for the Qwen2 scanner, at "\n" followed by an ASCII
        // letter: no match of the pattern spans it (a match holding "\n" ends at newlines or white
        // space), NFC cannot join across it, and the match at the letter does not look back.
        var cuts = [0]
        var last = 0
        var pos = 0
        let splitText: Bool = { if case .qwen2 = preTokenizer { return true } else { return false } }()
        while pos < n {
            let next = matcher.next(p, from: pos, n)
            let textEnd = next?.0 ?? n
            if splitText {
                var k = max(pos, last + target)
                while k < textEnd {
                    if p[k - 1] == 0x0A && UInt8(truncatingIfNeeded: (p[k] | 0x20) &- 0x61) < 26 {
                        cuts.append(k); last = k; k = last + target
                    } else { k += 1 }
                }
            }
            guard let (_, e, _) = next else { break }
            if e - last >= target && e < n { cuts.append(e); last = e }
            pos = e
        }
        cuts.append(n)
        let jobs = cuts.count - 1
        var results = [[Int32]](repeating: [], count: jobs)
        results.withUnsafeMutableBufferPointer { res in
            let res = res
            runJobs(jobs, threads: threads) { j, w in
                var out = [Int32]()
                out.reserveCapacity((cuts[j + 1] - cuts[j]) / 3 + 16)
                encodeRange(p, cuts[j], cuts[j + 1], w, &out)
                res[j] = out
            }
        }
        return Self.concatenate(results)
    }

    private static func concatenate(_ parts: [[Int32]]) -> [Int32] {
        var out = [Int32]()
        out.reserveCapacity(parts.reduce(0) { $0 + $1.count })
        for part in parts { out.append(contentsOf: part) }
        return out
    }

    /// Runs jobs 0..<jobs on at most `threads` threads (concurrentPerform alone would use every
    /// core), each thread with its own BPE worker, taking the next job as it finishes one.
    private func runJobs(_ jobs: Int, threads: Int, _ body: (Int, BPEWorker) -> Void) {
        final class Counter { var next = 0; let lock = NSLock() }
        let counter = Counter()
        DispatchQueue.concurrentPerform(iterations: max(1, min(threads, jobs))) { _ in
            let w = takeWorker()
            defer { returnWorker(w) }
            while true {
                counter.lock.lock()
                let j = counter.next
                counter.next += 1
                counter.lock.unlock()
                if j >= jobs { return }
                body(j, w)
            }
        }
    }

    /// General pre-tokenizer: NFC and the regex split sequentially (into one buffer of pieces),
    /// then BPE of the pieces in parallel.
    private func encodeParallelPieces(_ p: UnsafePointer<UInt8>, _ n: Int, threads: Int, target: Int) -> [Int32] {
        var text = [UInt8]()
        text.reserveCapacity(n + n / 8)
        var items = [Int]()        // >= 0: end of a piece in `text`; < 0: -(added id) - 1
        var pos = 0
        func addText(_ q: UnsafePointer<UInt8>, _ m: Int) {
            var norm = [UInt8]()
            let src: [UInt8]
            if normalizeNFC && NFC.normalize(q, m, into: &norm) { src = norm } else { src = Array(UnsafeBufferPointer(start: q, count: m)) }
            var ends = [Int]()
            src.withUnsafeBufferPointer { b in
                if case .regex(let re, _) = preTokenizer { Patterns.split(re, b.baseAddress!, b.count, into: &ends) }
            }
            let base = text.count
            text.append(contentsOf: src)
            for e in ends { items.append(base + e) }
        }
        while pos < n {
            if let (s, e, id) = matcher.next(p, from: pos, n) {
                if s > pos { addText(p + pos, s - pos) }
                items.append(-Int(id) - 1)
                pos = e
            } else {
                addText(p + pos, n - pos)
                pos = n
            }
        }
        // Jobs of about `target` bytes of pieces.
        var jobStarts = [0]            // item index
        var byteStarts = [0]           // text offset at the job's first item
        var lastEnd = 0, jobBytes = 0
        for (k, v) in items.enumerated() where v >= 0 {
            jobBytes += v - lastEnd
            lastEnd = v
            if jobBytes >= target && k + 1 < items.count { jobStarts.append(k + 1); byteStarts.append(v); jobBytes = 0 }
        }
        jobStarts.append(items.count)
        let jobs = jobStarts.count - 1
        var results = [[Int32]](repeating: [], count: jobs)
        text.withUnsafeBufferPointer { tb in
            results.withUnsafeMutableBufferPointer { res in
                let res = res
                runJobs(jobs, threads: threads) { j, w in
                    var out = [Int32]()
                    var start = byteStarts[j]
                    for k in jobStarts[j]..<jobStarts[j + 1] {
                        let v = items[k]
                        if v < 0 { out.append(Int32(-v - 1)); continue }
                        if v > start { w.encode(tb.baseAddress! + start, v - start, into: &out) }
                        start = v
                    }
                    res[j] = out
                }
            }
        }
        return Self.concatenate(results)
    }

    // MARK: Decoding

    /// Raw bytes of the ids (a token may end inside a UTF-8 sequence); an unknown id is an error.
    public func decode(_ ids: [Int32]) throws -> [UInt8] {
        var out = [UInt8]()
        out.reserveCapacity(ids.count * 4)
        for (k, id) in ids.enumerated() {
            guard id >= 0, Int(id) < tokenStrings.count, tokenStrings[Int(id)] != nil else {
                throw TokenizerError("decode: id \(id) at position \(k) is not in the vocabulary of \(path) (size \(vocabularySize))")
            }
            if !hasByteLevelDecoder && k > 0 { out.append(0x20) }   // no decoder: HF joins tokens with spaces
            out.append(contentsOf: decodeBytes[decodeOffsets[Int(id)]..<decodeOffsets[Int(id) + 1]])
        }
        return out
    }

    /// The decoded text, invalid UTF-8 replaced by U+FFFD (as HF's decode).
    public func decodeText(_ ids: [Int32]) throws -> String {
        String(decoding: try decode(ids), as: UTF8.self)
    }

    // MARK: Reading the file's parts

    private static func checkToken(_ token: String, id: Int, what: String, _ json: JSONFields) throws {
        if token.utf8.count > 1 << 16 {
            throw json.error("\(what) holds a token of \(token.utf8.count) bytes (\"\(JSONFields.short(token, 40))\"); tokens over 65536 bytes are refused")
        }
        if id < 0 || id >= 1 << 24 {
            throw json.error("\(what): token \"\(JSONFields.short(token, 60))\" has id \(id), outside 0..<\(1 << 24)")
        }
    }

    /// true for NFC; false for none.
    private static func readNormalizer(_ value: Any?, _ json: JSONFields) throws -> Bool {
        if JSONFields.isNull(value) { return false }
        let n = try json.object(value, "normalizer")
        let type = try json.string(n["type"], "normalizer.type")
        switch type {
        case "NFC": return true
        case "Sequence":
            var nfc = false
            for (k, item) in try json.array(n["normalizers"], "normalizer.normalizers").enumerated() {
                let t = try json.string(try json.object(item, "normalizer.normalizers[\(k)]")["type"], "normalizer.normalizers[\(k)].type")
                guard t == "NFC" else { throw json.error("normalizer.normalizers[\(k)]: normalizer type \"\(JSONFields.short(t, 60))\" is not supported (only NFC)") }
                nfc = true
            }
            return nfc
        default:
            throw json.error("normalizer type \"\(JSONFields.short(type, 60))\" is not supported (only NFC, or a Sequence of NFC)")
        }
    }

    private static func readPreTokenizer(_ value: Any?, _ json: JSONFields) throws -> PreTokenizerKind {
        if JSONFields.isNull(value) {
            throw json.error("pre_tokenizer is null; only byte-level pre-tokenizers (ByteLevel, or Split then ByteLevel) are supported")
        }
        let pt = try json.object(value, "pre_tokenizer")
        let type = try json.string(pt["type"], "pre_tokenizer.type")
        var list: [(String, [String: Any])] = []
        if type == "Sequence" {
            for (k, item) in try json.array(pt["pretokenizers"], "pre_tokenizer.pretokenizers").enumerated() {
                let path = "pre_tokenizer.pretokenizers[\(k)]"
                let o = try json.object(item, path)
                list.append((path, o))
            }
        } else {
            list = [("pre_tokenizer", pt)]
        }
        var kind: PreTokenizerKind = .none
        var haveSplit = false
        var byteLevelSeen = false
        for (path, o) in list {
            let t = try json.string(o["type"], "\(path).type")
            if byteLevelSeen {
                throw json.error("\(path): pre-tokenizer \"\(JSONFields.short(t, 60))\" after ByteLevel is not supported (ByteLevel must come last)")
            }
            switch t {
            case "Split":
                if haveSplit { throw json.error("\(path): more than one regex split is not supported") }
                let behavior = try json.string(o["behavior"], "\(path).behavior")
                guard behavior == "Isolated" else {
                    throw json.error("\(path): Split behavior \"\(JSONFields.short(behavior, 60))\" is not supported (only Isolated)")
                }
                if try json.bool(o["invert"], "\(path).invert", default: false) {
                    throw json.error("\(path): Split invert true is not supported")
                }
                let pat = try json.object(o["pattern"], "\(path).pattern")
                if let r = pat["Regex"] {
                    let s = try json.string(r, "\(path).pattern.Regex")
                    kind = s == Patterns.qwen2 ? .qwen2 : .regex(try Patterns.compile(s, file: json.file, isLiteral: false), source: s)
                } else if let lit = pat["String"] {
                    let s = try json.string(lit, "\(path).pattern.String")
                    if s.isEmpty { throw json.error("\(path): an empty Split String pattern is not supported") }
                    kind = .regex(try Patterns.compile(s, file: json.file, isLiteral: true), source: s)
                } else {
                    throw json.error("\(path).pattern is neither {\"Regex\": ...} nor {\"String\": ...}")
                }
                haveSplit = true
            case "ByteLevel":
                if try json.bool(o["add_prefix_space"], "\(path).add_prefix_space", default: true) {
                    throw json.error("\(path): ByteLevel add_prefix_space true is not supported")
                }
                if try json.bool(o["use_regex"], "\(path).use_regex", default: true) {
                    if haveSplit { throw json.error("\(path): ByteLevel use_regex true after a Split is not supported") }
                    kind = .regex(try Patterns.compile(Patterns.gpt2, file: json.file, isLiteral: false), source: Patterns.gpt2)
                }
                byteLevelSeen = true
            default:
                throw json.error("\(path): pre-tokenizer type \"\(JSONFields.short(t, 60))\" is not supported (only Split and ByteLevel)")
            }
        }
        if !byteLevelSeen {
            throw json.error("pre_tokenizer has no ByteLevel step; only byte-level BPE is supported")
        }
        return kind
    }

    private static func readDecoder(_ value: Any?, _ json: JSONFields) throws -> Bool {
        if JSONFields.isNull(value) { return false }
        let t = try json.string(try json.object(value, "decoder")["type"], "decoder.type")
        guard t == "ByteLevel" else { throw json.error("decoder type \"\(JSONFields.short(t, 60))\" is not supported (only ByteLevel or null)") }
        return true
    }

    private static func readPostProcessor(_ value: Any?, _ json: JSONFields) throws {
        if JSONFields.isNull(value) { return }
        let t = try json.string(try json.object(value, "post_processor")["type"], "post_processor.type")
        guard t == "ByteLevel" else {
            throw json.error("post_processor type \"\(JSONFields.short(t, 60))\" is not supported (only ByteLevel or null, which add no ids)")
        }
    }
}
