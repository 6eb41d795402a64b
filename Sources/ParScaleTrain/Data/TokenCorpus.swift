import Foundation
import ParScale

#if canImport(Glibc)
import Glibc
#endif

/// Token ids held in memory or memory-mapped from a token cache file.
public final class TokenIds: @unchecked Sendable {
    public let count: Int
    let base: UnsafePointer<Int32>
    private let owner: AnyObject?  // keeps a mapping alive
    private let allocated: UnsafeMutablePointer<Int32>?

    public init(_ ids: [Int32]) {
        let p = UnsafeMutablePointer<Int32>.allocate(capacity: max(1, ids.count))
        ids.withUnsafeBufferPointer { if let b = $0.baseAddress { p.initialize(from: b, count: ids.count) } }
        count = ids.count
        base = UnsafePointer(p)
        allocated = p
        owner = nil
    }

    init(mapping: MappedFile, byteOffset: Int, count: Int) {
        self.count = count
        base = (mapping.base + byteOffset).assumingMemoryBound(to: Int32.self)
        owner = mapping
        allocated = nil
    }

    deinit { allocated?.deallocate() }

    public subscript(i: Int) -> Int32 { base[i] }

    /// Ids [start, start + n) as an array.
    public func slice(_ start: Int, _ n: Int) -> [Int32] { Array(UnsafeBufferPointer(start: base + start, count: n)) }
}

/// A read-only memory mapping of a whole file.
final class MappedFile {
    let base: UnsafeRawPointer
    let length: Int

    init(path: String) throws {
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { throw DataError("\(path): cannot open (\(String(cString: strerror(errno))))") }
        defer { close(fd) }
        var st = stat()
        guard fstat(fd, &st) == 0 else { throw DataError("\(path): cannot stat") }
        length = Int(st.st_size)
        guard length > 0 else {
            base = UnsafeRawPointer(bitPattern: 8)!  // never read: count is 0
            return
        }
        guard let p = mmap(nil, length, PROT_READ, MAP_PRIVATE, fd, 0), p != UnsafeMutableRawPointer(bitPattern: -1) else {
            throw DataError("\(path): cannot map into memory (\(String(cString: strerror(errno))))")
        }
        base = UnsafeRawPointer(p)
    }

    deinit { if length > 0 { munmap(UnsafeMutableRawPointer(mutating: base), length) } }
}

/// The training and validation token ids of a text corpus: its bytes for a byte-level model, or the
/// ids of the model's tokenizer. Tokenized corpora are made once into a cache of token ids (keyed by
/// the tokenizer's fingerprint and the data's content hash) and memory-mapped, so a large folder
/// never sits in memory as text.
public final class TokenCorpus: @unchecked Sendable {
    public let path: String
    /// "bytes" or the tokenizer's fingerprint.
    public let encoding: String
    public let train: TokenIds
    public let validation: TokenIds
    /// UTF-8 bytes of the validation text: bits per byte = nats per token / ln 2 / bytes per token.
    public let validationBytes: Int
    /// FNV-1a (hex) of the text the corpus was made from: relative paths and contents (SplitPlan);
    /// nil for a corpus not made by `load`.
    public let contentHash: String?

    public var bytesPerToken: Double { validation.count > 0 ? Double(validationBytes) / Double(validation.count) : 1 }

    init(path: String, encoding: String, train: TokenIds, validation: TokenIds, validationBytes: Int, contentHash: String?) {
        self.path = path
        self.contentHash = contentHash
        self.encoding = encoding
        self.train = train
        self.validation = validation
        self.validationBytes = validationBytes
    }

    /// A byte-level corpus: each byte is a token.
    public convenience init(bytes corpus: TextCorpus, contentHash: String? = nil) {
        self.init(
            path: corpus.path, encoding: "bytes", train: TokenIds(corpus.train.map { Int32($0) }),
            validation: TokenIds(corpus.validation.map { Int32($0) }), validationBytes: corpus.validation.count,
            contentHash: contentHash)
    }

    /// Largest file a tokenized corpus reads (one at a time); byte-level corpora keep TextCorpus's 16 MB.
    public static let maximumTokenizedFileBytes = 1 << 30

