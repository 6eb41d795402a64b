import Foundation

/// A folder of this fuzzing process, where each input is written as the file a parser reads.
public let fuzzDirectory: String = {
    let dir = (NSTemporaryDirectory() as NSString).appendingPathComponent("parscale-fuzz-\(getpid())")
    try? FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
    return dir
}()

/// `name` in `fuzzDirectory`.
public func fuzzPath(_ name: String) -> String { (fuzzDirectory as NSString).appendingPathComponent(name) }

/// Writes `bytes` to `fuzzPath(name)` (replacing it) and returns the path.
@discardableResult
public func writeInput(_ bytes: UnsafeBufferPointer<UInt8>, as name: String) -> String {
    let path = fuzzPath(name)
    let ok = FileManager.default.createFile(atPath: path, contents: Data(buffer: bytes))
    precondition(ok, "cannot write \(path)")
    return path
}

/// The input split at the first occurrence of `separator`: (before, after), or (all, nil).
public func split(_ bytes: UnsafeBufferPointer<UInt8>, at separator: [UInt8]) -> (UnsafeBufferPointer<UInt8>, UnsafeBufferPointer<UInt8>?) {
    let n = separator.count
    if bytes.count >= n {
        for i in 0...(bytes.count - n) where bytes[i] == separator[0] {
            if Array(bytes[i..<(i + n)]) == separator {
                return (UnsafeBufferPointer(rebasing: bytes[..<i]), UnsafeBufferPointer(rebasing: bytes[(i + n)...]))
            }
        }
    }
    return (bytes, nil)
}

/// Runs `body`; a thrown error is a fine answer to a bad file (only crashes, traps and hangs are findings).
public func expectErrorOrSuccess(_ body: () throws -> Void) {
    do { try body() } catch { _ = "\(error)" }  // the message must be printable too
}
