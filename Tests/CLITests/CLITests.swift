import Foundation
import TestSupport
import XCTest

/// Runs the `parscale` binary as a user would.
final class CLITests: XCTestCase {
    func json(_ text: String) throws -> [String: Any] {
        let line = text.split(separator: "\n").last.map(String.init) ?? ""
        return try XCTUnwrap(JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any], text)
    }

    func testHelpListsEverySubcommand() throws {
        let run = try parscale(["--help"])
        XCTAssertEqual(run.status, 0)
        for command in ["info", "logits", "generate", "init", "bench"] { XCTAssertTrue(run.out.contains(command), command) }
        let generateHelp = try parscale(["generate", "--help"])
        XCTAssertTrue(generateHelp.out.contains("--top-p"))
    }

    func testInitThenInfoReportsTheCounts() throws {
        let dir = temporaryFolder().appendingPathComponent("m")
        let initRun = try parscale(["init", "--out", dir.path, "--hidden", "32", "--layers", "2", "--heads", "4",
                                    "--kv-heads", "2", "--intermediate", "64", "--vocab", "256", "--P", "4",
                                    "--prefix-tokens", "8", "--tied", "--seed", "1"])
        XCTAssertEqual(initRun.status, 0, initRun.err)
        let info = try json(try parscale(["info", "--model", dir.path, "--json"]).out)
        // Embedding 256*32; per layer: norms 2*32, qkv 32*(32+16+16) + 64 bias, o 32*32, mlp 3*32*64,
        // prefixes 2*4*2*8*8; final norm 32; aggregator 32*128+32 + 4*32+4.
        let perLayer = 2 * 32 + 32 * 64 + 64 + 32 * 32 + 3 * 32 * 64 + 2 * 4 * 2 * 8 * 8
        let parscaleCount = 2 * (2 * 4 * 2 * 8 * 8) + 32 * 128 + 32 + 4 * 32 + 4
        XCTAssertEqual(info["embedding_parameters"] as? Int, 256 * 32)
        XCTAssertEqual(info["non_embedding_parameters"] as? Int, 2 * perLayer + 32 + 32 * 128 + 32 + 4 * 32 + 4)
        XCTAssertEqual(info["parscale_parameters"] as? Int, parscaleCount)
        XCTAssertEqual(info["kv_cache_bytes_per_token"] as? Int, 4 * 2 * 2 * 2 * 8 * 4)
        // Refuses to overwrite without --force.
        let again = try parscale(["init", "--out", dir.path, "--hidden", "32"])
        XCTAssertNotEqual(again.status, 0)
        XCTAssertTrue(again.err.contains("--force"), again.err)
    }

    func testLogitsAndGenerateReproduceTheOfficialReference() throws {
        let model = TestPaths.reference.appendingPathComponent("p4_t8_mqa_smooth0p1_tied")
        let ref = try JSONSerialization.jsonObject(with: Data(contentsOf: model.appendingPathComponent("reference.json"))) as! [String: Any]
        let prompt = (ref["prompt_ids"] as! [[Int]])[0], gen = (ref["gen_ids"] as! [[Int]])[0]
        let run = try parscale(["generate", "--model", model.path, "--prompt-tokens",
                                prompt.map(String.init).joined(separator: ","), "--max-new-tokens", "\(gen.count)", "--json"])
        XCTAssertEqual(run.status, 0, run.err)
        XCTAssertEqual(try json(run.out)["tokens"] as? [Int], gen)

        let ids = ref["input_ids"] as! [[Int]]
        for backend in ["cpu", "vulkan"] {
        if backend == "vulkan" { _ = try Lavapipe.icd() }  // skips (or fails under PARSCALE_REQUIRE_ALL=1) without it
        let out = temporaryFolder().appendingPathComponent("logits.safetensors")
        let logitsRun = try parscale(["logits", "--backend", backend, "--model", model.path,
                                      "--tokens", ids[0].map(String.init).joined(separator: ","),
                                      "--tokens", ids[1].map(String.init).joined(separator: ","), "--out", out.path])
        XCTAssertEqual(logitsRun.status, 0, logitsRun.err)
        // Compare the written file's header and values with the reference logits.
        let ours = try readF32(out, "logits"), theirs = try readF32(model.appendingPathComponent("reference.safetensors"), "logits")
        XCTAssertEqual(ours.shape, [2, 13, 256])
        XCTAssertEqual(ours.shape, theirs.shape)
        let maxRef = theirs.values.map(abs).max()!
        let maxDiff = zip(ours.values, theirs.values).map { abs($0 - $1) }.max()!
        XCTAssertLessThan(maxDiff / maxRef, 1e-4, backend)
        }
        let vulkanGenerate = try parscale(["generate", "--backend", "vulkan", "--model", model.path, "--prompt-tokens",
                                           prompt.map(String.init).joined(separator: ","), "--max-new-tokens", "\(gen.count)", "--json"])
        XCTAssertEqual(vulkanGenerate.status, 0, vulkanGenerate.err)
        XCTAssertEqual(try json(vulkanGenerate.out)["tokens"] as? [Int], gen, "greedy tokens on Vulkan")
    }

    func testSampledGenerationIsSeededAndTextStreams() throws {
        let model = TestPaths.reference.appendingPathComponent("p2_t8_untied").path
        let args = ["generate", "--model", model, "--prompt", "hello", "--max-new-tokens", "12",
                    "--temperature", "0.9", "--top-k", "40", "--top-p", "0.95", "--seed", "3", "--json"]
        let a = try json(try parscale(args).out), b = try json(try parscale(args).out)
        XCTAssertEqual((a["tokens"] as? [Int])?.count, 12)
        XCTAssertEqual(a["tokens"] as? [Int], b["tokens"] as? [Int])
        let streamed = try parscale(["generate", "--model", model, "--prompt", "hi", "--max-new-tokens", "5"])
        XCTAssertEqual(streamed.status, 0)
        XCTAssertTrue(streamed.err.contains("tok/s"), streamed.err)
    }

    func testBadInputGivesAClearErrorAndNonZeroExit() throws {
        let model = TestPaths.reference.appendingPathComponent("p1_tied").path
        let cases: [([String], String)] = [
            (["logits", "--model", model, "--tokens", "1,2,3", "--tokens", "4,5", "--out", "/tmp/x.safetensors"], "unequal lengths"),
            (["logits", "--model", model, "--tokens", "1,x", "--out", "/tmp/x.safetensors"], "--tokens"),
            (["logits", "--model", model, "--tokens", "1,999", "--out", "/tmp/x.safetensors"], "outside the vocabulary"),
            (["generate", "--model", "/nonexistent/model", "--prompt", "a"], "no such checkpoint folder"),
            (["generate", "--model", model, "--prompt", "a", "--greedy", "--temperature", "1"], "exclude"),
            (["generate", "--model", model], "--prompt"),
            (["info", "--model", model, "--frobnicate"], "frobnicate"),
            (["init", "--out", temporaryFolder().path, "--hidden", "30", "--heads", "4"], "multiple"),
        ]
        for (args, phrase) in cases {
            let run = try parscale(args)
            XCTAssertNotEqual(run.status, 0, args.joined(separator: " "))
            XCTAssertTrue(run.err.contains(phrase), "\(args): '\(run.err)' lacks '\(phrase)'")
            XCTAssertFalse(run.err.contains("Fatal error"), run.err)
        }
        // A corrupt checkpoint: the weights file cut short.
        let dir = temporaryFolder()
        for name in ["config.json", "model.safetensors"] {
            try FileManager.default.copyItem(
                at: URL(fileURLWithPath: model).appendingPathComponent(name), to: dir.appendingPathComponent(name))
        }
        let weights = dir.appendingPathComponent("model.safetensors")
        try Data(contentsOf: weights).prefix(1000).write(to: weights)
        let run = try parscale(["generate", "--model", dir.path, "--prompt", "a"])
        XCTAssertNotEqual(run.status, 0)
        XCTAssertTrue(run.err.contains("model.safetensors"), run.err)
    }

    /// A minimal independent safetensors reader (F32 only), so this test does not trust the library.
    func readF32(_ url: URL, _ name: String) throws -> (shape: [Int], values: [Float]) {
        let data = try Data(contentsOf: url)
        let headerLength = Int(data.prefix(8).withUnsafeBytes { $0.loadUnaligned(as: UInt64.self) })
        let header = try JSONSerialization.jsonObject(with: data.subdata(in: 8..<8 + headerLength)) as! [String: Any]
        let entry = try XCTUnwrap(header[name] as? [String: Any])
        XCTAssertEqual(entry["dtype"] as? String, "F32")
        let offsets = entry["data_offsets"] as! [Int]
        let bytes = data.subdata(in: 8 + headerLength + offsets[0]..<8 + headerLength + offsets[1])
        let values = bytes.withUnsafeBytes { raw in (0..<bytes.count / 4).map { raw.loadUnaligned(fromByteOffset: $0 * 4, as: Float.self) } }
        return (entry["shape"] as! [Int], values)
    }

    func testPretrainThenEvalAndResumeThroughTheCLI() throws {
        let run = temporaryFolder().appendingPathComponent("run").path
        let args = ["pretrain", "--out", run, "--size", "tiny", "--P", "2", "--prefix-tokens", "4", "--steps", "4",
                    "--seq", "32", "--batch", "2", "--eval-windows", "2", "--task-examples", "2", "--stop-after", "2"]
        let first = try parscale(args)
        XCTAssertEqual(first.status, 0, first.err)
        XCTAssertTrue(first.err.contains("continue with --resume"), first.err)
        let again = try parscale(args)
        XCTAssertNotEqual(again.status, 0)
        XCTAssertTrue(again.err.contains("--resume"), again.err)
        let resumed = try parscale(["pretrain", "--out", run, "--resume"])
        XCTAssertEqual(resumed.status, 0, resumed.err)
        XCTAssertTrue(resumed.err.contains("step 4/4"), resumed.err)
        let metrics = try String(contentsOfFile: run + "/metrics.jsonl", encoding: .utf8)
        XCTAssertEqual(metrics.split(separator: "\n").filter { $0.contains("\"loss\"") }.count, 4)
        let eval = try json(try parscale(["eval", "--model", run, "--windows", "2", "--seq", "32", "--task-examples", "3", "--json"]).out)
        XCTAssertNotNil(eval["val_loss"] as? Double)
        XCTAssertNotNil(eval["bits_per_byte"] as? Double)
        XCTAssertNotNil(eval["task_accuracy"] as? Double)
        let bad = try parscale(["pretrain", "--out", temporaryFolder().path, "--data", "/nonexistent/corpus", "--steps", "1"])
        XCTAssertNotEqual(bad.status, 0)
        XCTAssertTrue(bad.err.contains("/nonexistent/corpus"), bad.err)
        // More streams than the decorrelation penalty supports: refused before any file is written
        // (the data step may have made the empty folder).
        let wide = temporaryFolder().appendingPathComponent("wide").path
        let tooWide = try parscale(["pretrain", "--out", wide, "--size", "tiny", "--P", "33", "--stream-decorrelation", "0.1", "--steps", "1"])
        XCTAssertNotEqual(tooWide.status, 0)
        XCTAssertTrue(tooWide.err.contains("--stream-decorrelation supports at most 32 streams"), tooWide.err)
        XCTAssertEqual((try? FileManager.default.contentsOfDirectory(atPath: wide)) ?? [], [], "nothing may be written for a refused run")
    }

    /// `pretrain --backend vulkan` (lavapipe here) ends at the CPU run's validation loss.
    func testPretrainOnVulkanMatchesTheCPU() throws {
        _ = try Lavapipe.icd()
        var losses: [Double] = []
        for backend in ["cpu", "vulkan"] {
            let run = temporaryFolder().appendingPathComponent("run").path
            let result = try parscale(["pretrain", "--out", run, "--size", "tiny", "--P", "2", "--prefix-tokens", "4", "--steps", "2",
                                       "--seq", "16", "--batch", "2", "--eval-windows", "2", "--task-examples", "0", "--backend", backend])
            XCTAssertEqual(result.status, 0, result.err)
            XCTAssertTrue(result.err.contains(backend == "cpu" ? "cpu (OpenBLAS" : "vulkan ("), result.err)
            let state = try Data(contentsOf: URL(fileURLWithPath: run + "/checkpoint/trainer_state.json"))
            losses.append(try XCTUnwrap((JSONSerialization.jsonObject(with: state) as? [String: Any])?["lastValidationLoss"] as? Double))
        }
        XCTAssertEqual(losses[1], losses[0], accuracy: 1e-4 * losses[0])
    }

    /// Sweeps (and so ablations and studies) train on the chosen backend: the same tiny sweep on
    /// Vulkan (lavapipe) and on the CPU ends at the same validation losses, each result naming its backend.
    func testSweepOnVulkanMatchesTheCPU() throws {
        _ = try Lavapipe.icd()
        setenv("LP_NUM_THREADS", "0", 0)  // lavapipe on the calling thread: far faster for tiny dispatches
        var losses: [[Double]] = []
        for backend in ["cpu", "vulkan"] {
            let dir = temporaryFolder().appendingPathComponent("sweep-\(backend)").path
            let run = try parscale(["sweep", "--preset", "tiny", "--out", dir, "--sizes", "32", "--P", "1,2", "--seeds", "0",
                                    "--tokens", "2048", "--backend", backend])
            XCTAssertEqual(run.status, 0, run.err)
            losses.append(try ["h32-p1-s0", "h32-p2-s0"].map { name in
                let result = try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: "\(dir)/runs/\(name)/result.json"))) as! [String: Any]
                XCTAssertTrue((result["backend"] as? String)?.hasPrefix(backend) == true, "\(result["backend"] ?? "")")
                return try XCTUnwrap(result["validationLoss"] as? Double)
            })
        }
        for (vulkan, cpu) in zip(losses[1], losses[0]) { XCTAssertEqual(vulkan, cpu, accuracy: 1e-4 * cpu) }
    }

    func testRecycleFrozenThenAdapterAndMergeThroughTheCLI() throws {
        let base = TestPaths.reference.appendingPathComponent("p1_tied").path
        let run = temporaryFolder().appendingPathComponent("recycled").path
        let recycle = try parscale(["recycle", "--from", base, "--P", "2", "--out", run, "--prefix-tokens", "4",
                                    "--freeze-backbone", "--steps", "2", "--seq", "16", "--batch", "2", "--eval-windows", "2",
                                    "--task-examples", "0"])
        XCTAssertEqual(recycle.status, 0, recycle.err)
        XCTAssertTrue(recycle.err.contains("step 0 val loss"), recycle.err)
        // Recycling's defaults: the continued learning rate, 10x on the new parts.
        let state = try String(contentsOfFile: run + "/checkpoint/trainer_state.json", encoding: .utf8)
        XCTAssertTrue(state.contains("\"parscale_lr_scale\" : \"10.0\""), state)
        XCTAssertTrue(state.contains("\"learningRate\" : 0.0003"), state)
        let adapter = run + "/adapter.safetensors"
        XCTAssertTrue(FileManager.default.fileExists(atPath: adapter), recycle.err)
        // The adapter on its backbone equals the recycled run's own checkpoint.
        let viaAdapter = try json(try parscale(["generate", "--model", base, "--adapter", adapter, "--prompt-tokens", "1,2,3",
                                                "--max-new-tokens", "6", "--json"]).out)
        let viaRun = try json(try parscale(["generate", "--model", run, "--prompt-tokens", "1,2,3", "--max-new-tokens", "6", "--json"]).out)
        XCTAssertEqual(viaAdapter["tokens"] as? [Int], viaRun["tokens"] as? [Int])
        let info = try json(try parscale(["info", "--model", base, "--adapter", adapter, "--json"]).out)
        XCTAssertEqual((info["config"] as? [String: Any])?["parscale_n"] as? Int, 2)
        let merged = temporaryFolder().appendingPathComponent("merged").path
        let merge = try parscale(["merge", "--model", base, "--adapter", adapter, "--out", merged])
        XCTAssertEqual(merge.status, 0, merge.err)
        let viaMerged = try json(try parscale(["generate", "--model", merged, "--prompt-tokens", "1,2,3", "--max-new-tokens", "6", "--json"]).out)
        XCTAssertEqual(viaMerged["tokens"] as? [Int], viaRun["tokens"] as? [Int])
        // The wrong backbone is refused.
        let wrong = try parscale(["generate", "--model", TestPaths.reference.appendingPathComponent("p2_t8_untied").path,
                                  "--adapter", adapter, "--prompt-tokens", "1"])
        XCTAssertNotEqual(wrong.status, 0)
        XCTAssertTrue(wrong.err.contains("P = 1 backbone"), wrong.err)
        let notP1 = try parscale(["recycle", "--from", TestPaths.reference.appendingPathComponent("p2_t8_untied").path, "--P", "4",
                                  "--out", temporaryFolder().path, "--steps", "1"])
        XCTAssertNotEqual(notP1.status, 0)
        XCTAssertTrue(notP1.err.contains("P = 1"), notP1.err)
    }

    /// The tiny study end to end, as CI runs it: sweep, fit, cost, report.
    func testTinyStudyWritesItsReport() throws {
        let dir = temporaryFolder().appendingPathComponent("study").path
        let run = try parscale(["study", "--preset", "tiny", "--out", dir])
        XCTAssertEqual(run.status, 0, run.err)
        XCTAssertTrue(run.err.contains("fit: k ="), run.err)
        XCTAssertTrue(run.out.contains("paper (1.6B, P = 8"), run.out)
        for file in ["report.html", "report.md", "fit.json", "cost.json", "plan.json"] {
            XCTAssertTrue(FileManager.default.fileExists(atPath: dir + "/" + file), file)
        }
        let fit = try json(try parscale(["fit", dir, "--samples", "5", "--json"]).out)
        for key in ["E", "A", "alpha", "k", "r2"] { XCTAssertNotNil(fit[key] as? Double, key) }
        // A second study run skips every finished run.
        let again = try parscale(["study", "--preset", "tiny", "--out", dir])
        XCTAssertEqual(again.err.components(separatedBy: "skipped").count - 1, 6, again.err)
        let jobs = try parscale(["sweep", "--preset", "tiny", "--out", dir, "--emit-jobs"])
        XCTAssertEqual(jobs.out.split(separator: "\n").count, 6)
        XCTAssertTrue(jobs.out.contains("--only h64-p2-s0"), jobs.out)
        let bad = try parscale(["fit", "/nonexistent/sweep"])
        XCTAssertNotEqual(bad.status, 0)
        XCTAssertTrue(bad.err.contains("/nonexistent/sweep"), bad.err)
    }

    /// `sweep --slurm FILE`: a job array with one run per task, the binary and flags baked in, run
    /// from this folder, a log per task (Tools/cluster-check.sh submits it to a real Slurm).
    func testSweepWritesASlurmArrayScript() throws {
        let dir = temporaryFolder().path
        let script = dir + "/grid.sbatch"
        let run = try parscale(["sweep", "--preset", "tiny", "--out", dir + "/study", "--seeds", "0,1", "--slurm", script])
        XCTAssertEqual(run.status, 0, run.err)
        let text = try String(contentsOfFile: script, encoding: .utf8)
        XCTAssertTrue(text.hasPrefix("#!/bin/bash\n"), text)
        XCTAssertTrue(text.contains("#SBATCH --array=0-11\n"), text)  // 3 sizes x 2 P x 2 seeds
        XCTAssertTrue(text.contains("#SBATCH --output=\(dir)/study/logs/task-%a.log\n#SBATCH --open-mode=append\n"), text)
        XCTAssertTrue(text.contains("#SBATCH --chdir=\(FileManager.default.currentDirectoryPath)\n"), text)
        XCTAssertTrue(text.contains("runs=(h32-p1-s0 h32-p1-s1 h32-p2-s0 h32-p2-s1 h48-p1-s0"), text)
        XCTAssertTrue(
            text.contains("exec \(binary.resolvingSymlinksInPath().path) sweep --preset tiny --out \(dir)/study --seeds 0,1 --only \"$run\"\n"), text)
        XCTAssertEqual(FileManager.default.isExecutableFile(atPath: script), true)
        XCTAssertTrue(FileManager.default.fileExists(atPath: dir + "/study/plan.json"))
        XCTAssertTrue(FileManager.default.fileExists(atPath: dir + "/study/logs"))
        // Every #SBATCH line comes before the first command, or sbatch ignores it.
        let lines = text.split(separator: "\n")
        let firstCommand = try XCTUnwrap(lines.firstIndex { !$0.hasPrefix("#") })
        XCTAssertFalse(lines[firstCommand...].contains { $0.hasPrefix("#SBATCH") }, text)
        let both = try parscale(["sweep", "--preset", "tiny", "--out", dir + "/study", "--emit-jobs", "--slurm", script])
        XCTAssertNotEqual(both.status, 0)
        XCTAssertTrue(both.err.contains("--emit-jobs or --slurm"), both.err)
    }

    /// A tiny ablation end to end: P = 1 runs shared by the recipes, cells paired by seed, the
    /// table in JSON, in ablation.md and in the report.
    func testTinyAblationTabulatesRecipesAgainstP1() throws {
        let dir = temporaryFolder().appendingPathComponent("ablation").path
        let args = ["ablate", "--out", dir, "--recipes", "base,reparam", "--sizes", "32,48", "--P", "2", "--seeds", "0,1",
                    "--tokens", "4096", "--corpus", "synthetic"]
        let run = try parscale(args)
        XCTAssertEqual(run.status, 0, run.err)
        let runs = try FileManager.default.contentsOfDirectory(atPath: dir + "/runs").sorted()
        XCTAssertEqual(runs.count, 4 + 2 * 4, "\(runs)")  // P = 1 once per size and seed, then each recipe
        XCTAssertTrue(runs.contains("h32-p1-s0") && runs.contains("reparam-h48-p2-s1"), "\(runs)")
        let state = try String(contentsOfFile: dir + "/runs/reparam-h32-p2-s0/checkpoint/trainer_state.json", encoding: .utf8)
        XCTAssertTrue(state.contains("\"prefix_reparam\" : \"64\""), state)
        XCTAssertTrue(FileManager.default.fileExists(atPath: dir + "/runs/reparam-h32-p2-s0/checkpoint/reparam.safetensors"))
        let table = try JSONSerialization.jsonObject(with: Data(try parscale(args + ["--table-only", "--json"]).out.utf8)) as! [String: Any]
        let cells = try XCTUnwrap(table["cells"] as? [[String: Any]])
        XCTAssertEqual(cells.count, 4)  // 2 recipes x 2 sizes
        for cell in cells {
            XCTAssertEqual(cell["seeds"] as? [Int], [0, 1])
            let losses = try XCTUnwrap(cell["losses"] as? [Double]), mean = try XCTUnwrap(cell["mean"] as? Double)
            XCTAssertEqual(mean, losses.reduce(0, +) / 2, accuracy: 1e-12)
            XCTAssertNotNil(cell["differenceSE"] as? Double)
            XCTAssertNotNil(cell["lawGain"] as? Double)
        }
        // base against the default (reparam): per seed, the two cells' losses subtracted.
        let vsDefault = try XCTUnwrap(table["againstDefault"] as? [[String: Any]])
        XCTAssertEqual(vsDefault.count, 2)  // one P, so one row per size
        for row in vsDefault {
            XCTAssertEqual(row["recipe"] as? String, "base")
            let h = try XCTUnwrap(row["hidden"] as? Int)
            func losses(_ recipe: String) throws -> [Double] {
                try XCTUnwrap(cells.first { $0["recipe"] as? String == recipe && $0["hidden"] as? Int == h }?["losses"] as? [Double])
            }
            let expected = zip(try losses("base"), try losses("reparam")).map { $0 - $1 }
            let differences = try XCTUnwrap(row["differences"] as? [Double])
            for (d, e) in zip(differences, expected) { XCTAssertEqual(d, e, accuracy: 1e-12) }
        }
        XCTAssertTrue(try parscale(args + ["--table-only"]).out.contains("A recipe replaces the default (reparam) only if"))
        XCTAssertTrue(try String(contentsOfFile: dir + "/ablation.md", encoding: .utf8).contains("| reparam | 48 | 2 | 2 |"))
        XCTAssertEqual(try parscale(["report", dir]).status, 0)
        XCTAssertTrue(try String(contentsOfFile: dir + "/report.md", encoding: .utf8).contains("Recipe ablation"))
        // A second run trains nothing; an unknown recipe is a clear error.
        XCTAssertEqual(try parscale(args).err.components(separatedBy: "skipped").count - 1, 12)
        let bad = try parscale(["ablate", "--out", dir, "--recipes", "nonsense"])
        XCTAssertNotEqual(bad.status, 0)
        XCTAssertTrue(bad.err.contains("unknown recipe 'nonsense'"), bad.err)
        let empty = try parscale(["ablate", "--out", dir + "-missing", "--table-only"])
        XCTAssertNotEqual(empty.status, 0)
        XCTAssertTrue(empty.err.contains("no ablation runs there"), empty.err)
    }

    // MARK: - Sharded and BF16/F16 model folders

    func files(_ dir: String) -> [String] {
        ((try? FileManager.default.contentsOfDirectory(atPath: dir)) ?? []).filter { !$0.hasPrefix(".") }.sorted()
    }

    /// `init --dtype bf16 --max-shard-size 100KB` writes transformers-style shards that `info` and
    /// `logits` read; a bad size or dtype is a usage error naming the flag.
    func testInitWritesBF16ShardsThatInfoAndLogitsRead() throws {
        let dir = temporaryFolder().appendingPathComponent("sharded").path
        let shape = ["--hidden", "64", "--layers", "2", "--heads", "4", "--kv-heads", "2", "--intermediate", "176", "--P", "2"]
        let run = try parscale(["init", "--out", dir] + shape + ["--dtype", "bf16", "--max-shard-size", "100KB"])
        XCTAssertEqual(run.status, 0, run.err)
        let shards = files(dir).filter { $0.hasPrefix("model-") }
        XCTAssertGreaterThanOrEqual(shards.count, 3, "\(files(dir))")
        XCTAssertEqual(files(dir), (["config.json", "model.safetensors.index.json"] + shards).sorted())
        let index = try XCTUnwrap(
            JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: dir + "/model.safetensors.index.json"))) as? [String: Any])
        let map = try XCTUnwrap(index["weight_map"] as? [String: String])
        XCTAssertEqual(Set(map.values), Set(shards))
        var shardBytes = 0
        for shard in shards {
            let data = try Data(contentsOf: URL(fileURLWithPath: dir + "/" + shard))
            XCTAssertLessThanOrEqual(data.count, 101_000, shard)
            XCTAssertTrue(String(decoding: data.prefix(2000), as: UTF8.self).contains("\"BF16\""), shard)
            shardBytes += data.count
        }
        let info = try parscale(["info", "--model", dir, "--json"])
        XCTAssertEqual(info.status, 0, info.err)
        let object = try json(info.out)
        XCTAssertEqual(object["file_bytes"] as? Int, shardBytes)
        let parameters = try XCTUnwrap(object["parameters"] as? Int)
        XCTAssertEqual((index["metadata"] as? [String: Any])?["total_size"] as? Int, 2 * parameters)
        let out = temporaryFolder().appendingPathComponent("logits.safetensors").path
        let logits = try parscale(["logits", "--model", dir, "--tokens", "1,2,3", "--out", out])
        XCTAssertEqual(logits.status, 0, logits.err)
        XCTAssertTrue(FileManager.default.fileExists(atPath: out))
        // The same folder rewritten as one f16 file: the shards and the index go.
        let single = try parscale(["init", "--out", dir, "--force", "--dtype", "f16"] + shape)
        XCTAssertEqual(single.status, 0, single.err)
        XCTAssertEqual(files(dir), ["config.json", "model.safetensors"])
        XCTAssertEqual(try parscale(["info", "--model", dir]).status, 0)
        for (flags, phrase) in [(["--max-shard-size", "5XB"], "--max-shard-size"), (["--max-shard-size", "0"], "--max-shard-size"),
                                (["--max-shard-size", "1.5GB"], "2GiB"), (["--dtype", "f8"], "--dtype")] {
            let bad = try parscale(["init", "--out", temporaryFolder().path + "/bad"] + shape + flags)
            XCTAssertNotEqual(bad.status, 0, "\(flags)")
            XCTAssertTrue(bad.err.contains(phrase), "\(flags): \(bad.err)")
            XCTAssertFalse(bad.err.contains("Fatal error"), bad.err)
        }
    }

    /// A byte-level BPE tokenizer.json (GPT-2's byte-to-character map, id = byte, no merges), in
    /// the Hugging Face format: any text reads as its bytes, as a vocabulary-256 model expects.
    func byteLevelTokenizerJSON() throws -> Data {
        var bytes = Array(33...126) + Array(161...172) + Array(174...255)
        var chars = bytes
        for b in 0..<256 where !bytes.contains(b) {
            bytes.append(b)
            chars.append(256 + chars.count - 188)
        }
        var vocab: [String: Int] = [:]
        for (b, c) in zip(bytes, chars) { vocab[String(UnicodeScalar(UInt32(c))!)] = b }
        let tokenizer: [String: Any] = [
            "version": "1.0", "truncation": NSNull(), "padding": NSNull(), "added_tokens": [], "normalizer": NSNull(),
            "pre_tokenizer": ["type": "ByteLevel", "add_prefix_space": false, "trim_offsets": true, "use_regex": true],
            "post_processor": NSNull(),
            "decoder": ["type": "ByteLevel", "add_prefix_space": true, "trim_offsets": true, "use_regex": true],
            "model": [
                "type": "BPE", "dropout": NSNull(), "unk_token": NSNull(), "continuing_subword_prefix": NSNull(),
                "end_of_word_suffix": NSNull(), "fuse_unk": false, "byte_fallback": false, "vocab": vocab, "merges": [],
            ] as [String: Any],
        ]
        return try JSONSerialization.data(withJSONObject: tokenizer, options: [.sortedKeys])
    }

    /// recycle and merge write complete model folders: the source's tokenizer.json and
    /// generation_config.json travel with bf16 / f16 weights.
    func testRecycleAndMergeCarryTheTokenizerWithBF16Weights() throws {
        let source = temporaryFolder().appendingPathComponent("base").path
        let made = try parscale(["init", "--out", source, "--hidden", "32", "--layers", "2", "--heads", "4", "--kv-heads", "2",
                                 "--intermediate", "64", "--P", "1"])
        XCTAssertEqual(made.status, 0, made.err)
        let tokenizer = try byteLevelTokenizerJSON(), generation = Data(#"{"do_sample": true, "temperature": 0.7}"#.utf8)
        try tokenizer.write(to: URL(fileURLWithPath: source + "/tokenizer.json"))
        try generation.write(to: URL(fileURLWithPath: source + "/generation_config.json"))
        let text = temporaryFolder().appendingPathComponent("text.txt")
        try Data(String(repeating: "let x = 1 + 2 // three\nprint(x)\n", count: 300).utf8).write(to: text)
        let run = temporaryFolder().appendingPathComponent("recycled").path
        let recycle = try parscale(["recycle", "--from", source, "--P", "2", "--out", run, "--prefix-tokens", "4",
                                    "--freeze-backbone", "--steps", "2", "--seq", "16", "--batch", "2", "--eval-windows", "2",
                                    "--task-examples", "0", "--data", text.path, "--dtype", "bf16", "--max-shard-size", "20KB"])
        XCTAssertEqual(recycle.status, 0, recycle.err)
        let checkpoint = run + "/checkpoint"
        XCTAssertEqual(FileManager.default.contents(atPath: checkpoint + "/tokenizer.json"), tokenizer)
        XCTAssertEqual(FileManager.default.contents(atPath: checkpoint + "/generation_config.json"), generation)
        XCTAssertTrue(files(checkpoint).contains("model.safetensors.index.json"), "\(files(checkpoint))")
        XCTAssertTrue(files(checkpoint).contains("master.safetensors"), "\(files(checkpoint))")
        XCTAssertFalse(files(checkpoint).contains("model.safetensors"), "\(files(checkpoint))")
        let state = try String(contentsOfFile: checkpoint + "/trainer_state.json", encoding: .utf8)
        XCTAssertTrue(state.contains("\"checkpointDType\" : \"BF16\""), state)
        XCTAssertTrue(state.contains("\"maxShardBytes\" : 20000"), state)
        XCTAssertEqual(try parscale(["info", "--model", run]).status, 0)

        let merged = temporaryFolder().appendingPathComponent("merged").path
        let merge = try parscale(["merge", "--model", source, "--adapter", run + "/adapter.safetensors", "--out", merged,
                                  "--dtype", "f16", "--max-shard-size", "30KB"])
        XCTAssertEqual(merge.status, 0, merge.err)
        XCTAssertEqual(FileManager.default.contents(atPath: merged + "/tokenizer.json"), tokenizer)
        XCTAssertEqual(FileManager.default.contents(atPath: merged + "/generation_config.json"), generation)
        XCTAssertGreaterThanOrEqual(files(merged).filter { $0.hasPrefix("model-") }.count, 2, "\(files(merged))")
        let logits = try parscale(["logits", "--model", merged, "--tokens", "1,2,3", "--out", merged + "/../l.safetensors"])
        XCTAssertEqual(logits.status, 0, logits.err)
    }

    /// pretrain with bf16 shards: stopped and resumed equals straight through, bit for bit (the
    /// exact f32 weights are kept for --resume), and --from carries the source's tokenizer files.
    func testPretrainResumeIsExactWithBF16Shards() throws {
        let flags = ["--size", "tiny", "--P", "2", "--steps", "4", "--seq", "16", "--batch", "2", "--eval-windows", "2",
                     "--task-examples", "0", "--backend", "cpu", "--dtype", "bf16", "--max-shard-size", "40KB"]
        let straight = temporaryFolder().appendingPathComponent("straight").path, split = temporaryFolder().appendingPathComponent("split").path
        XCTAssertEqual(try parscale(["pretrain", "--out", straight] + flags).status, 0)
        let first = try parscale(["pretrain", "--out", split, "--stop-after", "2"] + flags)
        XCTAssertEqual(first.status, 0, first.err)
        let resumed = try parscale(["pretrain", "--out", split, "--resume", "--backend", "cpu"])
        XCTAssertEqual(resumed.status, 0, resumed.err)
        func lossBits(_ run: String) throws -> [UInt64] {
            try String(contentsOfFile: run + "/metrics.jsonl", encoding: .utf8).split(separator: "\n").compactMap { line in
                ((try JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any])?["loss"] as? Double)?.bitPattern
            }
        }
        XCTAssertEqual(try lossBits(straight), try lossBits(split))
        XCTAssertEqual(try lossBits(split).count, 4)
        for name in ["master.safetensors"] + files(straight + "/checkpoint").filter({ $0.hasPrefix("model") }) {
            XCTAssertEqual(
                FileManager.default.contents(atPath: straight + "/checkpoint/" + name),
                FileManager.default.contents(atPath: split + "/checkpoint/" + name), name)
        }
        XCTAssertGreaterThanOrEqual(files(split + "/checkpoint").filter { $0.hasPrefix("model-") }.count, 3)
        // --from: the source's generation_config.json goes into every checkpoint.
        let generation = Data(#"{"max_new_tokens": 9}"#.utf8)
        try generation.write(to: URL(fileURLWithPath: straight + "/checkpoint/generation_config.json"))
        let continued = temporaryFolder().appendingPathComponent("continued").path
        let from = try parscale(["pretrain", "--out", continued, "--from", straight, "--steps", "1", "--seq", "16", "--batch", "2",
                                 "--eval-windows", "2", "--task-examples", "0", "--backend", "cpu"])
        XCTAssertEqual(from.status, 0, from.err)
        XCTAssertEqual(FileManager.default.contents(atPath: continued + "/checkpoint/generation_config.json"), generation)
        XCTAssertEqual(files(continued + "/checkpoint").filter { $0.hasPrefix("model") }, ["model.safetensors"])
    }

    /// The frontier on two tiny random models: every point, the files, a resumed cell that gives
    /// the same answers, and clear errors for bad flags.
    func testFrontierOnTinyModelsWritesPointsAndResumes() throws {
        let root = temporaryFolder()
        let shape = ["--hidden", "32", "--layers", "1", "--heads", "4", "--kv-heads", "2", "--intermediate", "64", "--vocab", "256", "--tied"]
        for P in [1, 2] {
            let run = try parscale(["init", "--out", root.appendingPathComponent("p\(P)").path, "--P", "\(P)", "--prefix-tokens", "4"] + shape)
            XCTAssertEqual(run.status, 0, run.err)
        }
        let out = root.appendingPathComponent("frontier").path
        let args = ["frontier", "--models", root.appendingPathComponent("p1").path, root.appendingPathComponent("p2").path,
                    "--prompts", "6", "--samples", "1,2", "--dtype", "f32,bf16", "--latency-prompts", "1", "--max-new-tokens", "10",
                    "--out", out, "--backend", "cpu", "--json"]
        let run = try parscale(args)
        XCTAssertEqual(run.status, 0, run.err)
        XCTAssertTrue(run.err.contains("6/6 prompts"), run.err)
        let points = try XCTUnwrap(try json(run.out)["points"] as? [[String: Any]])
        // 2 models x 2 dtypes x (greedy, 1 sample, and majority / log-prob / checker at n = 2).
        XCTAssertEqual(points.count, 2 * 2 * 5)
        for p in points {
            let accuracy = try XCTUnwrap(p["accuracy"] as? Double), low = try XCTUnwrap(p["low"] as? Double), high = try XCTUnwrap(p["high"] as? Double)
            XCTAssertTrue(low <= accuracy && accuracy <= high, "\(p)")
            XCTAssertGreaterThan(p["flops_per_question"] as? Double ?? 0, 0)
            XCTAssertGreaterThan(p["latency_batched_s"] as? Double ?? 0, 0)
            XCTAssertGreaterThan(p["memory_measured_bytes"] as? Int ?? 0, 0)
        }
        func greedy(_ model: String, _ dtype: String) -> [String: Any]? {
            points.first { $0["model"] as? String == model && $0["dtype"] as? String == dtype && $0["strategy"] as? String == "greedy" }
        }
        // Two streams cost more than one on the same backbone, and bf16 weights count half the bytes.
        XCTAssertGreaterThan(greedy("p2", "F32")?["flops_per_question"] as? Double ?? 0, greedy("p1", "F32")?["flops_per_question"] as? Double ?? .infinity)
        XCTAssertLessThan(greedy("p1", "BF16")?["memory_counted_bytes"] as? Int ?? .max, greedy("p1", "F32")?["memory_counted_bytes"] as? Int ?? 0)
        for file in ["frontier.html", "frontier.md", "frontier.json", "frontier-flops.svg", "frontier-latency.svg", "frontier-plan.json"] {
            XCTAssertTrue(FileManager.default.fileExists(atPath: out + "/" + file), file)
        }
        // A cell cut after 3 prompts (as an interruption leaves it) continues to the same answers.
        let cellPath = out + "/frontier-cells/p2-F32.json"
        let whole = try XCTUnwrap(JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: cellPath))) as? [String: Any])
        var cut = whole
        cut["questions"] = Array((whole["questions"] as! [Any]).prefix(3))
        cut["latency"] = nil
        cut["memory"] = nil
        try JSONSerialization.data(withJSONObject: cut).write(to: URL(fileURLWithPath: cellPath))
        let again = try parscale(args)
        XCTAssertEqual(again.status, 0, again.err)
        XCTAssertEqual(again.err.components(separatedBy: "done before, skipped").count - 1, 3, again.err)
        let resumed = try XCTUnwrap(JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: cellPath))) as? [String: Any])
        XCTAssertEqual((resumed["questions"] as? NSArray)?.count, 6)
        XCTAssertEqual(resumed["questions"] as? NSArray, whole["questions"] as? NSArray)
        // Other settings in the same folder, and bad flags, are refused with the flag named.
        let changed = try parscale(args.map { $0 == "1,2" ? "1,4" : $0 })
        XCTAssertNotEqual(changed.status, 0)
        XCTAssertTrue(changed.err.contains("frontier-plan.json"), changed.err)
        for (bad, expected) in [(["--dtype", "f8"], "--dtype"), (["--samples", "0,2"], "--samples"), (["--temperature", "0"], "--temperature")] {
            let r = try parscale(["frontier", "--models", root.appendingPathComponent("p1").path, "--out", out + "-bad"] + bad)
            XCTAssertNotEqual(r.status, 0)
            XCTAssertTrue(r.err.contains(expected), r.err)
        }
        let missing = try parscale(["frontier", "--models", "/nonexistent/model", "--out", out + "-missing"])
        XCTAssertNotEqual(missing.status, 0)
        XCTAssertTrue(missing.err.contains("/nonexistent/model"), missing.err)
    }
}
