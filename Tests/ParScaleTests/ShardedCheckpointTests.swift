import Foundation
import XCTest

@testable import ParScale
import TestSupport

/// Sharded checkpoints (model-0000k-of-0000n.safetensors + model.safetensors.index.json, as
/// transformers writes them past max_shard_size), BF16/F16 saves, and the files that travel with them.
final class ShardedCheckpointTests: XCTestCase {
    func makeConfig(P: Int = 2, tied: Bool = false) -> ModelConfig {
        tinyConfig(P: P, hidden: 64, intermediate: 176, prefixTokens: 8, tied: tied)
    }

    func initialized(_ config: ModelConfig, seed: UInt64 = 3) -> [Float] {
        let layout = ParameterLayout(config)
        var params = [Float](repeating: 0, count: layout.totalCount)
        params.withUnsafeMutableBufferPointer { Initializer.initialize(layout, into: $0, options: InitOptions(seed: seed)) }
        return params
    }

    /// 150 kB shards: the P = 2 model (about 530 kB of F32) takes 4 or more.
    static let smallShards = 150_000

    @discardableResult
    func save(
        _ config: ModelConfig, _ params: [Float], to dir: URL? = nil, dtype: SafeTensorsDType = .F32,
        maxShardBytes: Int = smallShards
    ) throws -> URL {
        let dir = dir ?? TestPaths.temporaryDirectory()
        try params.withUnsafeBufferPointer {
            try Checkpoint.save(config: config, parameters: $0, to: dir.path, dtype: dtype, maxShardBytes: maxShardBytes)
        }
        return dir
    }

    func load(_ dir: URL) throws -> [Float] {
        let model = try Checkpoint.load(dir.path, backend: CPUBackend())
        var values = [Float](repeating: 0, count: model.parameters.count)
        values.withUnsafeMutableBufferPointer { model.backend.download(model.parameters, into: $0) }
        return values
    }

    func files(_ dir: URL) -> [String] {
        ((try? FileManager.default.contentsOfDirectory(atPath: dir.path)) ?? []).filter { !$0.hasPrefix(".") }.sorted()
    }

    func index(_ dir: URL) throws -> [String: Any] {
        let data = try Data(contentsOf: dir.appendingPathComponent(CheckpointWeights.indexFileName))
        return try XCTUnwrap(JSONSerialization.jsonObject(with: data) as? [String: Any])
    }

    func writeIndex(_ object: [String: Any], _ dir: URL) throws {
        try JSONSerialization.data(withJSONObject: object).write(to: dir.appendingPathComponent(CheckpointWeights.indexFileName))
    }

    func expectError(
        _ dir: URL, containing phrases: [String], file: StaticString = #filePath, line: UInt = #line
    ) {
        XCTAssertThrowsError(try Checkpoint.load(dir.path, backend: CPUBackend()), file: file, line: line) { error in
            let text = String(describing: error)
            for phrase in phrases {
                XCTAssertTrue(text.contains(phrase), "'\(text)' lacks '\(phrase)'", file: file, line: line)
            }
            XCTAssertFalse(text.contains("Fatal"), text, file: file, line: line)
        }
    }

    // MARK: - Writing and reading shards

    func testShardedSaveReloadsBitExactly() throws {
        for (P, tied) in [(2, false), (1, true), (4, true)] {
            let config = makeConfig(P: P, tied: tied)
            let params = initialized(config)
            let dir = try save(config, params)
            let shards = files(dir).filter { $0.hasPrefix("model-") }
            XCTAssertGreaterThanOrEqual(shards.count, 3, "P=\(P): \(files(dir))")
            XCTAssertEqual(shards, (1...shards.count).map { Checkpoint.shardName($0, of: shards.count) })
            XCTAssertEqual(shards.first, "model-00001-of-0000\(shards.count).safetensors")
            XCTAssertFalse(files(dir).contains("model.safetensors"), "\(files(dir))")
            XCTAssertEqual(try load(dir).map(\.bitPattern), params.map(\.bitPattern), "P=\(P)")
            // The single-file path of the old API finds the shards too.
            var again = [Float](repeating: 0, count: params.count)
            try again.withUnsafeMutableBufferPointer {
                try Checkpoint.readParameters(Checkpoint.weightsPath(dir.path), layout: ParameterLayout(config), into: $0)
            }
            XCTAssertEqual(again.map(\.bitPattern), params.map(\.bitPattern))
        }
    }

