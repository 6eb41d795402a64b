import Foundation
import XCTest

@testable import ParScale
import TestSupport

final class CheckpointTests: XCTestCase {
    func makeConfig(P: Int, tied: Bool, kvHeads: Int = 2) -> ModelConfig {
        tinyConfig(P: P, hidden: 64, intermediate: 176, kvHeads: kvHeads, prefixTokens: 8, tied: tied)
    }

    func initialized(_ config: ModelConfig, seed: UInt64 = 3) -> [Float] {
        let layout = ParameterLayout(config)
        var params = [Float](repeating: 0, count: layout.totalCount)
        params.withUnsafeMutableBufferPointer { Initializer.initialize(layout, into: $0, options: InitOptions(seed: seed)) }
        return params
    }

    func save(_ config: ModelConfig, _ params: [Float]) throws -> URL {
        let dir = TestPaths.temporaryDirectory()
        try params.withUnsafeBufferPointer { try Checkpoint.save(config: config, parameters: $0, to: dir.path) }
        return dir
    }

    func testInitCheckpointRereadsBitExactly() throws {
        for (P, tied) in [(1, true), (2, false), (4, true)] {
            let config = makeConfig(P: P, tied: tied)
            let params = initialized(config)
            let dir = try save(config, params)
            let reread = try Checkpoint.loadConfig(dir.path)
            XCTAssertEqual(reread, config)
            let layout = ParameterLayout(reread)
            var back = [Float](repeating: .nan, count: layout.totalCount)
            try back.withUnsafeMutableBufferPointer {
                try Checkpoint.readParameters(Checkpoint.weightsPath(dir.path), layout: layout, into: $0)
            }
            XCTAssertEqual(back.map(\.bitPattern), params.map(\.bitPattern), "P=\(P) tied=\(tied)")
        }
    }

    /// Our tensor names and shapes equal the official ones for the same config.
    func testSavedNamesAndShapesEqualTheOfficialReferences() throws {
        for dir in try TestPaths.requiredReferenceModels() {
            let official = try SafeTensorsFile(contentsOf: dir.appendingPathComponent("model.safetensors").path)
            let config = try Checkpoint.loadConfig(dir.path)
            let ours = try SafeTensorsFile(contentsOf: Checkpoint.weightsPath(try save(config, initialized(config)).path))
            XCTAssertEqual(ours.names, official.names, dir.lastPathComponent)
            for name in official.names {
                XCTAssertEqual(try ours.info(name).shape, try official.info(name).shape, name)
                XCTAssertEqual(try ours.info(name).dtype, .F32)
            }
        }
    }

    func testInitialisationFollowsTheDocumentedScheme() throws {
        let config = makeConfig(P: 4, tied: true)
        let layout = ParameterLayout(config)
        let params = initialized(config)
        func values(_ name: String) -> ArraySlice<Float> {
            let e = layout.entry(name)!
            return params[e.offset..<e.offset + e.count]
        }
        XCTAssertTrue(values("model.layers.0.input_layernorm.weight").allSatisfy { $0 == 1 })
        XCTAssertTrue(values("model.layers.1.self_attn.q_proj.bias").allSatisfy { $0 == 0 })
        XCTAssertTrue(values("model.aggregate_layer.2.weight").allSatisfy { $0 == 0 }, "uniform first mixing weights")
        let q = values("model.layers.0.self_attn.q_proj.weight")
        let std = (q.reduce(0) { $0 + Double($1 * $1) } / Double(q.count)).squareRoot()
        XCTAssertEqual(std, 0.02, accuracy: 0.002)
        // Distinct prefixes per stream (symmetry breaking).
        let prefix = Array(values("model.layers.0.self_attn.prefix_k"))
        let perStream = prefix.count / 4
        XCTAssertNotEqual(Array(prefix[0..<perStream]), Array(prefix[perStream..<2 * perStream]))
    }

    func testQwen2ConfigReadsAsOneStream() throws {
        let json = """
            {"model_type": "qwen2", "vocab_size": 300, "hidden_size": 32, "intermediate_size": 64,
             "num_hidden_layers": 1, "num_attention_heads": 4, "num_key_value_heads": 2, "parscale_n": 4,
             "tie_word_embeddings": true, "rope_scaling": null}
            """
        let config = try JSONDecoder().decode(ModelConfig.self, from: Data(json.utf8))
        XCTAssertEqual(config.streams, 1)
        XCTAssertEqual(config.parscaleAttnSmooth, 0.01, "official default when the key is absent")
        XCTAssertEqual(config.ropeTheta, 10000)
    }

    // MARK: hostile checkpoints: each a clear error naming the file or tensor, never a crash

    func expectError(_ dir: URL, containing phrases: [String], file: StaticString = #filePath, line: UInt = #line) {
        XCTAssertThrowsError(try Checkpoint.load(dir.path, backend: CPUBackend()), file: file, line: line) { error in
            let text = String(describing: error)
            for phrase in phrases {
                XCTAssertTrue(text.contains(phrase), "'\(text)' lacks '\(phrase)'", file: file, line: line)
            }
        }
    }

