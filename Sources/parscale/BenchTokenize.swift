import ArgumentParser
import Foundation
import ParScale

struct BenchTokenize: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "tokenize",
        abstract: "Encode MB/s of our tokenizer against Hugging Face tokenizers on the same text.",
        discussion: """
            Ours: Tokenizer.encode(utf8:threads:) on the whole file, best of --repeats after one warm-up \
            call (word caches stay warm across calls, as HF's). HF: Tools/bench/tokenize_peer.py run by \
            --python, one process per thread count: 1 thread = encode(whole text) with RAYON_NUM_THREADS=1; \
            k threads = encode_batch over ~64 KB chunks cut before "\\n" + ASCII letter with \
            RAYON_NUM_THREADS=k. Both time only encoding (file already in memory), best of the same number \
            of repetitions. The ids of both whole-text encodes are compared. MB = 10^6 bytes.
            """)

    @Option(help: "tokenizer.json to load.") var tokenizer: String
    @Option(help: "UTF-8 text file to encode.") var file: String
    @Option(help: "Python with HF tokenizers (Tools/fixtures/python-env.sh makes .venv).") var python: String = ".venv/bin/python"
    @Option(help: "Thread counts, comma-separated.") var threads: String = "1,2"
    @Option(help: "Timed repetitions (best is reported).") var repeats: Int = 5
    @Flag(name: .customLong("no-peer"), help: "Time only ours.") var noPeer = false
    @Flag(help: "Print one JSON object.") var json = false

    func validate() throws {
        guard repeats >= 1 else { throw ValidationError("--repeats must be >= 1") }
    }

    /// Tools/bench/tokenize_peer.py, beside the current folder or the executable's package.
    static func peerScript() -> String? {
        var candidates = [FileManager.default.currentDirectoryPath + "/Tools/bench/tokenize_peer.py"]
        var dir = URL(fileURLWithPath: CommandLine.arguments[0]).resolvingSymlinksInPath().deletingLastPathComponent()
        for _ in 0..<5 { candidates.append(dir.appendingPathComponent("Tools/bench/tokenize_peer.py").path); dir.deleteLastPathComponent() }
        return candidates.first { FileManager.default.fileExists(atPath: $0) }
    }

    static func processCPUSeconds() -> Double {
        var ts = timespec()
        clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts)
        return Double(ts.tv_sec) + Double(ts.tv_nsec) / 1e9
    }

    func runPeer(script: String, threads t: Int, idsOut: String?) throws -> [String: Any] {
        var args = [script, "--tokenizer", tokenizer, "--file", file, "--threads", "\(t)", "--repeats", "\(repeats)"]
        if let o = idsOut { args += ["--ids-out", o] }
        var env = ProcessInfo.processInfo.environment
        env["RAYON_NUM_THREADS"] = "\(t)"
        env["TOKENIZERS_PARALLELISM"] = t > 1 ? "true" : "false"
        let child = try runChild(URL(fileURLWithPath: python), args, environment: env)
        guard child.status == 0,
              let obj = try? JSONSerialization.jsonObject(with: child.out) as? [String: Any] else {
            throw ValidationError("the HF peer (\(python) \(script)) failed with status \(child.status): \(String(decoding: child.err, as: UTF8.self).suffix(1500))")
        }
        return obj
    }

    func run() throws {
        let threadList = try parseTokenList(threads, flag: "--threads").map(Int.init)
        guard threadList.allSatisfy({ $0 >= 1 }) else { throw ValidationError("--threads values must be >= 1") }
        let loadStart = Date()
        let tok = try Tokenizer(file: tokenizer)
        let loadSeconds = Date().timeIntervalSince(loadStart)
        guard let data = FileManager.default.contents(atPath: file) else { throw ValidationError("cannot read --file \(file)") }
        let text = [UInt8](data)
        let mb = Double(text.count) / 1e6

        var script: String? = nil
        if !noPeer {
            guard FileManager.default.isExecutableFile(atPath: python) else {
                throw ValidationError("--python \(python) is not an executable; make one with `bash Tools/fixtures/python-env.sh` (HF tokenizers 0.23.3) or pass --no-peer")
            }
            guard let s = Self.peerScript() else { throw ValidationError("Tools/bench/tokenize_peer.py not found; run from the repository root") }
            script = s
        }

        var ourIds = [Int32]()
        var rows: [[String: Any]] = []
        var peerIdsFile: String? = nil
        for t in threadList {
            var ids = try text.withUnsafeBufferPointer { try tok.encode(utf8: $0, threads: t) }  // warm-up
            var best = Double.infinity, bestCPU = Double.infinity
            for _ in 0..<repeats {
                let start = DispatchTime.now().uptimeNanoseconds
                let cpuStart = Self.processCPUSeconds()
                ids = try text.withUnsafeBufferPointer { try tok.encode(utf8: $0, threads: t) }
                best = min(best, Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9)
                bestCPU = min(bestCPU, Self.processCPUSeconds() - cpuStart)
            }
            if ourIds.isEmpty { ourIds = ids } else if ids != ourIds {
                throw ValidationError("our ids with \(t) threads differ from our first run's")
            }
            var row: [String: Any] = ["threads": t, "ours_seconds": best, "ours_mb_per_s": mb / best,
                                      "ours_cpu_seconds": bestCPU]
            if let script = script {
                var idsOut: String? = nil
                if peerIdsFile == nil {
                    idsOut = FileManager.default.temporaryDirectory.appendingPathComponent("parscale-peer-ids-\(getpid()).bin").path
                    peerIdsFile = idsOut
                }
                let peer = try runPeer(script: script, threads: t, idsOut: idsOut)
                let hfSeconds = (peer["best_seconds"] as? Double) ?? .nan
                row["hf_seconds"] = hfSeconds
                row["hf_cpu_seconds"] = (peer["best_cpu_seconds"] as? Double) ?? .nan
                row["hf_mb_per_s"] = mb / hfSeconds
                row["ratio"] = hfSeconds / best
                row["hf_batch_ids_match"] = peer["ids_match_whole_text"] as? Bool ?? true
                row["tokenizers_version"] = peer["tokenizers_version"] as? String ?? "?"
            }
            rows.append(row)
        }
        var agree: Bool? = nil
        var firstDifference: Int? = nil
        if let f = peerIdsFile, let d = FileManager.default.contents(atPath: f) {
            try? FileManager.default.removeItem(atPath: f)
            let hf: [Int32] = d.withUnsafeBytes { raw in (0..<d.count / 4).map { Int32(littleEndian: raw.loadUnaligned(fromByteOffset: $0 * 4, as: Int32.self)) } }
            agree = hf == ourIds
            if agree == false { firstDifference = (0..<min(hf.count, ourIds.count)).first { hf[$0] != ourIds[$0] } ?? min(hf.count, ourIds.count) }
        }
        if json {
            var o: [String: Any] = ["tokenizer": tokenizer, "file": file, "bytes": text.count, "ids": ourIds.count,
                                    "load_seconds": loadSeconds, "repeats": repeats, "rows": rows,
                                    "cores": ProcessInfo.processInfo.activeProcessorCount]
            if let a = agree { o["ids_agree"] = a }
            if let k = firstDifference { o["first_difference"] = k }
            printJSON(o)
        } else {
            print(String(format: "bench tokenize: %@ (vocabulary %d, loaded in %.2f s), %@: %.2f MB, %d ids, best of %d, %d cores",
                         tokenizer, tok.vocabularySize, loadSeconds, file, mb, ourIds.count, repeats, ProcessInfo.processInfo.activeProcessorCount))
            print("threads   ours MB/s   HF MB/s   ours/HF   ours CPU s   HF CPU s   (MB/s on wall-clock time; CPU s = process CPU time of the best run)")
            for r in rows {
                let ours = r["ours_mb_per_s"] as! Double
                let oursCPU = r["ours_cpu_seconds"] as! Double
                if let hf = r["hf_mb_per_s"] as? Double {
                    print(String(format: "%7d   %9.2f   %7.2f   %6.2fx   %10.3f   %8.3f%@", r["threads"] as! Int, ours, hf, ours / hf,
                                 oursCPU, r["hf_cpu_seconds"] as? Double ?? .nan,
                                 (r["hf_batch_ids_match"] as? Bool ?? true) ? "" : "  (HF batch ids differ from its whole-text ids)"))
                } else {
                    print(String(format: "%7d   %9.2f         -         -   %10.3f          -", r["threads"] as! Int, ours, oursCPU))
                }
            }
            if let a = agree {
                print(a ? "ids agree with HF tokenizers (\(ourIds.count) ids)" : "ids DIFFER from HF tokenizers at index \(firstDifference ?? -1)")
            }
        }
        if agree == false { throw ExitCode(2) }
    }
}
