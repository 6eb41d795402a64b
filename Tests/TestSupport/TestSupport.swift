import Foundation
import ParScale
import XCTest

/// Paths shared by the tests: the package root, the reference models (../shared/reference beside
/// the package root, or PARSCALE_REFERENCE_DIR) and fresh temporary folders.
public enum TestPaths {
    public static let packageRoot = URL(fileURLWithPath: #filePath)
        .deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
    /// Tests/Fixtures: small checked-in models, tokenizers and their Hugging Face outputs.
    public static let fixtures = packageRoot.appendingPathComponent("Tests/Fixtures")
    public static let reference: URL = {
        if let dir = ProcessInfo.processInfo.environment["PARSCALE_REFERENCE_DIR"] {
            return URL(fileURLWithPath: dir)
        }
        return packageRoot.deletingLastPathComponent().appendingPathComponent("shared/reference")
    }()
    public static var referenceModels: [URL] {
        let names = (try? FileManager.default.contentsOfDirectory(atPath: reference.path)) ?? []
        return names.sorted().map { reference.appendingPathComponent($0) }
            .filter { FileManager.default.fileExists(atPath: $0.appendingPathComponent("config.json").path) }
    }

    /// A new empty folder under the system's temporary folder, named after the test.
    public static func temporaryDirectory(_ label: String = #function) -> URL {
        let dir = FileManager.default.temporaryDirectory
            .appendingPathComponent("parscale-tests-\(getpid())-\(label.filter(\.isLetter))-\(UInt32.random(in: 0...UInt32.max))")
        try! FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        return dir
    }
}

/// max|ours - ref| / max|ref|, with the worst element's index for the failure message.
public func relativeError(_ ours: [Float], _ ref: [Float]) -> (error: Double, worst: Int) {
    precondition(ours.count == ref.count, "sizes \(ours.count) vs \(ref.count)")
    var worst = 0, maxDiff = 0.0, maxRef = 0.0
    for i in ours.indices {
        let d = abs(Double(ours[i]) - Double(ref[i]))
        if !(d <= maxDiff) { maxDiff = d; worst = i }  // also catches NaN
        maxRef = max(maxRef, abs(Double(ref[i])))
    }
    return (maxRef > 0 ? maxDiff / maxRef : maxDiff, worst)
}

public func assertClose(
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

/// The tests' small model: hidden 32, 2 layers, 4/2 heads, byte vocabulary, tied embeddings, T = 4
/// prefix tokens; each test changes what it needs.
public func tinyConfig(
    P: Int, vocab: Int = 256, hidden: Int = 32, intermediate: Int = 88, layers: Int = 2, heads: Int = 4, kvHeads: Int = 2,
    prefixTokens: Int = 4, tied: Bool = true, smoothing: Double = ModelConfig.defaultSmoothingForNewModels
) -> ModelConfig {
    ModelConfig(
        vocabSize: vocab, hiddenSize: hidden, intermediateSize: intermediate, numHiddenLayers: layers,
        numAttentionHeads: heads, numKeyValueHeads: kvHeads, tieWordEmbeddings: tied, parscaleN: P,
        parscaleNTokens: prefixTokens, parscaleAttnSmooth: smoothing)
}

/// `tinyConfig(P:)` initialised as `parscale init` does (seeded), on the CPU backend.
public func tinyModel(P: Int, seed: UInt64 = 1) -> ParScaleModel {
    ParScaleModel.initialized(tinyConfig(P: P), backend: CPUBackend(), options: InitOptions(seed: seed))
}

extension XCTestCase {
    /// A new empty folder for this test (`TestPaths.temporaryDirectory`), removed when it ends.
    public func temporaryFolder(_ label: String = #function) -> URL {
        let dir = TestPaths.temporaryDirectory(label)
        addTeardownBlock { try? FileManager.default.removeItem(at: dir) }
        return dir
    }
}
