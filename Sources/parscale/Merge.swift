import ArgumentParser
import ParScale

struct Merge: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Write a backbone plus an adapter as one official-layout checkpoint.",
        discussion: """
            The weights are stored as --dtype, sharded past --max-shard-size; the backbone's tokenizer \
            files (tokenizer.json, generation_config.json, ...) are copied beside them.
            """)

    @OptionGroup var options: ModelOptions
    @Option(help: "Output checkpoint folder.") var out: String
    @OptionGroup var write: ModelWriteFlags

    func validate() throws {
        if options.adapter == nil { throw ValidationError("give --adapter FILE to merge into --model") }
    }

    func run() throws {
        let model = try options.load()
        try write.save(model, to: out)
        try Checkpoint.copyCompanionFiles(from: options.model, to: out)
        print("wrote \(out): P = \(model.config.streams), official layout")
    }
}