    func testIndexHasTheTotalSizeAndTheWeightMapOfEveryTensor() throws {
        let config = makeConfig()
        let layout = ParameterLayout(config)
        for dtype in [SafeTensorsDType.F32, .BF16] {
            let dir = try save(config, initialized(config), dtype: dtype)
            let object = try index(dir)
            let metadata = try XCTUnwrap(object["metadata"] as? [String: Any])
            XCTAssertEqual(metadata["total_size"] as? Int, layout.totalCount * dtype.byteSize, "\(dtype)")
            let map = try XCTUnwrap(object["weight_map"] as? [String: String])
            XCTAssertEqual(Set(map.keys), Set(layout.entries.map(\.name)))
            // Each tensor is in the shard the map names, and only there; shards follow layout order.
            var shardOfEntry: [String] = []
            for entry in layout.entries {
                let shard = try XCTUnwrap(map[entry.name])
                let file = try SafeTensorsFile(contentsOf: dir.appendingPathComponent(shard).path)
                XCTAssertEqual(try file.info(entry.name).shape, entry.shape)
                XCTAssertEqual(try file.info(entry.name).dtype, dtype)
                shardOfEntry.append(shard)
            }
            XCTAssertEqual(shardOfEntry, shardOfEntry.sorted(), "tensors must fill shards in layout order")
            var total = 0
            for shard in Set(map.values) {
                let file = try SafeTensorsFile(contentsOf: dir.appendingPathComponent(shard).path)
                XCTAssertEqual(Set(file.names), Set(map.filter { $0.value == shard }.keys), shard)
                let bytes = file.tensors.values.reduce(0) { $0 + $1.byteRange.count }
                XCTAssertTrue(bytes <= Self.smallShards || file.tensors.count == 1, "\(shard): \(bytes) bytes")
                total += bytes
            }
            XCTAssertEqual(total, layout.totalCount * dtype.byteSize)
            XCTAssertEqual(try CheckpointWeights(directory: dir.path).paths.count, Set(map.values).count)
        }
    }

    /// transformers' grouping: a new shard when the next tensor would pass the limit; a tensor
    /// larger than the limit alone in its own shard; everything that fits in one file.
    func testShardPlanGroupsAsTransformers() throws {
        XCTAssertEqual(Checkpoint.shardPlan([3, 3, 3], maxShardBytes: 6), [0..<2, 2..<3])
        XCTAssertEqual(Checkpoint.shardPlan([3, 3, 3], maxShardBytes: 9), [0..<3])
        XCTAssertEqual(Checkpoint.shardPlan([2, 10, 2, 2], maxShardBytes: 5), [0..<1, 1..<2, 2..<4])
        XCTAssertEqual(Checkpoint.shardPlan([10, 1], maxShardBytes: 5), [0..<1, 1..<2])
        XCTAssertEqual(Checkpoint.shardPlan([1, 10], maxShardBytes: 5), [0..<1, 1..<2])
        XCTAssertEqual(Checkpoint.shardPlan([5, 5], maxShardBytes: 5), [0..<1, 1..<2])
        // A whole model below the limit is one model.safetensors.
        let config = makeConfig()
        let dir = try save(config, initialized(config), maxShardBytes: Checkpoint.defaultMaxShardBytes)
        XCTAssertEqual(files(dir), ["config.json", "model.safetensors"])
    }

