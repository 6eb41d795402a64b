import ArgumentParser
import Foundation
import ParScale
import ParScaleVulkan

@main
struct ParScaleCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "parscale",
        abstract: "ParScale: P parallel streams of a Qwen2-style decoder, mixed by a learned aggregation head.",
        discussion: """
            Checkpoints are folders in the official Hugging Face layout (config.json + model.safetensors), \
            interchangeable with the official Qwen2ParScaleForCausalLM code. See README.md.
            """,
        subcommands: [Info.self, Logits.self, Generate.self, Tokenize.self, Init.self, Pretrain.self, Recycle.self, Merge.self, Eval.self, SweepCommand.self, Ablate.self, Fit.self, Cost.self, CostProbe.self, ReportCommand.self, Study.self, Devices.self, Bench.self])
}

/// `--model DIR`, shared by every command that reads a checkpoint.
struct ModelOptions: ParsableArguments {
    @Option(name: .long, help: "Checkpoint folder (config.json + model.safetensors or its shards), or a training run folder.")
    var model: String
    @Option(help: "A ParScale adapter (from `recycle --freeze-backbone`) to apply to the P = 1 --model.")
    var adapter: String?
    @Option(help: "Compute backend: auto (a Vulkan GPU if there is one, else the CPU), cpu or vulkan (any Vulkan device, lavapipe included).")
    var backend: BackendChoice = .auto

    func load() throws -> ParScaleModel {
        let base = try Checkpoint.load(model, backend: try backend.make(for: try Checkpoint.loadConfig(model)))
        return try adapter.map { try Adapter.apply($0, to: base) } ?? base
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

/// `--backend`: which backend computes.
enum BackendChoice: String, ExpressibleByArgument, CaseIterable {
    case auto, cpu, vulkan

    /// auto never takes a CPU Vulkan device (lavapipe: about 3.5 GFLOP/s against OpenBLAS's 175-200);
    /// its choice, and why, goes to standard error.
    /// `config`, when given, is checked against the chosen device's limits first.
    func make(for config: ModelConfig? = nil) throws -> Backend {
        if self == .cpu { return CPUBackend() }
        do {
            let instance = try VulkanInstance()
            let devices = try instance.devices()
            let chosen = self == .vulkan ? (VulkanDeviceInfo.autoChoice(devices) ?? devices.first) : VulkanDeviceInfo.autoChoice(devices)
            guard let chosen else {
                if self == .vulkan { throw VulkanUnavailable("--backend vulkan: no Vulkan device found") }
                standardError("backend: cpu (no discrete or integrated GPU among the Vulkan devices)")
                return CPUBackend()
            }
            if let config, let reason = VulkanBackend.limitation(for: config, on: chosen) {
                throw VulkanUnavailable(reason)
            }
            let backend = try VulkanBackend(device: VulkanDevice(instance: instance, index: chosen.index))
            standardError("backend: \(backend.name)")
            return backend
        } catch let error as VulkanUnavailable {
            if self == .vulkan { throw VulkanUnavailable("--backend vulkan: \(error.reason)") }
            standardError("backend: cpu (\(error.reason))")
            return CPUBackend()
        }
    }
}
