import Foundation
import XCTest

@testable import ParScale
import TestSupport

/// The models in ../shared/reference were made with the official PyTorch code; every output
/// must be reproduced with max|ours - ref| / max|ref| < 1e-4.
final class ReferenceTests: XCTestCase {
    struct Reference {
        let name: String
        let model: ParScaleModel
        let data: SafeTensorsFile
        func ids(_ key: String) throws -> [[Int32]] {
            let info = try data.info(key)
            let flat = try data.int64s(key).map { Int32($0) }
            let width = info.shape[1]
            return stride(from: 0, to: flat.count, by: width).map { Array(flat[$0..<$0 + width]) }
        }
    }

    func references(backend: Backend = CPUBackend()) throws -> [Reference] {
        let dirs = TestPaths.referenceModels
        XCTAssertEqual(dirs.count, 3, "expected the three reference models in \(TestPaths.reference.path)")
        return try dirs.map { dir in
            Reference(
                name: dir.lastPathComponent, model: try Checkpoint.load(dir.path, backend: backend),
                data: try SafeTensorsFile(contentsOf: dir.appendingPathComponent("reference.safetensors").path))
        }
    }

    func testFullForwardMatchesOfficialLogitsHiddenStatesAndAggregation() throws {
        for ref in try references() {
            let ids = try ref.ids("input_ids")
            let model = ref.model
            var captured: [String: [Float]] = [:]
            let cache = try model.makeCache(batch: ids.count, capacity: ids[0].count)
            let logits = try model.forward(tokens: ids, cache: cache) { name, tensor in
                var values = [Float](repeating: 0, count: tensor.count)
                values.withUnsafeMutableBufferPointer { model.backend.download(tensor, into: $0) }
                captured[name] = values
            }
            assertClose(logits, try ref.data.floats("logits"), "\(ref.name) logits")
            let L = model.config.numHiddenLayers
            for i in 0...L {
                let key = "hidden_states.\(i)"
                let expected = try ref.data.floats(key)
                let ours = captured[key].map { Array($0.prefix(expected.count)) } ?? []
                assertClose(ours, expected, "\(ref.name) \(key)")
            }
            if model.config.streams > 1 {
                let expected = try ref.data.floats("agg_logits")
                assertClose(Array((captured["agg_logits"] ?? []).prefix(expected.count)), expected, "\(ref.name) agg_logits")
            } else {
                XCTAssertNil(captured["agg_logits"], "P = 1 has no aggregation")
            }
        }
    }

    func testFullLogitsOfPromptPlusGeneratedTokens() throws {
        for ref in try references() {
            let ids = try ref.ids("full_ids")
            let cache = try ref.model.makeCache(batch: ids.count, capacity: ids[0].count)
            let logits = try ref.model.forward(tokens: ids, cache: cache)
            assertClose(logits, try ref.data.floats("full_logits"), "\(ref.name) full_logits")
        }
    }

    func testCachedDecodeMatchesOfficialStepLogitsAndGreedyTokens() throws {
        for ref in try references() {
            let prompt = try ref.ids("prompt_ids"), expectedTokens = try ref.ids("gen_ids")
            let decodeLogits = try ref.data.floats("decode_logits")
            let steps = expectedTokens[0].count, B = prompt.count, V = ref.model.config.vocabSize
            // Step by step, feeding the reference tokens, so each step is checked on its own.
            let cache = try ref.model.makeCache(batch: B, capacity: prompt[0].count + steps)
            var logits = try ref.model.forward(tokens: prompt, cache: cache, logits: .last)
            for t in 0..<steps {
                let expected = Array(decodeLogits[(t * B * V)..<((t + 1) * B * V)])
                assertClose(logits, expected, "\(ref.name) decode_logits step \(t)")
                if t + 1 < steps {
                    logits = try ref.model.forward(
                        tokens: (0..<B).map { [expectedTokens[$0][t]] }, cache: cache, logits: .last)
                }
            }
            // The generator's greedy output equals the official greedy tokens.
            let result = try Generator.generate(
                model: ref.model, prompts: prompt, maxNewTokens: steps, sampling: .greedy)
            XCTAssertEqual(result.tokens, expectedTokens, "\(ref.name) greedy gen_ids")
        }
    }
}
