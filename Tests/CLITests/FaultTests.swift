import Foundation
import TestSupport
import XCTest

#if canImport(Glibc)
import Glibc
#endif

/// Faults a long run meets (issue #16), on the `parscale` binary as a user runs it: SIGKILL at
/// random moments of pretrain, recycle and sweep, each followed by resume; a full disk and a
/// read-only run folder while checkpointing; a corpus changed between runs.
final class FaultTests: XCTestCase {
    /// Seed of the kill times; PARSCALE_FAULT_SEED=N repeats the schedule a failure printed.
    var faultSeed: UInt64 { ProcessInfo.processInfo.environment["PARSCALE_FAULT_SEED"].flatMap { UInt64($0) } ?? 16 }

    /// SplitMix64: the kill times, reproducible from the seed.
    struct KillClock {
        var state: UInt64
        mutating func next() -> Double {
            state &+= 0x9E37_79B9_7F4A_7C15
            var z = state
            z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
            z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
            return Double((z ^ (z >> 31)) >> 11) / Double(1 << 53)
        }
    }

    /// Every path under `dir` (hidden ones included), for the stray-file checks.
    func tree(_ dir: String) -> [String] {
        ((FileManager.default.enumerator(atPath: dir)?.allObjects as? [String]) ?? []).sorted()
    }

    /// A JSON object without its wall-clock fields (those differ between any two runs).
    func withoutTimes(_ object: Any?) -> NSDictionary {
        var dict = (object as? [String: Any]) ?? [:]
        for key in ["elapsed_s", "tokens_per_s", "elapsedSeconds", "wallSeconds"] { dict[key] = nil }
        return dict as NSDictionary
    }

