import ArgumentParser
import Foundation
import ParScale
import ParScaleVulkan

struct Devices: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "List the Vulkan devices (type, memory, subgroup size) and what --backend auto would pick.",
        discussion: """
            auto takes a discrete GPU, else an integrated one, never a CPU device such as lavapipe (far \
            slower than OpenBLAS); without one it uses the CPU backend. VK_DRIVER_FILES restricts the loader \
            to given drivers (for example /usr/share/vulkan/icd.d/lvp_icd.x86_64.json for lavapipe).
            """)

    @Flag(help: "Print one JSON object.") var json = false

    func run() throws {
        var devices: [VulkanDeviceInfo] = []
        var problem: String?
        do {
            devices = try VulkanInstance().devices()
        } catch let error as VulkanUnavailable {
            problem = error.reason
        }
        let gpu = VulkanDeviceInfo.autoChoice(devices)
        let auto = gpu.map { "vulkan (\($0.name))" }
            ?? "cpu (\(problem ?? "no discrete or integrated GPU among the Vulkan devices"))"
        if json {
            let encoder = JSONEncoder()
            encoder.outputFormatting = [.sortedKeys]
            encoder.keyEncodingStrategy = .convertToSnakeCase
            let list = try JSONSerialization.jsonObject(with: encoder.encode(devices))
            printJSON(["devices": list, "auto": auto, "vulkan_error": problem as Any? ?? NSNull(), "cpu": CPUBackend().name])
            return
        }
        if let problem { print("Vulkan: \(problem)") }
        for d in devices {
            print(String(
                format: "%d: %@ (%@, Vulkan %@): %@ device-local, subgroup %d, max storage buffer %@ (larger buffers are bound in windows aligned to %d B), shared memory %@",
                d.index, d.name, d.type, d.apiVersion, formatBytes(d.deviceLocalBytes), d.subgroupSize,
                formatBytes(d.maxStorageBufferRange), d.minStorageBufferOffsetAlignment, formatBytes(d.maxSharedMemoryBytes)))
        }
        print("auto: \(auto)")
    }
}