    func testFileSizesParseAsTransformersReadsThem() {
        let cases: [(String, Int)] = [
            ("5GB", 5_000_000_000), ("500MB", 500_000_000), ("100KB", 100_000), ("2GiB", 2 << 30), ("512MiB", 512 << 20),
            ("64KiB", 64 << 10), ("1000", 1000), ("5gb", 625_000_000), ("5Gb", 625_000_000), ("8kb", 1000), ("3mib", 3 << 20),
        ]
        for (text, bytes) in cases { XCTAssertEqual(Checkpoint.parseFileSize(text), bytes, text) }
        for bad in ["", "GB", "5XB", "-5GB", "1.5GB", "5 GB", "five", "99999999999999999999GB", "5TB"] {
            XCTAssertNil(Checkpoint.parseFileSize(bad), bad)
        }
    }

    // MARK: - BF16 / F16

    func testBF16AndF16ShardsReloadAsTheRoundedWeights() throws {
        let config = makeConfig()
        var params = initialized(config)
        // Ties of bfloat16 (7 mantissa bits): round half to even, as torch.
        let ties: [(Float, Float)] = [
            (1 + 0x1p-8, 1),  // halfway between 1 and 1 + 2^-7: to the even 1
            (1 + 3 * 0x1p-8, 1 + 0x1p-6),  // halfway between 1 + 2^-7 (odd) and 1 + 2^-6 (even)
            (-(1 + 0x1p-8), -1),
            (1 + 0x1p-8 + 0x1p-20, 1 + 0x1p-7),  // just above the tie: up
            (1 + 0x1p-8 - 0x1p-20, 1),  // just below: down
            (0x1p-130, 0x1p-130),  // subnormal, exact in bfloat16
        ]
        let embed = ParameterLayout(config).entry("model.embed_tokens.weight")!
        for (i, tie) in ties.enumerated() { params[embed.offset + i] = tie.0 }
        for (dtype, round) in [(SafeTensorsDType.BF16, { (v: Float) -> Float in Float(bitPattern: UInt32(SafeTensorsWriter.bfloat16Bits(v)) << 16) }),
                               (.F16, { Float(Float16($0)) })] {
            let dir = try save(config, params, dtype: dtype, maxShardBytes: 100_000)
            XCTAssertGreaterThanOrEqual(files(dir).filter { $0.hasPrefix("model-") }.count, 3)
            let loaded = try load(dir)
            XCTAssertEqual(loaded.map(\.bitPattern), params.map { round($0).bitPattern }, "\(dtype)")
            XCTAssertNotEqual(loaded, params, "\(dtype) must round")
            // Within the dtype's half-ulp of every weight (|w| < 1 here: relative 2^-9 bf16, 2^-12 f16).
            let bound: Float = dtype == .BF16 ? 0x1p-9 : 0x1p-11
            for (a, b) in zip(loaded, params) where abs(b) > 1e-4 && abs(b) < 4 {
                XCTAssertLessThanOrEqual(abs(a - b), bound * abs(b) * 2, "\(dtype): \(b) -> \(a)")
            }
            if dtype == .BF16 {
                for (i, tie) in ties.enumerated() {
                    XCTAssertEqual(loaded[embed.offset + i], tie.1, "bf16(\(tie.0))")
                }
            }
        }
    }

    // MARK: - Hostile indexes and shards

    func shardedFolder() throws -> (dir: URL, map: [String: String]) {
        let config = makeConfig()
        let dir = try save(config, initialized(config))
        let map = try XCTUnwrap(try index(dir)["weight_map"] as? [String: String])
        XCTAssertGreaterThanOrEqual(Set(map.values).count, 3)
        return (dir, map)
    }