    /// `path` (a file, a folder or `TextCorpus.builtinCode`) in `encoding`. With a tokenizer and a
    /// `cacheDirectory`, the ids are made once into `cacheDirectory/tokens-KEY.*` and mapped from
    /// there on every later call; `progress` gets a line about once a second while tokenizing.
    /// The split is TextCorpus's: by file (FNV-1a of the relative path) when there are several files
    /// and both sides get `minimumBytes`, else the last 5% of the bytes (read in memory).
    /// `validationOnly` (evaluation) leaves the training split empty and does not tokenize it.
    public static func load(
        path: String, encoding: TextEncoding, cacheDirectory: String?, minimumBytes: Int = 4096,
        validationOnly: Bool = false, progress: ((String) -> Void)? = nil
    ) throws -> TokenCorpus {
        let plan = try SplitPlan(path: path, minimumBytes: minimumBytes)
        let contentHash = String(format: "%016llx", plan.fingerprint)
        guard let tokenizer = encoding.tokenizer else {
            return TokenCorpus(bytes: try TextCorpus(path: path, minimumBytes: minimumBytes), contentHash: contentHash)
        }
        let key = String(format: "%016llx", FNV1a.hash("\(tokenizer.fingerprint) \(plan.fingerprint)\(validationOnly ? " validation" : "")"))
        if let cacheDirectory, let cached = try? Self.mapCache(
            cacheDirectory, key: key, path: path, encoding: tokenizer.fingerprint, contentHash: contentHash)
        {
            return cached
        }
        var sink = TokenSink(cacheDirectory: cacheDirectory, key: key)
        var meter = ProgressMeter(
            total: validationOnly ? plan.validationBytes : plan.totalBytes, label: "tokenizing \(path)", progress: progress)
        func add(_ bytes: [UInt8], validation: Bool) throws {
            let ids = try bytes.withUnsafeBufferPointer { try tokenizer.encode(utf8: $0, threads: 2) }
            try sink.append(ids, bytes: bytes.count, validation: validation)
            meter.advance(bytes.count)
        }
        if plan.inMemory {
            let text = try TextCorpus(path: path, minimumBytes: minimumBytes)
            if !validationOnly { try add(text.train, validation: false) }
            try add(text.validation, validation: true)
        } else {
            for file in plan.files where file.validation || !validationOnly {
                let full = plan.isFolder ? (path as NSString).appendingPathComponent(file.relative) : path
                guard var bytes = TextCorpus.readText(full, maximumBytes: maximumTokenizedFileBytes) else {
                    throw DataError("\(full): changed while being read (no longer valid UTF-8 text)")
                }
                bytes.append(10)
                try add(bytes, validation: file.validation)
            }
        }
        meter.finish()
        let corpus = try sink.finish(path: path, encoding: tokenizer.fingerprint, contentHash: contentHash)
        guard corpus.train.count > 1 || validationOnly, corpus.validation.count > 1 else {
            throw DataError("\(path): too little text after tokenizing (\(corpus.train.count) training and \(corpus.validation.count) validation tokens)")
        }
        return corpus
    }

    static func cachePaths(_ directory: String, key: String) -> (train: String, validation: String, meta: String) {
        let stem = (directory as NSString).appendingPathComponent("tokens-\(key)")
        return (stem + ".train.bin", stem + ".validation.bin", stem + ".json")
    }

    /// The cache of `key`, if complete (its .json is written last).
    static func mapCache(_ directory: String, key: String, path: String, encoding: String, contentHash: String) throws -> TokenCorpus {
        let paths = cachePaths(directory, key: key)
        guard let data = FileManager.default.contents(atPath: paths.meta),
            let meta = try JSONSerialization.jsonObject(with: data) as? [String: Any],
            let trainCount = meta["train_tokens"] as? Int, let validationCount = meta["validation_tokens"] as? Int,
            let validationBytes = meta["validation_bytes"] as? Int
        else { throw DataError("\(paths.meta): no complete token cache") }
        let train = try MappedFile(path: paths.train), validation = try MappedFile(path: paths.validation)
        guard train.length == 4 * trainCount, validation.length == 4 * validationCount else {
            throw DataError("\(paths.meta): token cache files have the wrong size")
        }
        return TokenCorpus(
            path: path, encoding: encoding, train: TokenIds(mapping: train, byteOffset: 0, count: trainCount),
            validation: TokenIds(mapping: validation, byteOffset: 0, count: validationCount), validationBytes: validationBytes,
            contentHash: contentHash)
    }
}

/// Which files of a corpus go to training and validation, decided before any tokenizing, and a
/// fingerprint of the data (relative paths and contents).
struct SplitPlan {
    struct File {
        let relative: String
        let validation: Bool
    }
    let files: [File]
    let isFolder: Bool
    /// The split needs the whole text (one file, or too little on one side): TextCorpus in memory.
    let inMemory: Bool
    let totalBytes: Int
    let validationBytes: Int
    let fingerprint: UInt64

