import ArgumentParser
import Foundation
import ParScale

struct Generate: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Generate text or tokens with a KV cache (all P streams decoded as one batch).",
        discussion: """
            Text goes through the model folder's tokenizer.json (or --tokenizer FILE); a model without one \
            reads bytes (ids 0-255 are UTF-8 bytes) when its vocabulary has 256 ids, and otherwise takes \
            --prompt-tokens only. Generation stops at the tokenizer's end-of-text tokens and the eos_token_id \
            of generation_config.json, or after --max-new-tokens. Greedy by default; --temperature > 0 \
            samples, optionally cut by --top-k and --top-p, reproducibly for a given --seed. Text streams to \
            standard output (a token that ends inside a UTF-8 character waits for the rest); the speed goes \
            to standard error.
            """)

    @OptionGroup var options: ModelOptions
    @Option(help: "Prompt text (encoded with the model's tokenizer, or as bytes for a byte-level model).") var prompt: String?
    @Option(help: "tokenizer.json to use instead of the model folder's.") var tokenizer: String?
    @Option(name: .customLong("prompt-tokens"), help: "Prompt as comma-separated token ids.") var promptTokens: String?
    @Option(name: .customLong("max-new-tokens"), help: "Number of tokens to generate.") var maxNewTokens: Int = 64
    @Flag(help: "Always take the most likely token (the default unless --temperature is given).") var greedy = false
    @Option(help: "Sampling temperature (> 0).") var temperature: Float?
    @Option(name: .customLong("top-k"), help: "Sample among the k most likely tokens (0: all).") var topK: Int = 0
    @Option(name: .customLong("top-p"), help: "Sample among the smallest set of tokens whose probability reaches p.") var topP: Float = 1
    @Option(help: "Random seed for sampling.") var seed: UInt64 = 0
    @Flag(help: "Print one line {\"tokens\": [...], \"text\": \"...\", \"prompt_tokens\": [...], \"stop\": \"eos\"|\"length\"} instead of streaming (text: null without a tokenizer).") var json = false

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
        // Text in and out goes through the model's tokenizer (or bytes for a 256-id byte-level model).
        // With --prompt-tokens, a model whose ids are neither bytes nor a tokenizer's prints ids only.
        let hasText = prompt != nil || tokenizer != nil || model.config.vocabSize == 256 || Tokenizer.exists(inModel: options.model)
        let encoding = hasText ? try TextEncoding.forModel(directory: options.model, config: model.config, tokenizerFile: tokenizer) : nil
        let ids: [Int32]
        if let promptTokens {
            ids = try parseTokenList(promptTokens, flag: "--prompt-tokens")
            if let bad = ids.first(where: { $0 < 0 || Int($0) >= model.config.vocabSize }) {
                throw ValidationError("--prompt-tokens: id \(bad) is outside the vocabulary (0..<\(model.config.vocabSize))")
            }
        } else {
            ids = try encoding!.encode(prompt!)
            if ids.isEmpty { throw ValidationError("--prompt is empty") }
        }
        let stopIds = try encoding?.stopIds(modelDirectory: options.model) ?? []
        let sampling = SamplingOptions(temperature: temperature ?? 0, topK: topK, topP: topP, seed: seed)
        var stream = TextStreamDecoder()
        let result = try Generator.generate(
            model: model, prompts: [ids], maxNewTokens: maxNewTokens, sampling: sampling, stopIds: stopIds
        ) { step in
            guard !json else { return }
            if stopIds.contains(step[0]) { return }
            if let encoding, let bytes = try? encoding.decode([step[0]]) {
                FileHandle.standardOutput.write(Data(stream.push(bytes).utf8))
            } else {
                FileHandle.standardOutput.write(Data("\(step[0]) ".utf8))
            }
        }
        let tokens = result.tokens[0]
        let stopped = tokens.last.map(stopIds.contains) ?? false
        if json {
            let shown = stopped ? Array(tokens.dropLast()) : tokens
            var object: [String: Any] = [
                "tokens": tokens.map(Int.init), "prompt_tokens": ids.map(Int.init),
                "stop": stopped ? "eos" : "length",
            ]
            object["text"] = try encoding.map { try $0.decodeText(shown) } ?? NSNull()
            printJSON(object)
            return
        }
        FileHandle.standardOutput.write(Data(stream.finish().utf8))
        print("")
        let decodeRate = tokens.count > 1 ? Double(tokens.count - 1) / result.decodeSeconds : 0
        standardError(String(
            format: "[%d prompt tokens in %.3f s (%.0f tok/s); %d new tokens%@, decode %.1f tok/s, P = %d]",
            ids.count, result.prefillSeconds, Double(ids.count) / result.prefillSeconds, tokens.count,
            stopped ? " (stopped at end of text)" : "", decodeRate, model.config.streams))
    }
}