    /// Rewrites `shard` keeping its tensors but `drop`, plus `add` (tensor name -> values).
    func rewrite(_ dir: URL, shard: String, drop: String? = nil, add: [String: [Float]] = [:]) throws {
        let path = dir.appendingPathComponent(shard).path
        let file = try SafeTensorsFile(contentsOf: path)
        var tensors: [(name: String, shape: [Int], values: [Float])] =
            try file.names.filter { $0 != drop }.map { ($0, try file.info($0).shape, try file.floats($0)) }
        for (name, values) in add { tensors.append((name, [values.count], values)) }
        let flat = tensors.flatMap(\.values)
        try flat.withUnsafeBufferPointer { all in
            var offset = 0
            let entries = tensors.map { t -> SafeTensorsWriter.Entry in
                defer { offset += t.values.count }
                return SafeTensorsWriter.Entry(
                    name: t.name, dtype: .F32, shape: t.shape,
                    payload: .floats(UnsafeBufferPointer(rebasing: all[offset..<offset + t.values.count])))
            }
            try SafeTensorsWriter.write(entries, to: path)
        }
    }

    func testMissingShardIsNamed() throws {
        let (dir, map) = try shardedFolder()
        try FileManager.default.removeItem(at: dir.appendingPathComponent(map["model.norm.weight"]!))
        expectError(dir, containing: [map["model.norm.weight"]!, "missing shard", CheckpointWeights.indexFileName])
    }

    func testTensorInTwoShardsIsNamed() throws {
        let (dir, map) = try shardedFolder()
        let shards = Set(map.values).sorted()
        let name = "model.norm.weight"
        let other = shards.first { $0 != map[name]! }!
        try rewrite(dir, shard: other, add: [name: [Float](repeating: 1, count: 64)])
        expectError(dir, containing: [name, "two shards", map[name]!, other])
    }

    func testIndexNamingATensorItsShardLacksIsNamed() throws {
        let (dir, map) = try shardedFolder()
        let name = "model.layers.1.mlp.up_proj.weight"
        try rewrite(dir, shard: map[name]!, drop: name)
        expectError(dir, containing: [name, map[name]!, "does not hold it"])
    }

    func testShardHoldingATensorTheIndexOmitsIsNamed() throws {
        let (dir, map) = try shardedFolder()
        let name = "model.layers.0.self_attn.q_proj.bias"
        var object = try index(dir)
        var weightMap = map
        weightMap[name] = nil
        object["weight_map"] = weightMap
        try writeIndex(object, dir)
        expectError(dir, containing: [name, map[name]!, "does not list it"])
    }

    func testShardNamesOutsideTheFolderAreRefused() throws {
        let (dir, map) = try shardedFolder()
        let name = "model.norm.weight"
        for hostile in ["../\(map[name]!)", "/etc/passwd", "sub/\(map[name]!)", "..", "a\\b.safetensors", ""] {
            var object = try index(dir)
            var weightMap = map
            weightMap[name] = hostile
            object["weight_map"] = weightMap
            try writeIndex(object, dir)
            expectError(dir, containing: [CheckpointWeights.indexFileName, name, "not a plain file name"])
        }
    }

