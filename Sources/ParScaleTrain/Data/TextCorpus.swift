import Foundation
import ParScale

/// A problem with the training data, with the path and what was expected.
public struct DataError: Error, CustomStringConvertible {
    public let message: String
    public init(_ message: String) { self.message = message }
    public var description: String { message }
}

/// UTF-8 text from a file or a folder, split deterministically into training and validation bytes.
///
/// A folder is read recursively: regular files only (symbolic links, devices and the like are
/// skipped), no hidden files or folders (names starting with "."), no file over 16 MB, no file that
/// is not valid UTF-8 or contains NUL bytes; files in byte order of their relative paths. Each file
/// is followed by "\n".
///
/// Split: with several files, a file goes to validation when FNV-1a(relative path) % 20 == 0; if
/// that leaves either side with fewer than `minimumBytes` bytes, or with one file, the last 5% of
/// the concatenated bytes (at least `minimumBytes`, at most half) are validation.
public struct TextCorpus: Sendable {
    public static let maximumFileBytes = 16 << 20

    public let path: String
    /// Concatenated bytes of the training files (each file followed by "\n").
    public let train: [UInt8]
    public let validation: [UInt8]
    /// Files read (hidden, binary, non-UTF-8 and oversized files are not counted).
    public let fileCount: Int
    /// Relative paths of the files read, in order (for a single file, its name).
    public let files: [String]
    /// Whether the split is by file (hash of the relative path) rather than the last bytes.
    public let splitByFile: Bool

    public init(path: String, minimumBytes: Int = 4096) throws {
        if path == Self.builtinCode {
            self = try Self.loadBuiltinCode(minimumBytes: minimumBytes)
            return
        }
        let minimum = max(1, minimumBytes)
        let fm = FileManager.default
        var isDirectory: ObjCBool = false
        guard !path.isEmpty, fm.fileExists(atPath: path, isDirectory: &isDirectory) else {
            throw DataError("\(path.isEmpty ? "(empty path)" : path): no such file or folder (expected a UTF-8 text file or a folder of them)")
        }
        var read: [(relative: String, bytes: [UInt8])] = []
        if isDirectory.boolValue {
            var candidates: [String] = []
            Self.collect(root: path, relative: "", into: &candidates)
            candidates.sort { $0.utf8.lexicographicallyPrecedes($1.utf8) }
            for relative in candidates {
                if let bytes = Self.readText((path as NSString).appendingPathComponent(relative)) {
                    read.append((relative, bytes))
                }
            }
            guard !read.isEmpty else {
                throw DataError(
                    "\(path): no readable text files (expected regular, non-hidden files of valid UTF-8 under 16 MB; "
                        + "\(candidates.count) candidate file\(candidates.count == 1 ? "" : "s") skipped)")
            }
        } else {
            guard let bytes = Self.readText(path) else {
                throw DataError("\(path): not readable as text (expected a file of valid UTF-8 without NUL bytes, at most 16 MB)")
            }
            read.append(((path as NSString).lastPathComponent, bytes))
        }
        try self.init(path: path, read: read, minimum: minimum)
    }

    /// The split by file: a file (by its path relative to the corpus folder) is validation when
    /// FNV-1a(path) % 20 == 0 ...
    static func isValidationFile(_ relative: String) -> Bool { FNV1a.hash(relative.utf8) % 20 == 0 }

    /// ... and that split is used when there are several files and both sides get `minimum` bytes.
    static func splitsByFile(files: Int, train: Int, validation: Int, minimum: Int) -> Bool {
        files > 1 && train >= minimum && validation >= minimum
    }

    /// Splits files already read (sorted by relative path) into training and validation text.
    private init(path: String, read: [(relative: String, bytes: [UInt8])], minimum: Int) throws {
        let total = read.reduce(0) { $0 + $1.bytes.count + 1 }
        guard total >= 2 * minimum else {
            throw DataError(
                "\(path): only \(total) bytes of text in \(read.count) file\(read.count == 1 ? "" : "s"); "
                    + "expected at least \(2 * minimum) (\(minimum) each for training and validation)")
        }

        var train: [UInt8] = [], validation: [UInt8] = []
        var byFile = false
        if read.count > 1 {
            for file in read {
                if Self.isValidationFile(file.relative) {
                    validation += file.bytes
                    validation.append(10)
                } else {
                    train += file.bytes
                    train.append(10)
                }
            }
            byFile = Self.splitsByFile(files: read.count, train: train.count, validation: validation.count, minimum: minimum)
        }
        if !byFile {
            var all: [UInt8] = []
            all.reserveCapacity(total)
            for file in read {
                all += file.bytes
                all.append(10)
            }
            let validationCount = min(max(total / 20, minimum), total / 2)
            train = Array(all[0..<(total - validationCount)])
            validation = Array(all[(total - validationCount)...])
        }
        self.path = path
        self.train = train
        self.validation = validation
        self.fileCount = read.count
        self.files = read.map(\.relative)
        self.splitByFile = byFile
    }

