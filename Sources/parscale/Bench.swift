import ArgumentParser
import Foundation
import ParScale
import ParScaleVulkan

struct Bench: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Benchmarks that print measured figures (release builds only give meaningful numbers).",
        subcommands: [BenchDecode.self, BenchMatmul.self, BenchTrain.self, BenchTokenize.self])
}

/// The CPU backend, and beside it the backend --backend makes when that is not the CPU (default cpu).
func benchBackends(_ flag: BackendFlag) throws -> [Backend] {
    let choice = flag.choice(default: .cpu)
    let other = choice == .cpu ? nil : try choice.make()
    return [CPUBackend()] + (other.map { $0 is CPUBackend ? [] : [$0] } ?? [])
}

/// "cpu", "vulkan" (its defaults), or "vk-rows" / "vk-tiles": Vulkan with the few-rows matrix
/// kernel forced on or off against the device's default.
func benchKind(_ backend: Backend) -> String {
    guard let vulkan = backend as? VulkanBackend else { return "cpu" }
    if vulkan.useFewRowsKernel == vulkan.device.info.isGPU { return "vulkan" }
    return vulkan.useFewRowsKernel ? "vk-rows" : "vk-tiles"
}

/// Why `config` cannot run on `backend` (a Vulkan device's limits), or nil.
func benchLimitation(_ config: ModelConfig, _ backend: Backend) -> String? {
    guard let vulkan = backend as? VulkanBackend else { return nil }
    return VulkanBackend.limitation(for: config, on: vulkan.device.info)
}

func median(_ values: [Double]) -> Double {
    let sorted = values.sorted()
    return sorted.isEmpty ? .nan : sorted[sorted.count / 2]
}

/// The Vulkan backend's driver-call and traffic counters, or nil for the CPU.
func benchCounters(_ backend: Backend) -> VulkanCounters? { (backend as? VulkanBackend)?.counters }
