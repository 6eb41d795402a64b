import Foundation
import XCTest

@testable import ParScale

/// Paths shared by the tests: the package root and ../shared/reference beside it.
enum TestPaths {
    static let packageRoot = URL(fileURLWithPath: #filePath)
        .deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
    static let reference: URL = {
        if let dir = ProcessInfo.processInfo.environment["PARSCALE_REFERENCE_DIR"] {
            return URL(fileURLWithPath: dir)
        }
        return packageRoot.deletingLastPathComponent().appendingPathComponent("shared/reference")
    }()
    static var referenceModels: [URL] {
        let names = (try? FileManager.default.contentsOfDirectory(atPath: reference.path)) ?? []
        return names.sorted().map { reference.appendingPathComponent($0) }
            .filter { FileManager.default.fileExists(atPath: $0.appendingPathComponent("config.json").path) }
    }

    static func temporaryDirectory(_ label: String = #function) -> URL {
        let dir = FileManager.default.temporaryDirectory
            .appendingPathComponent("parscale-tests-\(getpid())-\(label.filter(\.isLetter))-\(UInt32.random(in: 0...UInt32.max))")
        try! FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        return dir
    }
}

/// max|ours - ref| / max|ref|, with the worst element's index for the failure message.
func relativeError(_ ours: [Float], _ ref: [Float]) -> (error: Double, worst: Int) {
    precondition(ours.count == ref.count, "sizes \(ours.count) vs \(ref.count)")
    var worst = 0, maxDiff = 0.0, maxRef = 0.0
    for i in ours.indices {
        let d = abs(Double(ours[i]) - Double(ref[i]))
        if !(d <= maxDiff) { maxDiff = d; worst = i }  // also catches NaN
        maxRef = max(maxRef, abs(Double(ref[i])))
    }
    return (maxRef > 0 ? maxDiff / maxRef : maxDiff, worst)
}

func assertClose(
    _ ours: [Float], _ ref: [Float], _ what: String, tolerance: Double = 1e-4,
    file: StaticString = #filePath, line: UInt = #line
) {
    guard ours.count == ref.count else {
        XCTFail("\(what): \(ours.count) values, reference has \(ref.count)", file: file, line: line)
        return
    }
    let (error, worst) = relativeError(ours, ref)
    XCTAssertLessThan(
        error, tolerance,
        "\(what): relative error \(error) at element \(worst) (ours \(ours[worst]), reference \(ref[worst]))",
        file: file, line: line)
}