    func testConfigWhosePDisagreesWithPrefixShapesIsAClearError() throws {
        let dir = try save(makeConfig(P: 2, tied: true), initialized(makeConfig(P: 2, tied: true)))
        // Claim P = 4 in config.json while the tensors were made for P = 2.
        try makeConfig(P: 4, tied: true).jsonData().write(to: dir.appendingPathComponent("config.json"))
        expectError(dir, containing: ["model.safetensors", "prefix_k", "[2, 2, 8, 16]", "parscale_n"])
    }

    func testMissingTensorIsNamed() throws {
        let config = makeConfig(P: 2, tied: false)
        let dir = try save(config, initialized(config))
        try makeConfig(P: 2, tied: true).jsonData().write(to: dir.appendingPathComponent("config.json"))
        expectError(dir, containing: ["lm_head.weight", "unexpected"])
        try makeConfig(P: 1, tied: false).jsonData().write(to: dir.appendingPathComponent("config.json"))
        expectError(dir, containing: ["ParScale tensor", "parscale_n = 1"])
        let p1 = makeConfig(P: 1, tied: false)
        let p1Dir = try save(p1, initialized(p1))
        try config.jsonData().write(to: p1Dir.appendingPathComponent("config.json"))
        expectError(p1Dir, containing: ["missing tensor", "model.layers.0.self_attn.prefix_k", "recycle"])
    }

    func testWrongShapeIsNamed() throws {
        let config = makeConfig(P: 1, tied: true)
        let dir = try save(config, initialized(config))
        var wider = config
        wider.intermediateSize = 180
        try wider.jsonData().write(to: dir.appendingPathComponent("config.json"))
        expectError(dir, containing: ["mlp.gate_proj.weight", "[176, 64]", "[180, 64]"])
    }

    func testMalformedConfigsAreClearErrors() throws {
        let dir = TestPaths.temporaryDirectory()
        let path = dir.appendingPathComponent("config.json")
        let cases: [(String, String)] = [
            ("{ not json", "not a valid config.json"),
            (#"{"vocab_size": 10}"#, "missing key 'hidden_size'"),
            (#"{"vocab_size": 10, "hidden_size": "wide", "intermediate_size": 8, "num_hidden_layers": 1, "num_attention_heads": 2}"#, "hidden_size"),
            (#"{"vocab_size": 10, "hidden_size": 30, "intermediate_size": 8, "num_hidden_layers": 1, "num_attention_heads": 4}"#, "not a multiple"),
            (#"{"vocab_size": 10, "hidden_size": 32, "intermediate_size": 8, "num_hidden_layers": 1, "num_attention_heads": 4, "rope_scaling": {"type": "yarn"}}"#, "rope_scaling"),
        ]
        for (text, phrase) in cases {
            try Data(text.utf8).write(to: path)
            XCTAssertThrowsError(try Checkpoint.loadConfig(dir.path)) { error in
                XCTAssertTrue("\(error)".contains(phrase), "'\(error)' lacks '\(phrase)'")
                XCTAssertTrue("\(error)".contains("config.json"), "'\(error)' does not name the file")
            }
        }
        XCTAssertThrowsError(try Checkpoint.loadConfig(dir.appendingPathComponent("absent").path)) { error in
            XCTAssertTrue("\(error)".contains("no such checkpoint folder"))
        }
    }

    func testTruncatedWeightsFileIsAClearError() throws {
        let config = makeConfig(P: 2, tied: true)
        let dir = try save(config, initialized(config))
        let weights = dir.appendingPathComponent("model.safetensors")
        let data = try Data(contentsOf: weights)
        try data.prefix(data.count / 2).write(to: weights)
        expectError(dir, containing: ["model.safetensors"])
    }
}

final class HalfPrecisionCheckpointTests: XCTestCase {
    /// Official released checkpoints are BF16: they load, converted to float32 exactly.
    func testBF16AndF16CheckpointsLoadAsTheRoundedFloat32Weights() throws {
        let dir = try XCTUnwrap(TestPaths.referenceModels.first { $0.lastPathComponent.hasPrefix("p2") })
        let model = try Checkpoint.load(dir.path, backend: CPUBackend())
        var original = [Float](repeating: 0, count: model.parameters.count)
        original.withUnsafeMutableBufferPointer { model.backend.download(model.parameters, into: $0) }
        // Independent statements of the two roundings (to nearest, ties to even).
        let roundings: [(SafeTensorsDType, (Float) -> Float)] = [
            (.BF16, { v in
                let bits = v.bitPattern
                return Float(bitPattern: ((bits &+ 0x7FFF &+ ((bits >> 16) & 1)) >> 16) << 16)
            }),
            (.F16, { Float(Float16($0)) }),
        ]
        for (dtype, round) in roundings {
            let out = TestPaths.temporaryDirectory()
            try Checkpoint.save(model, to: out.path, dtype: dtype)
            let header = try SafeTensorsFile(contentsOf: Checkpoint.weightsPath(out.path))
            XCTAssertEqual(try header.info("model.norm.weight").dtype, dtype)
            let loaded = try Checkpoint.load(out.path, backend: CPUBackend())
            var values = [Float](repeating: 0, count: loaded.parameters.count)
            values.withUnsafeMutableBufferPointer { loaded.backend.download(loaded.parameters, into: $0) }
            XCTAssertEqual(values.map(\.bitPattern), original.map { round($0).bitPattern }, "\(dtype)")
            XCTAssertNotEqual(values, original, "\(dtype) must actually round")
        }
    }
}
