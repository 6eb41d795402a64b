import Foundation
import XCTest

/// How a run of the `parscale` binary ended.
struct CLIRun {
    let status: Int32
    let out: String
    let err: String
}

extension XCTestCase {
    /// The built executable sits beside the test bundle.
    var binary: URL {
        var dir = Bundle(for: type(of: self)).bundleURL
        while !FileManager.default.fileExists(atPath: dir.appendingPathComponent("parscale").path), dir.path != "/" {
            dir = dir.deletingLastPathComponent()
        }
        return dir.appendingPathComponent("parscale")
    }

    /// Runs `parscale args` as a user would (or `wrapper + [binary] + args`: setpriv, a shell with
    /// a ulimit) to its end.
    @discardableResult
    func parscale(_ args: [String], wrapper: [String] = []) throws -> CLIRun {
        let process = Process()
        if let first = wrapper.first {
            process.executableURL = URL(fileURLWithPath: first)
            process.arguments = Array(wrapper.dropFirst()) + [binary.path] + args
        } else {
            process.executableURL = binary
            process.arguments = args
        }
        let out = Pipe(), err = Pipe()
        process.standardOutput = out
        process.standardError = err
        try process.run()
        let outData = out.fileHandleForReading.readDataToEndOfFile()
        let errData = err.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        return CLIRun(
            status: process.terminationStatus, out: String(decoding: outData, as: UTF8.self),
            err: String(decoding: errData, as: UTF8.self))
    }
}
