import ArgumentParser
import ParScale
import ParScaleVulkan

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

/// `--backend`, declared once for every command that computes. Unset, it is the command's default:
/// auto, or cpu for the benchmarks (`bench decode` and `bench train` measure every row on the CPU,
/// and also on the backend that --backend auto or vulkan chooses).
struct BackendFlag: ParsableArguments {
    @Option(
        name: .customLong("backend"),
        help: "Compute backend: auto (a Vulkan GPU if there is one, else the CPU), cpu or vulkan (any Vulkan device, lavapipe included). Default: auto; cpu for `bench` (decode and train measure every row on the CPU, and also on another backend chosen).")
    var choice: BackendChoice?

    /// The choice, or `default` when --backend is not given.
    func choice(default: BackendChoice) -> BackendChoice { choice ?? `default` }

    /// The backend of --backend (default auto), checked against `config` when given (`BackendChoice.make`).
    func make(for config: ModelConfig? = nil) throws -> Backend { try choice(default: .auto).make(for: config) }
}