    /// `--corpus code`: the Swift toolchain's own `.swiftinterface` files, present wherever this
    /// project builds, so the code corpus needs no download. The toolchain is found from
    /// PARSCALE_CODE_CORPUS, the `swift` on PATH, or /opt/swift and /usr.
    ///
    /// Exact duplicates are dropped, and so is `X.private.swiftinterface` where `X.swiftinterface`
    /// exists (a near-copy of it): about 6 MB of Swift declarations remain. The split is i.i.d.:
    /// the text is cut into 4 KiB blocks and block i is validation when FNV-1a("block i") % 20 == 0.
    /// (Splitting by file would leave a few whole modules, unlike the rest, as the validation set:
    /// measured, their seed-to-seed spread hid effects of 0.01-0.02 nats.)
    public static let builtinCode = "builtin:code"
    static let codeBlockBytes = 4096

    static func builtinCodeRoot() -> String? {
        var candidates: [String] = []
        if let override = ProcessInfo.processInfo.environment["PARSCALE_CODE_CORPUS"] { candidates.append(override) }
        for dir in (ProcessInfo.processInfo.environment["PATH"] ?? "").split(separator: ":") {
            let swift = URL(fileURLWithPath: String(dir)).appendingPathComponent("swift")
            if FileManager.default.isExecutableFile(atPath: swift.path) {
                candidates.append(swift.resolvingSymlinksInPath().deletingLastPathComponent().deletingLastPathComponent()
                    .appendingPathComponent("lib/swift").path)
            }
        }
        candidates += ["/opt/swift/usr/lib/swift", "/usr/lib/swift"]
        return candidates.first { root in
            var isDirectory: ObjCBool = false
            return FileManager.default.fileExists(atPath: root, isDirectory: &isDirectory) && isDirectory.boolValue
        }
    }

    static func loadBuiltinCode(minimumBytes: Int) throws -> TextCorpus {
        guard let root = builtinCodeRoot() else {
            throw DataError("--corpus code: no Swift toolchain found (set PARSCALE_CODE_CORPUS to its usr/lib/swift folder)")
        }
        var candidates: [String] = []
        collect(root: root, relative: "", into: &candidates)
        candidates = candidates.filter { $0.hasSuffix(".swiftinterface") }
        let present = Set(candidates)
        candidates = candidates.filter { path in
            !(path.hasSuffix(".private.swiftinterface")
                && present.contains(String(path.dropLast(".private.swiftinterface".count)) + ".swiftinterface"))
        }
        candidates.sort { $0.utf8.lexicographicallyPrecedes($1.utf8) }
        var seen = Set<UInt64>()
        var all: [UInt8] = [], files: [String] = []
        for relative in candidates {
            guard let bytes = readText((root as NSString).appendingPathComponent(relative)) else { continue }
            if seen.insert(FNV1a.hash(bytes)).inserted {  // drop duplicate files
                all += bytes
                all.append(10)
                files.append(relative)
            }
        }
        var train: [UInt8] = [], validation: [UInt8] = []
        for (i, start) in stride(from: 0, to: all.count, by: codeBlockBytes).enumerated() {
            let block = all[start..<min(all.count, start + codeBlockBytes)]
            if FNV1a.hash("block \(i)") % 20 == 0 { validation += block } else { train += block }
        }
        guard train.count >= minimumBytes, validation.count >= minimumBytes else {
            throw DataError("--corpus code: only \(all.count) bytes of .swiftinterface text under \(root); expected at least \(20 * minimumBytes)")
        }
        return TextCorpus(path: builtinCode, train: train, validation: validation, files: files)
    }

    private init(path: String, train: [UInt8], validation: [UInt8], files: [String]) {
        self.path = path
        self.train = train
        self.validation = validation
        self.fileCount = files.count
        self.files = files
        self.splitByFile = false
    }

    /// Relative paths of the regular, non-hidden files under `root`/`relative`.
    static func collect(root: String, relative: String, into out: inout [String]) {
        let fm = FileManager.default
        let directory = relative.isEmpty ? root : (root as NSString).appendingPathComponent(relative)
        guard let names = try? fm.contentsOfDirectory(atPath: directory) else { return }
        for name in names where !name.hasPrefix(".") {
            let child = relative.isEmpty ? name : relative + "/" + name
            // attributesOfItem does not follow symbolic links, so links are neither files nor folders here.
            guard let attributes = try? fm.attributesOfItem(atPath: (root as NSString).appendingPathComponent(child)),
                let type = attributes[.type] as? FileAttributeType
            else { continue }
            if type == .typeDirectory {
                collect(root: root, relative: child, into: &out)
            } else if type == .typeRegular {
                out.append(child)
            }
        }
    }

    /// The file's bytes if it is at most `maximumBytes` (16 MB) of valid UTF-8 without NUL bytes.
    static func readText(_ path: String, maximumBytes: Int = maximumFileBytes) -> [UInt8]? {
        let fm = FileManager.default
        if let size = (try? fm.attributesOfItem(atPath: path))?[.size] as? NSNumber, size.intValue > maximumBytes {
            return nil
        }
        guard let data = fm.contents(atPath: path), data.count <= maximumBytes else { return nil }
        let bytes = [UInt8](data)
        guard !bytes.contains(0), isValidUTF8(bytes) else { return nil }
        return bytes
    }

    static func isValidUTF8(_ bytes: [UInt8]) -> Bool {
        var iterator = bytes.makeIterator()
        var decoder = UTF8()
        while true {
            switch decoder.decode(&iterator) {
            case .scalarValue: continue
            case .emptyInput: return true
            case .error: return false
            }
        }
    }
}
