import Foundation
import XCTest

@testable import ParScale
@testable import ParScaleVulkan
import TestSupport

final class VulkanDeviceTests: XCTestCase {
    func info(_ type: String, _ name: String) -> VulkanDeviceInfo {
        VulkanDeviceInfo(
            index: 0, name: name, type: type, apiVersion: "1.3.0", deviceLocalBytes: 1 << 30, subgroupSize: 32,
            maxStorageBufferRange: 1 << 27, maxSharedMemoryBytes: 1 << 15, maxWorkgroupInvocations: 1024)
    }

    func testAutoPrefersADiscreteGPUAndNeverACPUDevice() {
        XCTAssertNil(VulkanDeviceInfo.autoChoice([info("cpu", "llvmpipe")]))
        XCTAssertEqual(VulkanDeviceInfo.autoChoice([info("cpu", "llvmpipe"), info("integrated-gpu", "igpu")])?.name, "igpu")
        XCTAssertEqual(
            VulkanDeviceInfo.autoChoice([info("integrated-gpu", "igpu"), info("discrete-gpu", "dgpu"), info("cpu", "lvp")])?.name, "dgpu")
    }

    /// On lavapipe (installed by Tools/setup.sh): the device is listed, as a CPU device.
    func testLavapipeIsListedAsACPUDevice() throws {
        guard case .available = VulkanLoader.probe() else { try requireOrSkip("no Vulkan loader (libvulkan.so.1) here") }
        let restore = Lavapipe.useDriver(try Lavapipe.icd())
        defer { restore() }
        let devices = try VulkanInstance().devices()
        let lavapipe = try XCTUnwrap(devices.first { $0.name.contains("llvmpipe") }, "\(devices)")
        XCTAssertEqual(lavapipe.type, "cpu")
        XCTAssertGreaterThan(lavapipe.subgroupSize, 0)
        XCTAssertGreaterThan(lavapipe.maxStorageBufferRange, 0)
        XCTAssertNil(VulkanDeviceInfo.autoChoice(devices))
    }

    /// The tests find lavapipe's manifest on any architecture, not only x86_64.
    func testLavapipeManifestIsFoundOnAnyArchitecture() throws {
        let dir = temporaryFolder()
        XCTAssertNil(Lavapipe.manifest(in: dir.path))
        for name in ["radeon_icd.aarch64.json", "lvp_icd.aarch64.json"] {
            try Data("{}".utf8).write(to: dir.appendingPathComponent(name))
        }
        XCTAssertEqual(Lavapipe.manifest(in: dir.path), dir.path + "/lvp_icd.aarch64.json")
        XCTAssertNil(Lavapipe.manifest(in: "/nonexistent"))
    }

    func testMissingDriverIsOneClearLine() throws {
        guard case .available = VulkanLoader.probe() else { try requireOrSkip("no Vulkan loader (libvulkan.so.1) here") }
        let restore = Lavapipe.useDriver("/nonexistent/icd.json")
        defer { restore() }
        XCTAssertThrowsError(try VulkanInstance().devices()) { error in
            XCTAssertTrue("\(error)".contains("no Vulkan driver found"), "\(error)")
            XCTAssertFalse("\(error)".contains("\n"))
        }
    }
}

final class VulkanLimitationTests: XCTestCase {
    func testModelsBeyondTheDeviceLimitsAreRefusedWithAReason() {
        let device = VulkanDeviceInfo(
            index: 0, name: "small-gpu", type: "discrete-gpu", apiVersion: "1.3.0", deviceLocalBytes: 1 << 30, subgroupSize: 32,
            maxStorageBufferRange: 1 << 20, maxSharedMemoryBytes: 1 << 15, maxWorkgroupInvocations: 1024)
        let small = ModelConfig(
            vocabSize: 64, hiddenSize: 32, intermediateSize: 64, numHiddenLayers: 1, numAttentionHeads: 4, numKeyValueHeads: 2,
            tieWordEmbeddings: true, parscaleN: 2, parscaleNTokens: 4)
        XCTAssertNil(VulkanBackend.limitation(for: small, on: device))
        var big = small
        big.hiddenSize = 512
        big.intermediateSize = 1024
        XCTAssertTrue(VulkanBackend.limitation(for: big, on: device)?.contains("storage buffer range") == true)
        // Many layers: the flat parameter buffer exceeds the range, every tensor fits (windows).
        var deep = small
        deep.hiddenSize = 128
        deep.intermediateSize = 256
        deep.numHiddenLayers = 8
        XCTAssertGreaterThan(ParameterLayout(deep).totalCount * 4, device.maxStorageBufferRange)
        XCTAssertNil(VulkanBackend.limitation(for: deep, on: device))
        var wideHeads = small
        wideHeads.numAttentionHeads = 1
        wideHeads.numKeyValueHeads = 1
        wideHeads.hiddenSize = 256
        XCTAssertTrue(VulkanBackend.limitation(for: wideHeads, on: device)?.contains("head_dim 256") == true)
    }
}