    func jsonFile(_ path: String) throws -> Any {
        try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: path)))
    }

    func metrics(_ run: String) throws -> [NSDictionary] {
        try String(contentsOfFile: run + "/metrics.jsonl", encoding: .utf8).split(separator: "\n").map {
            withoutTimes(try JSONSerialization.jsonObject(with: Data($0.utf8)))
        }
    }

    /// The run in `ours` ended where `straight` did: the same files (no strays), the same bytes in
    /// the weight and optimizer files, the same trainer state and metrics (times aside).
    func assertSameRun(_ ours: String, _ straight: String, _ context: String) throws {
        XCTAssertEqual(tree(ours), tree(straight), "files (\(context))")
        for path in tree(straight) where path.hasSuffix(".safetensors") || path.hasSuffix("config.json") {
            XCTAssertEqual(
                FileManager.default.contents(atPath: ours + "/" + path), FileManager.default.contents(atPath: straight + "/" + path),
                "\(path) (\(context))")
        }
        for path in tree(straight) where path.hasSuffix("trainer_state.json") || path.hasSuffix("result.json") {
            XCTAssertEqual(withoutTimes(try jsonFile(ours + "/" + path)), withoutTimes(try jsonFile(straight + "/" + path)), "\(path) (\(context))")
        }
        for path in [""] + tree(straight) where FileManager.default.fileExists(atPath: straight + "/" + path + "/metrics.jsonl") {
            XCTAssertEqual(try metrics(ours + "/" + path), try metrics(straight + "/" + path), "\(path)/metrics.jsonl (\(context))")
        }
    }

    /// Lines of every metrics.jsonl under `dir`: how far its runs have come.
    func metricLines(_ dir: String) -> Int {
        tree(dir).filter { $0.hasSuffix("metrics.jsonl") }.reduce(0) { total, path in
            total + (FileManager.default.contents(atPath: dir + "/" + path)?.filter { $0 == 10 }.count ?? 0)
        }
    }

    /// Runs `command` (or `resume`, once `dir` holds a checkpoint) `kills` times, each killed with
    /// SIGKILL at a random moment unless it ends first, then once to its end. The moment is by
    /// progress, not by the clock (so a loaded machine moves it little): once the metrics have a
    /// random count of lines between where the attempt starts and `totalLines - 3`, plus a random part
    /// of `lineSeconds` (so it falls anywhere in a step: the step, an evaluation, a checkpoint
    /// write). Returns one line per attempt.
    func runWithKills(
        _ command: [String], resume: [String], dir: String, kills: Int, totalLines: Int, lineSeconds: Double,
        clock: inout KillClock
    ) throws -> [String] {
        let fm = FileManager.default
        let logs = temporaryFolder()
        var outcomes: [String] = []
        for attempt in 0...kills {
            let saved = fm.fileExists(atPath: dir + "/checkpoint") || fm.fileExists(atPath: dir + "/checkpoint.previous")
            let log = logs.appendingPathComponent("attempt-\(attempt).log").path
            fm.createFile(atPath: log, contents: nil)
            let process = Process()
            process.executableURL = binary
            process.arguments = saved ? resume : command
            process.standardOutput = FileHandle.nullDevice
            process.standardError = FileHandle(forWritingAtPath: log)
            // At most the third-last line, so that most kills land before the run ends.
            let startLines = min(metricLines(dir), totalLines - 3)
            let killLines = startLines + Int(clock.next() * Double(totalLines - 2 - startLines))
            let extra = clock.next() * lineSeconds
            try process.run()
            var killedAt = ""
            if attempt < kills {
                let deadline = Date().addingTimeInterval(120)
                while process.isRunning && metricLines(dir) < killLines && Date() < deadline { usleep(2000) }
                usleep(useconds_t(extra * 1e6))
                killedAt = "at line \(metricLines(dir)) of \(totalLines)"
                if process.isRunning { kill(process.processIdentifier, SIGKILL) }
            }
            process.waitUntilExit()
            let err = (try? String(contentsOfFile: log, encoding: .utf8)) ?? ""
            let how = saved ? "resumed" : "started"
            if process.terminationReason == .uncaughtSignal {
                XCTAssertEqual(process.terminationStatus, SIGKILL, err)
                outcomes.append("\(how), killed \(killedAt) + \(String(format: "%.0f", extra * 1000)) ms")
                continue
            }
            XCTAssertEqual(process.terminationStatus, 0, "attempt \(attempt) (\(process.arguments!.joined(separator: " "))): \(err)")
            outcomes.append("\(how), finished")
            break
        }
        return outcomes
    }

    /// `command` straight through, then in a second folder killed `kills` times at random moments
    /// and resumed: the same result, and no stray files.
    func assertKillsDoNotChangeTheResult(
        _ name: String, kills: Int, command: (String) -> [String], resume: (String) -> [String], seedOffset: UInt64
    ) throws {
        let straight = temporaryFolder().appendingPathComponent("straight").path
        let started = Date()
        let run = try parscale(command(straight))
        XCTAssertEqual(run.status, 0, run.err)
        let duration = Date().timeIntervalSince(started), totalLines = metricLines(straight)
        XCTAssertGreaterThan(totalLines, 1)
        var clock = KillClock(state: faultSeed &+ seedOffset)
        let killed = temporaryFolder().appendingPathComponent("killed").path
        let outcomes = try runWithKills(
            command(killed), resume: resume(killed), dir: killed, kills: kills, totalLines: totalLines,
            lineSeconds: min(0.1, 0.5 * duration / Double(totalLines)), clock: &clock)
        let context = "\(name), PARSCALE_FAULT_SEED=\(faultSeed): \(outcomes.joined(separator: "; "))"
        print(String(format: "fault trial %@: straight %.2f s, %d metric lines; %@", name, duration, totalLines, outcomes.joined(separator: "; ")))
        XCTAssertGreaterThan(outcomes.filter { $0.contains("killed") }.count, 0, context)
        try assertSameRun(killed, straight, context)
    }

    func testPretrainKilledAtRandomMomentsResumesToTheSameResult() throws {
        let flags = ["--size", "tiny", "--P", "2", "--prefix-tokens", "4", "--steps", "8", "--seq", "16", "--batch", "2",
                     "--eval-every", "4", "--checkpoint-every", "1", "--eval-windows", "2", "--task-examples", "0", "--backend", "cpu"]
        try assertKillsDoNotChangeTheResult(
            "pretrain", kills: 6, command: { ["pretrain", "--out", $0] + flags }, resume: { ["pretrain", "--out", $0, "--resume"] },
            seedOffset: 0)
    }

    func testRecycleKilledAtRandomMomentsResumesToTheSameResult() throws {
        let source = temporaryFolder().appendingPathComponent("source").path
        let made = try parscale(["init", "--out", source, "--hidden", "32", "--layers", "2", "--heads", "4", "--kv-heads", "2",
                                 "--intermediate", "64", "--P", "1"])
        XCTAssertEqual(made.status, 0, made.err)
        let flags = ["--from", source, "--P", "2", "--prefix-tokens", "4", "--freeze-backbone", "--steps", "8", "--seq", "16",
                     "--batch", "2", "--eval-every", "4", "--checkpoint-every", "1", "--eval-windows", "2", "--task-examples", "0"]
        try assertKillsDoNotChangeTheResult(
            "recycle", kills: 6, command: { ["recycle", "--out", $0] + flags }, resume: { ["recycle", "--out", $0, "--resume"] },
            seedOffset: 1)
    }

    func testSweepKilledAtRandomMomentsResumesToTheSameResult() throws {
        let sweep = { (dir: String) in ["sweep", "--preset", "tiny", "--out", dir, "--sizes", "32", "--P", "1,2", "--tokens", "2048"] }
        try assertKillsDoNotChangeTheResult("sweep", kills: 6, command: sweep, resume: sweep, seedOffset: 2)
    }

    // MARK: - Full disk, read-only folder

    /// The checkpoint folder's files and their bytes.
    func snapshot(_ checkpoint: String) -> [String: Data] {
        var files: [String: Data] = [:]
        for name in tree(checkpoint) { files[name] = FileManager.default.contents(atPath: checkpoint + "/" + name) }
        return files
    }

    let shortRun = ["--size", "tiny", "--P", "2", "--prefix-tokens", "4", "--steps", "4", "--seq", "16", "--batch", "2",
                    "--checkpoint-every", "1", "--eval-windows", "2", "--task-examples", "0", "--backend", "cpu"]

    /// A run (`shortRun` + `flags`) stopped with a checkpoint at step 2 of 4.
    func stoppedRun(in dir: String, _ flags: [String] = []) throws -> String {
        let run = dir + "/run"
        let first = try parscale(["pretrain", "--out", run, "--stop-after", "2"] + shortRun + flags)
        XCTAssertEqual(first.status, 0, first.err)
        return run
    }

    /// A failed checkpoint write: a clear error (no crash), the checkpoint of step `previous` as it
    /// was, no partial folder left, and the run still loadable.
    func assertFailedSaveKeptTheCheckpoint(
        _ failed: CLIRun, run: String, before: [String: Data], previous: Int, reason: String,
        file: StaticString = #filePath, line: UInt = #line
    ) throws {
        XCTAssertNotEqual(failed.status, 0, failed.err, file: file, line: line)
        XCTAssertFalse(failed.err.contains("Fatal error"), failed.err, file: file, line: line)
        for phrase in ["cannot write the checkpoint", reason, "previous checkpoint (step \(previous))", run + "/checkpoint"] {
            XCTAssertTrue(failed.err.contains(phrase), "'\(phrase)' missing from: \(failed.err)", file: file, line: line)
        }
        XCTAssertEqual(snapshot(run + "/checkpoint"), before, "the previous checkpoint changed", file: file, line: line)
        XCTAssertFalse(tree(run).contains { $0.contains("partial") || $0.contains(".tmp-") }, "\(tree(run))", file: file, line: line)
        let info = try parscale(["info", "--model", run])
        XCTAssertEqual(info.status, 0, info.err, file: file, line: line)
    }

    /// A file size limit (as `ulimit -f`) below the weights file: the write fails with EFBIG (parscale
    /// ignores SIGXFSZ). Where the test may mount a file system (root, CAP_SYS_ADMIN), also a
    /// tmpfs with room for one checkpoint but not two: ENOSPC at the second. The limit is 1 MiB and
    /// the model a little wider than `tiny` (1.7 MB of weights): ThreadSanitizer's runtime itself
    /// dies under a limit of 400 KiB.
    func testAFullDiskWhileCheckpointingIsAClearErrorAndKeepsThePreviousCheckpoint() throws {
        let wider = ["--hidden", "128", "--intermediate", "352"]
        let run = try stoppedRun(in: temporaryFolder().path, wider)
        let before = snapshot(run + "/checkpoint")
        XCTAssertGreaterThan(before["model.safetensors"]?.count ?? 0, 1 << 20)
        let limited = try parscale(["pretrain", "--out", run, "--resume"], wrapper: ["/bin/bash", "-c", "ulimit -f 1024 && exec \"$@\"", "bash"])
        try assertFailedSaveKeptTheCheckpoint(limited, run: run, before: before, previous: 2, reason: "File too large")
        let resumed = try parscale(["pretrain", "--out", run, "--resume"])
        XCTAssertEqual(resumed.status, 0, resumed.err)
        XCTAssertTrue(resumed.err.contains("step 4/4"), resumed.err)

        // A small file system, where mounting one is allowed.
        let mountPoint = temporaryFolder().path
        let checkpointBytes = before.values.reduce(0) { $0 + $1.count }
        let mount = try runTool("/bin/mount", ["-t", "tmpfs", "-o", "size=\((checkpointBytes * 3 / 2) / 1024)k", "tmpfs", mountPoint])
        guard mount.status == 0 else {
            print("full disk: tmpfs not mountable here (\(mount.err.trimmingCharacters(in: .whitespacesAndNewlines))); the file size limit was tested")
            return
        }
        addTeardownBlock { _ = try? self.runTool("/bin/umount", ["-l", mountPoint]) }
        let onTmpfs = mountPoint + "/run"
        let full = try parscale(["pretrain", "--out", onTmpfs] + shortRun + wider)
        let step1 = snapshot(onTmpfs + "/checkpoint")
        XCTAssertEqual(withoutTimes(try jsonFile(onTmpfs + "/checkpoint/trainer_state.json"))["step"] as? Int, 1, full.err)
        try assertFailedSaveKeptTheCheckpoint(full, run: onTmpfs, before: step1, previous: 1, reason: "No space left on device")
    }

    func runTool(_ path: String, _ args: [String]) throws -> CLIRun {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: path)
        process.arguments = args
        let err = Pipe()
        process.standardOutput = FileHandle.nullDevice
        process.standardError = err
        try process.run()
        let data = err.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        return CLIRun(status: process.terminationStatus, out: "", err: String(decoding: data, as: UTF8.self))
    }

    /// A read-only run folder. Root ignores file modes, so as root the child runs without any
    /// capability (setpriv, util-linux): then the modes hold for it too.
    func testAReadOnlyRunFolderIsAClearErrorNamingIt() throws {
        var wrapper: [String] = []
        if getuid() == 0 {
            guard FileManager.default.isExecutableFile(atPath: "/usr/bin/setpriv") else {
                try requireOrSkip("/usr/bin/setpriv (util-linux) is needed to run without root's override of file modes")
            }
            wrapper = ["/usr/bin/setpriv", "--inh-caps=-all", "--bounding-set=-all", "--"]
        }
        let dir = temporaryFolder().path
        let run = try stoppedRun(in: dir)
        let before = snapshot(run + "/checkpoint"), metricsBefore = FileManager.default.contents(atPath: run + "/metrics.jsonl")
        XCTAssertEqual(chmod(run, 0o555), 0)
        addTeardownBlock { chmod(run, 0o755) }
        let resumed = try parscale(["pretrain", "--out", run, "--resume"], wrapper: wrapper)
        XCTAssertNotEqual(resumed.status, 0, resumed.err)
        XCTAssertTrue(resumed.err.contains("\(run): cannot write in the run folder (Permission denied)"), resumed.err)
        XCTAssertFalse(resumed.err.contains("Fatal error"), resumed.err)
        XCTAssertEqual(snapshot(run + "/checkpoint"), before)
        XCTAssertEqual(FileManager.default.contents(atPath: run + "/metrics.jsonl"), metricsBefore)
        XCTAssertEqual(try parscale(["info", "--model", run]).status, 0)
        // A new run under a read-only folder.
        XCTAssertEqual(chmod(dir, 0o555), 0)
        addTeardownBlock { chmod(dir, 0o755) }
        let fresh = try parscale(["pretrain", "--out", dir + "/new"] + shortRun, wrapper: wrapper)
        XCTAssertNotEqual(fresh.status, 0, fresh.err)
        XCTAssertTrue(fresh.err.contains("\(dir)/new: cannot create the run folder"), fresh.err)
        chmod(run, 0o755)
        let finished = try parscale(["pretrain", "--out", run, "--resume"])
        XCTAssertEqual(finished.status, 0, finished.err)
    }

    // MARK: - Corpus changed between runs

    /// FNV-1a 64 of the file's name then its bytes: the corpus hash the trainer state records for
    /// a one-file corpus, computed here independently.
    func corpusHash(_ path: String) throws -> String {
        var hash: UInt64 = 0xcbf2_9ce4_8422_2325
        for byte in Array((path as NSString).lastPathComponent.utf8) + Array(try Data(contentsOf: URL(fileURLWithPath: path))) {
            hash = (hash ^ UInt64(byte)) &* 0x100_0000_01b3
        }
        return String(format: "%016llx", hash)
    }

    func recordedHash(_ run: String) throws -> String? {
        let state = try jsonFile(run + "/checkpoint/trainer_state.json") as? [String: Any]
        return ((state?["options"] as? [String: Any])?["data"] as? [String: Any])?["contentHash"] as? String
    }

    func testACorpusChangedOrTruncatedBetweenRunsIsRefusedOnResume() throws {
        let dir = temporaryFolder().path
        let corpus = dir + "/corpus.txt"
        let original = Data((0..<600).map { "line \($0): let x\($0 % 7) = \($0 * 31 % 97) + y\n" }.joined().utf8)
        try original.write(to: URL(fileURLWithPath: corpus))
        let run = dir + "/run"
        let flags = ["--size", "tiny", "--P", "2", "--prefix-tokens", "4", "--steps", "4", "--seq", "16", "--batch", "2",
                     "--checkpoint-every", "1", "--eval-windows", "2", "--task-examples", "0", "--backend", "cpu", "--data", corpus]
        let first = try parscale(["pretrain", "--out", run, "--stop-after", "2"] + flags)
        XCTAssertEqual(first.status, 0, first.err)
        XCTAssertEqual(try recordedHash(run), try corpusHash(corpus))

        var changed = original
        changed[changed.count / 2] = UInt8(ascii: "#")
        for (edit, text) in [("one byte changed", changed), ("truncated", original.prefix(original.count * 2 / 3))] {
            try text.write(to: URL(fileURLWithPath: corpus))
            let resumed = try parscale(["pretrain", "--out", run, "--resume"])
            XCTAssertNotEqual(resumed.status, 0, "\(edit): \(resumed.err)")
            for phrase in ["\(corpus): the training text changed since this run started", "--accept-changed-data"] {
                XCTAssertTrue(resumed.err.contains(phrase), "\(edit): '\(phrase)' missing from: \(resumed.err)")
            }
            XCTAssertFalse(resumed.err.contains("Fatal error"), resumed.err)
        }
        // Continuing anyway records the new text's hash; the original text resumes as before.
        let accepted = try parscale(["pretrain", "--out", run, "--resume", "--accept-changed-data", "--stop-after", "1"])
        XCTAssertEqual(accepted.status, 0, accepted.err)
        XCTAssertEqual(try recordedHash(run), try corpusHash(corpus))
        try original.write(to: URL(fileURLWithPath: corpus))
        XCTAssertNotEqual(try parscale(["pretrain", "--out", run, "--resume"]).status, 0)
        let restored = try parscale(["pretrain", "--out", run, "--resume", "--accept-changed-data"])
        XCTAssertEqual(restored.status, 0, restored.err)
        XCTAssertEqual(try recordedHash(run), try corpusHash(corpus))
    }
}