    func testMalformedIndexesAreClearErrors() throws {
        let (dir, _) = try shardedFolder()
        let path = dir.appendingPathComponent(CheckpointWeights.indexFileName)
        let cases: [(String, String)] = [
            ("{ not json", "not valid JSON"),
            ("[1, 2]", "must be a JSON object"),
            (#"{"metadata": {"total_size": 10}}"#, "no \"weight_map\""),
            (#"{"weight_map": ["a", "b"]}"#, "\"weight_map\" must be a JSON object"),
            (#"{"weight_map": {}}"#, "lists no tensors"),
            (#"{"weight_map": {"model.norm.weight": 3}}"#, "model.norm.weight"),
            (#"{"metadata": [], "weight_map": {"model.norm.weight": "x.safetensors"}}"#, "\"metadata\" must be a JSON object"),
            (#"{"metadata": {"total_size": "big"}, "weight_map": {"model.norm.weight": "x.safetensors"}}"#, "total_size"),
            (#"{"metadata": {"total_size": true}, "weight_map": {"model.norm.weight": "x.safetensors"}}"#, "total_size"),
            (#"{"metadata": {"total_size": 1.5}, "weight_map": {"model.norm.weight": "x.safetensors"}}"#, "total_size"),
        ]
        for (text, phrase) in cases {
            try Data(text.utf8).write(to: path)
            expectError(dir, containing: [CheckpointWeights.indexFileName, phrase])
        }
        // Neither a single file nor an index.
        try FileManager.default.removeItem(at: path)
        expectError(dir, containing: ["model.safetensors", "cannot open", CheckpointWeights.indexFileName])
    }

    /// The checks of single files (unexpected, missing, wrong shape, with the config's reasons)
    /// hold for shards alike, naming the shard.
    func testConfigChecksApplyToShardsAsToOneFile() throws {
        let untied = makeConfig(P: 2, tied: false)
        let dir = try save(untied, initialized(untied))
        let map = try XCTUnwrap(try index(dir)["weight_map"] as? [String: String])
        try makeConfig(P: 2, tied: true).jsonData().write(to: dir.appendingPathComponent("config.json"))
        expectError(dir, containing: ["lm_head.weight", "unexpected", "tie_word_embeddings = true", map["lm_head.weight"]!])
        try makeConfig(P: 4, tied: false).jsonData().write(to: dir.appendingPathComponent("config.json"))
        expectError(dir, containing: [map["model.layers.0.self_attn.prefix_k"]!, "prefix_k", "[2, 2, 8, 16]", "parscale_n"])
        try makeConfig(P: 1, tied: false).jsonData().write(to: dir.appendingPathComponent("config.json"))
        expectError(dir, containing: ["ParScale tensor", "parscale_n = 1"])
        let p1 = makeConfig(P: 1, tied: false)
        let p1Dir = try save(p1, initialized(p1))
        try untied.jsonData().write(to: p1Dir.appendingPathComponent("config.json"))
        expectError(p1Dir, containing: ["missing tensor", "model.layers.0.self_attn.prefix_k", "recycle", CheckpointWeights.indexFileName])
        var wider = untied
        wider.intermediateSize = 180
        try wider.jsonData().write(to: dir.appendingPathComponent("config.json"))
        expectError(dir, containing: ["mlp.gate_proj.weight", "[176, 64]", "[180, 64]", map["model.layers.0.mlp.gate_proj.weight"]!])
    }

    // MARK: - One set of weights per folder

    func testSingleFileWinsOverAnIndexLikeTransformers() throws {
        let config = makeConfig()
        let dir = try save(config, initialized(config, seed: 1))
        let single = initialized(config, seed: 2)
        let other = try save(config, single, maxShardBytes: Checkpoint.defaultMaxShardBytes)
        try FileManager.default.copyItem(
            at: other.appendingPathComponent("model.safetensors"), to: dir.appendingPathComponent("model.safetensors"))
        XCTAssertEqual(try load(dir).map(\.bitPattern), single.map(\.bitPattern))
    }

    func testAResaveRemovesTheWeightFilesOfThePreviousOne() throws {
        let config = makeConfig()
        let dir = TestPaths.temporaryDirectory()
        try Data("{}".utf8).write(to: dir.appendingPathComponent("tokenizer.json"))
        let a = initialized(config, seed: 1), b = initialized(config, seed: 2), c = initialized(config, seed: 3)
        try save(config, a, to: dir, maxShardBytes: Checkpoint.defaultMaxShardBytes)
        XCTAssertEqual(files(dir), ["config.json", "model.safetensors", "tokenizer.json"])
        // Single -> sharded: the single file goes.
        try save(config, b, to: dir)
        let shards4 = files(dir).filter { $0.hasPrefix("model-") }
        XCTAssertGreaterThanOrEqual(shards4.count, 3)
        XCTAssertEqual(files(dir), (["config.json", CheckpointWeights.indexFileName, "tokenizer.json"] + shards4).sorted())
        XCTAssertEqual(try load(dir).map(\.bitPattern), b.map(\.bitPattern))
        // Sharded -> sharded in fewer shards: the extra old shards go.
        try save(config, c, to: dir, maxShardBytes: 300_000)
        let shards2 = files(dir).filter { $0.hasPrefix("model-") }
        XCTAssertLessThan(shards2.count, shards4.count)
        XCTAssertTrue(shards2.allSatisfy { $0.hasSuffix("-of-0000\(shards2.count).safetensors") }, "\(shards2)")
        XCTAssertEqual(files(dir), (["config.json", CheckpointWeights.indexFileName, "tokenizer.json"] + shards2).sorted())
        XCTAssertEqual(try load(dir).map(\.bitPattern), c.map(\.bitPattern))
        // Sharded -> single: shards and index go; other files stay.
        try save(config, a, to: dir, maxShardBytes: Checkpoint.defaultMaxShardBytes)
        XCTAssertEqual(files(dir), ["config.json", "model.safetensors", "tokenizer.json"])
        XCTAssertEqual(try load(dir).map(\.bitPattern), a.map(\.bitPattern))
        // Files that only look like weights stay.
        for name in ["model-notes-of-me.safetensors", "model-00001-of-00002.safetensors.bak"] {
            try Data().write(to: dir.appendingPathComponent(name))
        }
        try save(config, b, to: dir)
        XCTAssertTrue(files(dir).contains("model-notes-of-me.safetensors"))
        XCTAssertTrue(files(dir).contains("model-00001-of-00002.safetensors.bak"))
        XCTAssertFalse(files(dir).contains("model.safetensors"))
    }

    func testFileBytesSumTheShards() throws {
        let config = makeConfig()
        let dir = try save(config, initialized(config))
        let weights = try CheckpointWeights(directory: dir.path)
        let expected = try files(dir).filter { $0.hasPrefix("model-") }.reduce(0) {
            $0 + (try FileManager.default.attributesOfItem(atPath: dir.appendingPathComponent($1).path)[.size] as! Int)
        }
        XCTAssertEqual(weights.fileBytes, expected)
        XCTAssertGreaterThan(expected, ParameterLayout(config).totalCount * 4)
    }

    // MARK: - Companion files

    func testCompanionFilesAreCopiedAsIsFromAFolderOrARun() throws {
        let source = TestPaths.temporaryDirectory()
        let contents = [
            "tokenizer.json": #"{"model": {"type": "BPE"}}"#, "generation_config.json": #"{"do_sample": true, "top_p": 0.8}"#,
            "merges.txt": "#version: 0.2\na b\n",
        ]
        for (name, text) in contents { try Data(text.utf8).write(to: source.appendingPathComponent(name)) }
        try Data("notes".utf8).write(to: source.appendingPathComponent("README.md"))
        let dest = TestPaths.temporaryDirectory()
        let copied = try Checkpoint.copyCompanionFiles(from: source.path, to: dest.path)
        XCTAssertEqual(Set(copied), Set(contents.keys))
        XCTAssertEqual(files(dest), contents.keys.sorted())
        for (name, text) in contents {
            XCTAssertEqual(try String(contentsOf: dest.appendingPathComponent(name), encoding: .utf8), text, name)
        }
        // A run folder resolves to its checkpoint.
        let config = makeConfig()
        let run = TestPaths.temporaryDirectory()
        let checkpoint = run.appendingPathComponent("checkpoint")
        try save(config, initialized(config), to: checkpoint)
        try Data("{}".utf8).write(to: checkpoint.appendingPathComponent("tokenizer_config.json"))
        let dest2 = TestPaths.temporaryDirectory()
        XCTAssertEqual(try Checkpoint.copyCompanionFiles(from: run.path, to: dest2.path), ["tokenizer_config.json"])
        // Copying a folder onto itself is nothing to do.
        XCTAssertEqual(try Checkpoint.copyCompanionFiles(from: source.path, to: source.path), [])
    }
}
