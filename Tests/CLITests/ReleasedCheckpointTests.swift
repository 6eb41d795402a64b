import Foundation
import TestSupport
import XCTest

/// A checkpoint as users bring it: a Qwen2ForCausalLM saved by transformers 5 (sharded, bf16,
/// rope_theta inside rope_parameters) with a Qwen2-style tokenizer.json, and transformers' own
/// logits and greedy generations (Tests/Fixtures/hf-qwen2, made by
/// Tools/fixtures/make_hf_model_fixture.py).
extension CLITests {
    static let released = TestPaths.fixtures.appendingPathComponent("hf-qwen2")
    var releasedModel: String { Self.released.appendingPathComponent("model").path }
    var releasedData: String { Self.released.appendingPathComponent("data").path }

    func releasedReference() throws -> [String: Any] {
        let data = try Data(contentsOf: Self.released.appendingPathComponent("reference.json"))
        return try XCTUnwrap(JSONSerialization.jsonObject(with: data) as? [String: Any])
    }

    func releasedCases() throws -> [[String: Any]] {
        try XCTUnwrap(try releasedReference()["cases"] as? [[String: Any]])
    }

    /// Float32 values of a tensor in a small safetensors file (F32 only; enough for the fixtures).
    func readF32(_ path: String, _ name: String) throws -> [Float] {
        let data = try Data(contentsOf: URL(fileURLWithPath: path))
        let headerLength = Int(data.prefix(8).withUnsafeBytes { $0.loadUnaligned(as: UInt64.self) })
        let header = try XCTUnwrap(JSONSerialization.jsonObject(with: data.subdata(in: 8..<(8 + headerLength))) as? [String: Any])
        let info = try XCTUnwrap(header[name] as? [String: Any], "\(name) in \(path)")
        XCTAssertEqual(info["dtype"] as? String, "F32")
        let offsets = try XCTUnwrap(info["data_offsets"] as? [Int])
        let bytes = data.subdata(in: (8 + headerLength + offsets[0])..<(8 + headerLength + offsets[1]))
        return bytes.withUnsafeBytes { Array($0.bindMemory(to: Float.self)) }
    }

    func testReleasedCheckpointLogitsMatchTransformers() throws {
        let reference = Self.released.appendingPathComponent("reference.safetensors").path
        let cases = try releasedCases()
        let ids = (cases[0]["prompt_ids"] as! [Int]) + (cases[0]["generated_ids"] as! [Int]).prefix(5)
        let out = temporaryFolder().appendingPathComponent("logits.safetensors").path
        let run = try parscale(["logits", "--model", releasedModel, "--tokens", ids.map(String.init).joined(separator: ","), "--out", out])
        XCTAssertEqual(run.status, 0, run.err)
        let ours = try readF32(out, "logits"), theirs = try readF32(reference, "logits")
        XCTAssertEqual(ours.count, theirs.count)
        var worst = 0.0, scale = 0.0
        for i in theirs.indices {
            worst = max(worst, Double(abs(ours[i] - theirs[i])))
            scale = max(scale, Double(abs(theirs[i])))
        }
        // Same bf16 weights, both computed in float32: only summation order differs.
        XCTAssertLessThan(worst / scale, 1e-4, "max |ours - transformers| / max |transformers|")
    }

    func testReleasedCheckpointGeneratesWhatTransformersGenerates() throws {
        for c in try releasedCases() {
            let prompt = c["prompt"] as! String
            let run = try parscale(["generate", "--model", releasedModel, "--prompt", prompt, "--max-new-tokens", "40", "--json"])
            XCTAssertEqual(run.status, 0, run.err)
            let object = try json(run.out)
            XCTAssertEqual(object["prompt_tokens"] as? [Int], c["prompt_ids"] as? [Int], "prompt ids of \(prompt.debugDescription)")
            XCTAssertEqual(object["tokens"] as? [Int], c["generated_ids"] as? [Int], "greedy tokens after \(prompt.debugDescription)")
            XCTAssertEqual(object["text"] as? String, c["generated_text_before_eos"] as? String)
            XCTAssertEqual(object["stop"] as? String, (c["ends_with_eos"] as! Bool) ? "eos" : "length")
            // Streaming prints the same text (the end-of-text token itself is not printed).
            let streamed = try parscale(["generate", "--model", releasedModel, "--prompt", prompt, "--max-new-tokens", "40"])
            XCTAssertEqual(streamed.status, 0, streamed.err)
            XCTAssertEqual(streamed.out, (c["generated_text_before_eos"] as! String) + "\n")
            XCTAssertTrue(streamed.err.contains("stopped at end of text"), streamed.err)
        }
    }

