import Foundation
import XCTest

import ParScale
import ParScaleTrain
import TestSupport

/// Inputs that crashed a fuzz target (Tools/fuzz.sh), kept after the parser was fixed:
/// Tools/fuzz/regressions/<target>/<input>. Each must now be refused with a clear error.
final class FuzzRegressionTests: XCTestCase {
    private static let regressions = TestPaths.packageRoot.appendingPathComponent("Tools/fuzz/regressions")

    /// The parse each fuzz target runs (Tools/fuzz/Sources/<target>), on a file in `dir`.
    private func parse(_ target: String, _ input: URL, in dir: URL) throws {
        let bytes = try Data(contentsOf: input)
        func write(_ name: String, _ data: Data) throws -> String {
            let url = dir.appendingPathComponent(name)
            try data.write(to: url)
            return url.path
        }
        switch target {
        case "FuzzSafeTensors":
            let file = try SafeTensorsFile(contentsOf: write("model.safetensors", bytes))
            for name in file.names { _ = try file.floats(name) }
        case "FuzzConfig":
            try ModelConfig.load(from: write("config.json", bytes)).validate()
        case "FuzzIndex":
            let shards = TestPaths.fixtures.appendingPathComponent("hf-qwen2/model")
            for i in 1...3 {
                let name = "model-0000\(i)-of-00003.safetensors"
                try FileManager.default.copyItem(at: shards.appendingPathComponent(name), to: dir.appendingPathComponent(name))
            }
            let weights = try CheckpointWeights(index: write("model.safetensors.index.json", bytes))
            for name in weights.names {
                var out = [Float](repeating: 0, count: try weights.info(name).shape.reduce(1, *))
                try out.withUnsafeMutableBufferPointer { try weights.readFloats(name, into: $0) }
            }
        case "FuzzTokenizer":
            let separator = Data("\n=====tokenizer_config.json=====\n".utf8)
            var tokenizer = bytes
            if let r = bytes.range(of: separator) {
                tokenizer = bytes[..<r.lowerBound]
                _ = try write("tokenizer_config.json", bytes[r.upperBound...])
            }
            let t = try Tokenizer(file: write("tokenizer.json", tokenizer))
            _ = try t.decode(t.encode("Hello, world! 123 <|endoftext|> héllo\n\n  x"))
        case "FuzzTrainerState":
            _ = try JSONDecoder().decode(TrainerState.self, from: Data(contentsOf: URL(fileURLWithPath: write("trainer_state.json", bytes))))
        case "FuzzAdapter":
            _ = try Adapter.apply(write("adapter.safetensors", bytes), to: tinyModel(P: 1))
        default:
            XCTFail("\(input.path): no fuzz target \(target)")
        }
    }

    func testFuzzFindingsAreRefusedWithAClearError() throws {
        let fm = FileManager.default
        let targets = (try? fm.contentsOfDirectory(atPath: Self.regressions.path)) ?? []
        var checked = 0
        for target in targets.sorted() {
            let folder = Self.regressions.appendingPathComponent(target)
            var isDir: ObjCBool = false
            guard fm.fileExists(atPath: folder.path, isDirectory: &isDir), isDir.boolValue else { continue }
            for name in try fm.contentsOfDirectory(atPath: folder.path).sorted() where !name.hasPrefix(".") {
                let input = folder.appendingPathComponent(name)
                let dir = temporaryFolder("fuzz-\(target)-\(name)")
                do {
                    try parse(target, input, in: dir)
                    XCTFail("\(target)/\(name): accepted; a fuzz finding should be refused with an error")
                } catch {
                    let message = "\(error)"
                    XCTAssertFalse(message.isEmpty, "\(target)/\(name): an error without a message")
                }
                checked += 1
            }
        }
        // Every finding so far is kept; the folder is never empty once one was found.
        XCTAssertGreaterThan(checked, 0, "no regression inputs under \(Self.regressions.path)")
    }
}
