import Foundation

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// A failed file write; `description` is "<path>: <message>".
public struct AtomicWriteError: Error, CustomStringConvertible, LocalizedError {
    public let path: String
    public let message: String

    public init(path: String, _ message: String) {
        self.path = path
        self.message = message
    }

    public var description: String { "\(path): \(message)" }
    public var errorDescription: String? { description }
}

/// The text of the current `errno`.
func errnoText(_ code: Int32 = errno) -> String {
    String(cString: strerror(code))
}

/// Writes `data` to `path` via a temp file in the same directory + fsync + rename, so a killed
/// process never leaves a half-written file at `path`. Errors name the path.
public func atomicWrite(_ data: Data, to path: String) throws {
    let url = URL(fileURLWithPath: path)
    let dir = url.deletingLastPathComponent().path
    let base = url.lastPathComponent
    guard !base.isEmpty, base != "/", !path.hasSuffix("/") else {
        throw AtomicWriteError(path: path, "cannot write: the path names a folder, not a file")
    }
    var isDir: ObjCBool = false
    if FileManager.default.fileExists(atPath: path, isDirectory: &isDir), isDir.boolValue {
        throw AtomicWriteError(path: path, "cannot write: a folder already exists at this path")
    }

    let tempPath = (dir as NSString).appendingPathComponent(
        ".\(base).tmp-\(getpid())-\(UInt32.random(in: 0...UInt32.max))")
    let fd = open(tempPath, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0o644)
    guard fd >= 0 else {
        throw AtomicWriteError(
            path: path, "cannot create a temporary file in '\(dir)': \(errnoText())")
    }
    var fdOpen = true
    var renamed = false
    defer {
        if fdOpen { close(fd) }
        if !renamed { unlink(tempPath) }
    }

    try data.withUnsafeBytes { (raw: UnsafeRawBufferPointer) in
        var offset = 0
        while offset < raw.count {
            let n = write(fd, raw.baseAddress! + offset, raw.count - offset)
            if n < 0 {
                let code = errno
                if code == EINTR { continue }
                throw AtomicWriteError(
                    path: path, "write failed after \(offset) of \(raw.count) bytes: \(errnoText(code))")
            }
            offset += n
        }
    }
    while fsync(fd) != 0 {
        let code = errno
        if code == EINTR { continue }
        throw AtomicWriteError(path: path, "fsync failed: \(errnoText(code))")
    }
    fdOpen = false
    if close(fd) != 0 {
        throw AtomicWriteError(path: path, "close failed: \(errnoText())")
    }
    guard rename(tempPath, path) == 0 else {
        throw AtomicWriteError(path: path, "cannot move the temporary file into place: \(errnoText())")
    }
    renamed = true
    // Make the rename itself durable (best effort: some file systems refuse fsync on folders).
    let dirFD = open(dir.isEmpty ? "." : dir, O_RDONLY | O_CLOEXEC)
    if dirFD >= 0 {
        _ = fsync(dirFD)
        close(dirFD)
    }
}
