import ArgumentParser
import Foundation
import ParScale

@main
struct ParScaleCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "parscale",
        abstract: "ParScale: P parallel streams of a Qwen2-style decoder, mixed by a learned aggregation head.",
        discussion: """
            Checkpoints are folders in the official Hugging Face layout (config.json + model.safetensors), \
            interchangeable with the official Qwen2ParScaleForCausalLM code. See README.md.
            """,
        subcommands: [Info.self, Logits.self, Generate.self, Tokenize.self, Init.self, Pretrain.self, Recycle.self, Merge.self, Eval.self, SweepCommand.self, Ablate.self, Fit.self, Cost.self, CostProbe.self, ReportCommand.self, Study.self, FrontierCommand.self, Devices.self, Bench.self])

    static func main() {
        // Past a file size limit (ulimit -f) a write then fails with EFBIG, which names the file in a
        // clear error, instead of the signal killing the process mid-checkpoint.
        signal(SIGXFSZ, SIG_IGN)
        main(nil)
    }
}

/// Parses "1,2,3" into token ids, naming the flag on error.
func parseTokenList(_ text: String, flag: String) throws -> [Int32] {
    let parts = text.split(separator: ",", omittingEmptySubsequences: false)
    let ids = parts.map { Int32($0.trimmingCharacters(in: .whitespaces)) }
    guard !parts.isEmpty, ids.allSatisfy({ $0 != nil }) else {
        throw ValidationError("\(flag) expects comma-separated integer token ids like 1,2,3; got '\(text)'")
    }
    return ids.map { $0! }
}

/// One-line JSON for --json outputs.
func printJSON(_ object: Any) {
    let data = try! JSONSerialization.data(withJSONObject: object, options: [.sortedKeys, .withoutEscapingSlashes])
    print(String(decoding: data, as: UTF8.self))
}

func standardError(_ text: String) {
    FileHandle.standardError.write(Data((text + "\n").utf8))
}

/// Progress lines ("step ...") overwrite each other on a terminal; anything else, or output to
/// a file, gets a line of its own.
func progressLine(_ text: String) {
    let terminal = isatty(STDERR_FILENO) != 0
    if terminal && text.hasPrefix("step ") {
        FileHandle.standardError.write(Data(("\r\u{1B}[K" + text).utf8))
    } else {
        standardError((terminal ? "\r\u{1B}[K" : "") + text)
    }
}

/// Runs `executable` with `arguments` (in `environment`, default this process's) to its end: its
/// exit status, standard output and standard error.
func runChild(
    _ executable: URL, _ arguments: [String], environment: [String: String]? = nil
) throws -> (status: Int32, out: Data, err: Data) {
    let process = Process()
    process.executableURL = executable
    process.arguments = arguments
    if let environment { process.environment = environment }
    let out = Pipe(), err = Pipe()
    process.standardOutput = out
    process.standardError = err
    try process.run()
    let outData = out.fileHandleForReading.readDataToEndOfFile()
    let errData = err.fileHandleForReading.readDataToEndOfFile()
    process.waitUntilExit()
    return (process.terminationStatus, outData, errData)
}