    init(path: String, minimumBytes: Int) throws {
        var isDirectory: ObjCBool = false
        if path == TextCorpus.builtinCode {
            (files, isFolder, inMemory, totalBytes, validationBytes) = ([], false, true, 0, 0)
            fingerprint = FNV1a.hash(path)
            return
        }
        guard !path.isEmpty, FileManager.default.fileExists(atPath: path, isDirectory: &isDirectory) else {
            throw DataError("\(path.isEmpty ? "(empty path)" : path): no such file or folder (expected a UTF-8 text file or a folder of them)")
        }
        isFolder = isDirectory.boolValue
        var relatives: [String] = []
        if isFolder {
            TextCorpus.collect(root: path, relative: "", into: &relatives)
            relatives.sort { $0.utf8.lexicographicallyPrecedes($1.utf8) }
        } else {
            relatives = [(path as NSString).lastPathComponent]
        }
        var hash = FNV1a.offsetBasis
        var kept: [File] = [], sides = (train: 0, validation: 0)
        for relative in relatives {
            let full = isFolder ? (path as NSString).appendingPathComponent(relative) : path
            guard let bytes = TextCorpus.readText(full, maximumBytes: TokenCorpus.maximumTokenizedFileBytes) else { continue }
            let validation = TextCorpus.isValidationFile(relative)
            kept.append(File(relative: relative, validation: validation))
            hash = FNV1a.hash(relative.utf8, seed: hash)
            hash = FNV1a.hash(bytes, seed: hash)
            if validation { sides.validation += bytes.count + 1 } else { sides.train += bytes.count + 1 }
        }
        guard !kept.isEmpty else {
            throw DataError("\(path): no readable text files (expected regular, non-hidden files of valid UTF-8 without NUL bytes)")
        }
        files = kept
        totalBytes = sides.train + sides.validation
        validationBytes = sides.validation
        inMemory = !TextCorpus.splitsByFile(
            files: kept.count, train: sides.train, validation: sides.validation, minimum: minimumBytes)
        fingerprint = hash
    }
}

/// Appends token ids to the cache files (or memory when there is no cache folder).
struct TokenSink {
    let cacheDirectory: String?
    let key: String
    let paths: (train: String, validation: String, meta: String)?
    var handles: (train: FileHandle, validation: FileHandle)?
    var memory: (train: [Int32], validation: [Int32]) = ([], [])
    var counts = (train: 0, validation: 0, validationBytes: 0)

    init(cacheDirectory: String?, key: String) {
        self.cacheDirectory = cacheDirectory
        self.key = key
        paths = cacheDirectory.map { TokenCorpus.cachePaths($0, key: key) }
    }

    mutating func append(_ ids: [Int32], bytes: Int, validation: Bool) throws {
        if validation {
            counts.validation += ids.count
            counts.validationBytes += bytes
        } else {
            counts.train += ids.count
        }
        guard let paths else {
            if validation { memory.validation += ids } else { memory.train += ids }
            return
        }
        if handles == nil {
            try FileManager.default.createDirectory(
                atPath: (paths.meta as NSString).deletingLastPathComponent, withIntermediateDirectories: true)
            for p in [paths.train, paths.validation] {
                guard FileManager.default.createFile(atPath: p + ".tmp", contents: nil) else {
                    throw DataError("\(p).tmp: cannot create the token cache")
                }
            }
            handles = (try FileHandle(forWritingTo: URL(fileURLWithPath: paths.train + ".tmp")),
                       try FileHandle(forWritingTo: URL(fileURLWithPath: paths.validation + ".tmp")))
        }
        let data = ids.withUnsafeBytes { Data($0) }  // little-endian int32 on every supported machine
        try (validation ? handles!.validation : handles!.train).write(contentsOf: data)
    }

    mutating func finish(path: String, encoding: String, contentHash: String) throws -> TokenCorpus {
        guard let paths else {
            return TokenCorpus(
                path: path, encoding: encoding, train: TokenIds(memory.train), validation: TokenIds(memory.validation),
                validationBytes: counts.validationBytes, contentHash: contentHash)
        }
        if handles == nil { try append([], bytes: 0, validation: false) }
        try handles!.train.close()
        try handles!.validation.close()
        for p in [paths.train, paths.validation] {
            if rename(p + ".tmp", p) != 0 { throw DataError("\(p): cannot write the token cache (\(String(cString: strerror(errno))))") }
        }
        let meta: [String: Any] = [
            "data": path, "tokenizer": encoding, "train_tokens": counts.train, "validation_tokens": counts.validation,
            "validation_bytes": counts.validationBytes,
        ]
        try atomicWrite(try JSONSerialization.data(withJSONObject: meta, options: [.sortedKeys]), to: paths.meta)
        return try TokenCorpus.mapCache(cacheDirectory!, key: key, path: path, encoding: encoding, contentHash: contentHash)
    }
}

/// "tokenizing DATA: 120/3000 MB (4%), 5.1 MB/s, ETA 9m 24s", about once a second.
struct ProgressMeter {
    let total: Int
    let label: String
    let progress: ((String) -> Void)?
    var done = 0
    let start = Date()
    var last = Date()

    init(total: Int, label: String, progress: ((String) -> Void)?) {
        self.total = total
        self.label = label
        self.progress = progress
    }

    mutating func advance(_ bytes: Int) {
        done += bytes
        guard let progress, Date().timeIntervalSince(last) >= 1 else { return }
        last = Date()
        progress(line())
    }

    func finish() { progress?(line() + " done") }

    func line() -> String {
        let seconds = max(1e-9, Date().timeIntervalSince(start))
        let rate = Double(done) / seconds
        let mb = 1e6
        var text = String(format: "%@: %.1f MB, %.2f MB/s", label, Double(done) / mb, rate / mb)
        if total > 0 {
            text += String(format: " of %.1f MB (%.0f%%)", Double(total) / mb, 100 * Double(done) / Double(total))
            if rate > 0 && done < total { text += ", ETA " + formatDuration(Double(total - done) / rate) }
        }
        return text
    }
}
