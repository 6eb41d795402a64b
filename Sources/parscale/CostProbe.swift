import ArgumentParser
import Foundation
import ParScale
import ParScaleLaw

/// One model measured in this process (used by `parscale cost`).
struct CostProbe: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "cost-probe", abstract: "Internal: measure one model in this process (used by `cost`).",
        shouldDisplay: false)

    @Option var config: String
    @Option var batch: Int
    @Option var prompt: Int
    @Option var new: Int
    @Option var repeats: Int = 3

    func run() throws {
        let c = try JSONDecoder().decode(ModelConfig.self, from: Data(config.utf8))
        let m = try CostModel.probe(config: c, batch: batch, prompt: prompt, new: new, repeats: repeats)
        let encoder = JSONEncoder()
        print(String(decoding: try encoder.encode(m), as: UTF8.self))
    }
}
