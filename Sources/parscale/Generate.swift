import ArgumentParser
import Foundation
import ParScale

struct Generate: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Generate text or tokens with a KV cache (all P streams decoded as one batch).",
        discussion: """
            Text prompts are byte-level (ids 0-255 are UTF-8 bytes); use --prompt-tokens for any other \
            vocabulary. Greedy by default; --temperature > 0 samples, optionally cut by --top-k and --top-p, \
            reproducibly for a given --seed. Text streams to standard output; the speed goes to standard error.
            """)

    @OptionGroup var options: ModelOptions
    @Option(help: "Prompt text (byte-level tokens).") var prompt: String?
    @Option(name: .customLong("prompt-tokens"), help: "Prompt as comma-separated token ids.") var promptTokens: String?
    @Option(name: .customLong("max-new-tokens"), help: "Number of tokens to generate.") var maxNewTokens: Int = 64
    @Flag(help: "Always take the most likely token (the default unless --temperature is given).") var greedy = false
    @Option(help: "Sampling temperature (> 0).") var temperature: Float?
    @Option(name: .customLong("top-k"), help: "Sample among the k most likely tokens (0: all).") var topK: Int = 0
    @Option(name: .customLong("top-p"), help: "Sample among the smallest set of tokens whose probability reaches p.") var topP: Float = 1
    @Option(help: "Random seed for sampling.") var seed: UInt64 = 0
    @Flag(help: "Print one line {\"tokens\": [...], \"text\": \"...\"} instead of streaming.") var json = false

    func validate() throws {
        if (prompt == nil) == (promptTokens == nil) {
            throw ValidationError("give exactly one of --prompt TEXT or --prompt-tokens 1,2,3")
        }
        if maxNewTokens < 1 { throw ValidationError("--max-new-tokens must be at least 1, got \(maxNewTokens)") }
        if greedy && temperature != nil { throw ValidationError("--greedy and --temperature exclude each other") }
        if let t = temperature, !(t > 0) { throw ValidationError("--temperature must be > 0, got \(t)") }
        if topK < 0 { throw ValidationError("--top-k must be >= 0, got \(topK)") }
        if !(topP > 0 && topP <= 1) { throw ValidationError("--top-p must be in (0, 1], got \(topP)") }
        if temperature == nil && (topK != 0 || topP != 1) {
            throw ValidationError("--top-k and --top-p apply to sampling: give --temperature too")
        }
    }

    func run() throws {
        let model = try options.load()
        let ids: [Int32]
        if let promptTokens {
            ids = try parseTokenList(promptTokens, flag: "--prompt-tokens")
        } else {
            guard model.config.vocabSize >= 256 else {
                throw ValidationError(
                    "--prompt needs a byte-level vocabulary (>= 256 ids); this model has \(model.config.vocabSize): use --prompt-tokens")
            }
            ids = ByteTokenizer.encode(prompt!)
            if ids.isEmpty { throw ValidationError("--prompt is empty") }
        }
        let sampling = SamplingOptions(temperature: temperature ?? 0, topK: topK, topP: topP, seed: seed)
        let byteLevel = promptTokens == nil
        var pending: [UInt8] = []
        let result = try Generator.generate(
            model: model, prompts: [ids], maxNewTokens: maxNewTokens, sampling: sampling
        ) { step in
            guard !json else { return }
            if byteLevel, (0..<256).contains(step[0]) {
                // Print whole UTF-8 characters only.
                pending.append(UInt8(step[0]))
                if let text = String(validating: pending, as: UTF8.self) {
                    FileHandle.standardOutput.write(Data(text.utf8))
                    pending.removeAll()
                } else if pending.count >= 4 {
                    FileHandle.standardOutput.write(Data(String(decoding: pending, as: UTF8.self).utf8))
                    pending.removeAll()
                }
            } else {
                FileHandle.standardOutput.write(Data("\(step[0]) ".utf8))
            }
        }
        let tokens = result.tokens[0]
        if json {
            printJSON(["tokens": tokens.map(Int.init), "text": ByteTokenizer.decode(tokens)])
            return
        }
        if !pending.isEmpty { FileHandle.standardOutput.write(Data(String(decoding: pending, as: UTF8.self).utf8)) }
        print("")
        let decodeRate = tokens.count > 1 ? Double(tokens.count - 1) / result.decodeSeconds : 0
        standardError(String(
            format: "[%d prompt tokens in %.3f s (%.0f tok/s); %d new tokens, decode %.1f tok/s, P = %d]",
            ids.count, result.prefillSeconds, Double(ids.count) / result.prefillSeconds, tokens.count,
            decodeRate, model.config.streams))
    }
}