    func testTokenizeCommandGivesTheTokenizersIds() throws {
        for c in try releasedCases() {
            let run = try parscale(["tokenize", "--model", releasedModel, "--text", c["prompt"] as! String, "--json"])
            XCTAssertEqual(run.status, 0, run.err)
            let object = try json(run.out)
            XCTAssertEqual(object["ids"] as? [Int], c["prompt_ids"] as? [Int])
            XCTAssertEqual((object["pieces"] as? [Any])?.count, (c["prompt_ids"] as? [Int])?.count)
            let plain = try parscale(["tokenize", "--model", releasedModel, "--text", c["prompt"] as! String])
            XCTAssertEqual(plain.out, (c["prompt_ids"] as! [Int]).map(String.init).joined(separator: ",") + "\n")
        }
        let file = temporaryFolder().appendingPathComponent("bad.txt")
        try Data([0x61, 0xC3, 0x28]).write(to: file)
        let bad = try parscale(["tokenize", "--model", releasedModel, "--file", file.path])
        XCTAssertNotEqual(bad.status, 0)
        XCTAssertTrue(bad.err.contains(file.path) && bad.err.lowercased().contains("utf-8"), bad.err)
    }

    /// A model whose ids are not bytes, without its tokenizer: text input is refused, never read as bytes.
    func testTextInputWithoutTheTokenizerIsRefused() throws {
        let copy = temporaryFolder().appendingPathComponent("no-tokenizer")
        try FileManager.default.copyItem(atPath: releasedModel, toPath: copy.path)
        try FileManager.default.removeItem(at: copy.appendingPathComponent("tokenizer.json"))
        let generate = try parscale(["generate", "--model", copy.path, "--prompt", "Ada says", "--max-new-tokens", "2"])
        XCTAssertNotEqual(generate.status, 0)
        XCTAssertTrue(generate.err.contains("--tokenizer") && generate.err.contains("512"), generate.err)
        let recycle = try parscale(["recycle", "--from", copy.path, "--P", "2", "--data", releasedData, "--steps", "1",
                                    "--out", temporaryFolder().appendingPathComponent("r").path])
        XCTAssertNotEqual(recycle.status, 0)
        XCTAssertTrue(recycle.err.contains("--tokenizer"), recycle.err)
        let eval = try parscale(["eval", "--model", copy.path, "--data", releasedData])
        XCTAssertNotEqual(eval.status, 0)
        XCTAssertTrue(eval.err.contains("--tokenizer"), eval.err)
        // Raw ids still work, and --tokenizer FILE restores text.
        let ids = try parscale(["generate", "--model", copy.path, "--prompt-tokens", "375,223", "--max-new-tokens", "2", "--json"])
        XCTAssertEqual(ids.status, 0, ids.err)
        let withFile = try parscale(["generate", "--model", copy.path, "--prompt", "Ada says that the compiler", "--max-new-tokens", "40",
                                     "--tokenizer", releasedModel + "/tokenizer.json", "--json"])
        XCTAssertEqual(withFile.status, 0, withFile.err)
        XCTAssertEqual(try json(withFile.out)["tokens"] as? [Int], try releasedCases()[0]["generated_ids"] as? [Int])
    }

