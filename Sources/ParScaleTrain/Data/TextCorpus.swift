import Foundation

public struct DataError: Error, CustomStringConvertible {
    public let message: String
    public init(_ message: String) { self.message = message }
    public var description: String { message }
}

/// UTF-8 text from a file or a folder (recursive), as bytes, split deterministically into
/// training and validation text.
public struct TextCorpus: Sendable {
    public let train: [UInt8]
    public let validation: [UInt8]
    public let fileCount: Int

    static let maximumFileBytes = 16 << 20

    /// Folder: regular files in sorted order, skipping hidden ones, files over 16 MB and files
    /// that are not UTF-8; a file goes to validation when the hash of its relative path is 0 mod 20.
    /// One file (or a split that leaves either side empty): the last 5% of the bytes are validation.
    public init(path: String, minimumBytes: Int = 4096) throws {
        let fm = FileManager.default
        var isDirectory: ObjCBool = false
        guard fm.fileExists(atPath: path, isDirectory: &isDirectory) else {
            throw DataError("--data \(path): no such file or folder (expected UTF-8 text, or a folder of text files)")
        }
        var files: [(relative: String, bytes: [UInt8])] = []
        func add(_ full: String, relative: String) {
            guard let attributes = try? fm.attributesOfItem(atPath: full),
                attributes[.type] as? FileAttributeType == .typeRegular,
                (attributes[.size] as? Int ?? 0) <= Self.maximumFileBytes,
                let data = fm.contents(atPath: full), !data.isEmpty,
                String(validating: data, as: UTF8.self) != nil
            else { return }
            files.append((relative, Array(data)))
        }
        if isDirectory.boolValue {
            guard let walker = fm.enumerator(atPath: path) else {
                throw DataError("--data \(path): cannot list the folder")
            }
            var relatives: [String] = []
            while let relative = walker.nextObject() as? String {
                if relative.split(separator: "/").contains(where: { $0.hasPrefix(".") }) { continue }
                relatives.append(relative)
            }
            for relative in relatives.sorted() { add((path as NSString).appendingPathComponent(relative), relative: relative) }
        } else {
            add(path, relative: (path as NSString).lastPathComponent)
        }
        guard !files.isEmpty else {
            throw DataError("--data \(path): no readable UTF-8 text file (hidden, binary and >16 MB files are skipped)")
        }
        let total = files.reduce(0) { $0 + $1.bytes.count + 1 }
        guard total >= 2 * minimumBytes else {
            throw DataError("--data \(path): only \(total) bytes of text; at least \(2 * minimumBytes) are needed for a training and a validation split")
        }
        var train: [UInt8] = [], validation: [UInt8] = []
        for file in files {
            if fnv1a(file.relative.utf8) % 20 == 0 {
                validation += file.bytes + [10]
            } else {
                train += file.bytes + [10]
            }
        }
        if files.count == 1 || train.count < minimumBytes || validation.count < minimumBytes {
            let all: [UInt8] = files.flatMap { $0.bytes + [UInt8(10)] }
            let held = max(all.count / 20, min(minimumBytes, all.count / 2))
            train = Array(all[..<(all.count - held)])
            validation = Array(all[(all.count - held)...])
        }
        self.train = train
        self.validation = validation
        fileCount = files.count
    }
}