    /// recycle --from a transformers checkpoint --data text: tokenized with its tokenizer (cached in
    /// the run), a complete model folder out (tokenizer files included) that generates text.
    func testRecycleAReleasedCheckpointOnText() throws {
        let run = temporaryFolder().appendingPathComponent("recycled").path
        let recycle = try parscale(["recycle", "--from", releasedModel, "--P", "2", "--data", releasedData, "--steps", "4",
                                    "--seq", "32", "--batch", "2", "--eval-windows", "4", "--out", run, "--backend", "cpu"])
        XCTAssertEqual(recycle.status, 0, recycle.err)
        XCTAssertTrue(recycle.err.contains("tokenizing"), "a progress line while tokenizing: \(recycle.err)")
        let checkpoint = run + "/checkpoint"
        for name in ["tokenizer.json", "tokenizer_config.json", "generation_config.json", "config.json"] {
            XCTAssertTrue(FileManager.default.fileExists(atPath: checkpoint + "/" + name), name)
        }
        let tokens = try FileManager.default.contentsOfDirectory(atPath: run + "/tokens")
        XCTAssertTrue(tokens.contains { $0.hasSuffix(".train.bin") }, "\(tokens)")
        // The ids the run trained on are the tokenizer's: the cache holds the ids of the data's text.
        let info = try json(try parscale(["info", "--model", run, "--json"]).out)
        XCTAssertEqual((info["config"] as? [String: Any])?["parscale_n"] as? Int ?? (info["P"] as? Int), 2, "\(info)")
        let generate = try parscale(["generate", "--model", run, "--prompt", "Ada says that", "--max-new-tokens", "8", "--json"])
        XCTAssertEqual(generate.status, 0, generate.err)
        XCTAssertNotNil(try json(generate.out)["text"] as? String)
        // eval reads the same text through the same tokenizer; bits per byte counts bytes, not tokens.
        let eval = try json(try parscale(["eval", "--model", run, "--data", releasedData, "--seq", "32", "--windows", "4", "--json"]).out)
        let loss = try XCTUnwrap(eval["val_loss"] as? Double), bpb = try XCTUnwrap(eval["bits_per_byte"] as? Double)
        XCTAssertLessThan(bpb, loss / log(2), "a token is more than one byte here")
        // Resume reads the text through the checkpoint's copy of the tokenizer (the cache is reused).
        let more = try parscale(["recycle", "--out", run, "--resume", "--backend", "cpu"])
        XCTAssertEqual(more.status, 0, more.err)
    }

    func testConfigOfTransformers5IsReadAndUnsupportedRopeRefused() throws {
        let copy = temporaryFolder().appendingPathComponent("rope")
        try FileManager.default.copyItem(atPath: releasedModel, toPath: copy.path)
        let configPath = copy.appendingPathComponent("config.json")
        var config = try XCTUnwrap(JSONSerialization.jsonObject(with: Data(contentsOf: configPath)) as? [String: Any])
        config["rope_parameters"] = ["rope_type": "yarn", "rope_theta": 1e6, "factor": 4.0]
        try JSONSerialization.data(withJSONObject: config).write(to: configPath)
        let run = try parscale(["info", "--model", copy.path])
        XCTAssertNotEqual(run.status, 0)
        XCTAssertTrue(run.err.contains("rope_type") && run.err.contains("yarn"), run.err)
    }

    /// sweep (and so ablate and study, which share its plan) writes its runs' checkpoints as
    /// --dtype and --max-shard-size say; the run's f32 master keeps the result exact.
    func testSweepWritesCheckpointsInTheChosenDType() throws {
        let dir = temporaryFolder().appendingPathComponent("sweep").path
        let run = try parscale(["sweep", "--preset", "tiny", "--out", dir, "--sizes", "32", "--P", "2", "--seeds", "0",
                                "--tokens", "2048", "--backend", "cpu", "--dtype", "bf16", "--max-shard-size", "20KB"])
        XCTAssertEqual(run.status, 0, run.err)
        let checkpoint = dir + "/runs/h32-p2-s0/checkpoint"
        let files = try FileManager.default.contentsOfDirectory(atPath: checkpoint)
        XCTAssertTrue(files.contains("model.safetensors.index.json") && files.contains("master.safetensors"), "\(files)")
        let index = try XCTUnwrap(JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: checkpoint + "/model.safetensors.index.json"))) as? [String: Any])
        let shard = try XCTUnwrap((index["weight_map"] as? [String: String])?["model.embed_tokens.weight"])
        let data = try Data(contentsOf: URL(fileURLWithPath: checkpoint + "/" + shard))
        let headerLength = Int(data.prefix(8).withUnsafeBytes { $0.loadUnaligned(as: UInt64.self) })
        let header = String(decoding: data.subdata(in: 8..<(8 + headerLength)), as: UTF8.self)
        XCTAssertTrue(header.contains("\"BF16\"") && !header.contains("\"F32\""), header)
    }
}
