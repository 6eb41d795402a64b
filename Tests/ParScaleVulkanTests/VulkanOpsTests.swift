import Foundation
import XCTest

@testable import ParScale
@testable import ParScaleVulkan
import TestSupport

/// Vulkan ops against the CPU backend, on lavapipe (installed by Tools/setup.sh).
/// The lavapipe device (Vulkan on the CPU), or `requireOrSkip` where the loader or lavapipe is
/// missing (a failure under PARSCALE_REQUIRE_ALL=1).
func lavapipeDevice() throws -> VulkanDevice {
        guard case .available = VulkanLoader.probe() else { try requireOrSkip("no Vulkan loader (libvulkan.so.1) here") }
        let icd = try Lavapipe.icd()
        let restore = Lavapipe.useDriver(icd)
        setenv("LP_NUM_THREADS", "0", 0)  // lavapipe: run on the submitting thread (fast small dispatches)
        defer { restore() }
        // Every Vulkan test runs under the Khronos validation layer (where it is installed); each
        // test class checks in tearDown that it reported nothing.
        let validated = FileManager.default.fileExists(atPath: "/usr/share/vulkan/explicit_layer.d/VkLayer_khronos_validation.json")
        if !validated && Requirements.requireAll {
            try requireOrSkip("the Khronos validation layer is not installed (Tools/setup.sh installs vulkan-validationlayers)")
        }
        let instance = try VulkanInstance(validation: validated)
        let index = try XCTUnwrap(try instance.devices().firstIndex { $0.name.contains("llvmpipe") })
        return try VulkanDevice(instance: instance, index: index)
}

/// Fails the running test on any validation message.
class ValidatedVulkanTestCase: XCTestCase {
    override func setUp() { _ = VulkanValidation.drain() }
    override func tearDown() {
        let messages = VulkanValidation.drain()
        XCTAssertTrue(messages.isEmpty, "Vulkan validation: \(messages.prefix(5).joined(separator: " | "))")
    }
}

final class VulkanOpsTests: ValidatedVulkanTestCase {

    /// Awkward sizes (not multiples of the 32 x 32 tiles), offsets into shared buffers, bias and accumulate.
    func testLinearMatchesTheCPUBackend() throws {
        try checkLinear(VulkanBackend(device: lavapipeDevice()))
    }

    /// The shared-memory tiles GPUs use, forced on lavapipe.
    func testLinearWithSharedMemoryTilesMatchesTheCPUBackend() throws {
        try checkLinear(VulkanBackend(device: lavapipeDevice(), sharedMemoryTiles: true))
    }

    /// The few-rows kernel GPUs use for decode (off by default on lavapipe), forced on.
    func testLinearWithTheFewRowsKernelMatchesTheCPUBackend() throws {
        let vulkan = try VulkanBackend(device: lavapipeDevice())
        XCTAssertFalse(vulkan.useFewRowsKernel)
        vulkan.useFewRowsKernel = true
        checkLinear(vulkan)
    }

    func checkLinear(_ vulkan: VulkanBackend) {
        var rng = SeededGenerator(seed: 21)
        // Up to 8 rows: linear_rows.comp where it is on; more: the 32 x 32 tiles.
        for (rows, inDim, outDim) in [(1, 7, 5), (4, 300, 70), (8, 129, 37), (9, 65, 3), (13, 37, 29), (45, 64, 33)] {
            for (useBias, accumulate) in [(false, false), (true, false), (true, true)] {
                let pad = 3
                let x = (0..<rows * inDim).map { _ in rng.nextUniform() - 0.5 }
                let w = (0..<outDim * inDim).map { _ in rng.nextUniform() - 0.5 }
                let bias = (0..<outDim).map { _ in rng.nextUniform() - 0.5 }
                let previous = (0..<rows * outDim).map { _ in rng.nextUniform() - 0.5 }
                // One parameter buffer holding bias and w at odd offsets, as the flat layout does.
                let params = vulkan.allocate(pad + outDim + w.count)
                let input = vulkan.allocate(x.count), output = vulkan.allocate(pad + previous.count)
                let biasView = params.slice(pad, outDim), weight = params.slice(pad + outDim, w.count)
                let out = output.slice(pad, previous.count)
                bias.withUnsafeBufferPointer { vulkan.upload($0, to: biasView) }
                w.withUnsafeBufferPointer { vulkan.upload($0, to: weight) }
                x.withUnsafeBufferPointer { vulkan.upload($0, to: input) }
                previous.withUnsafeBufferPointer { vulkan.upload($0, to: out) }
                vulkan.linear(
                    input, weight: weight, bias: useBias ? biasView : nil, out: out, rows: rows, inDim: inDim, outDim: outDim,
                    accumulate: accumulate)
                var expected = previous
                x.withUnsafeBufferPointer { xp in
                    w.withUnsafeBufferPointer { wp in
                        bias.withUnsafeBufferPointer { bp in
                            expected.withUnsafeMutableBufferPointer { ep in
                                LinearOps.forward(
                                    x: xp.baseAddress!, weight: wp.baseAddress!, bias: useBias ? bp.baseAddress! : nil, out: ep.baseAddress!,
                                    rows: rows, inDim: inDim, outDim: outDim, accumulate: accumulate)
                            }
                        }
                    }
                }
                var all = [Float](repeating: .nan, count: output.count)
                all.withUnsafeMutableBufferPointer { vulkan.download(output, into: $0) }
                assertClose(Array(all[pad...]), expected, "vulkan linear \(rows)x\(inDim)x\(outDim) bias \(useBias) acc \(accumulate)", tolerance: 1e-5)
                XCTAssertEqual(Array(all[..<pad]), [0, 0, 0], "nothing written before the view")
            }
        }
    }

    /// The committed SPIR-V matches Shaders/ (where glslc is installed).
    func testShippedSPIRVIsUpToDate() throws {
        guard FileManager.default.isExecutableFile(atPath: "/usr/bin/glslc") else {
            try requireOrSkip("glslc is not installed (Tools/setup.sh installs it)")
        }
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/bin/bash")
        process.arguments = [TestPaths.packageRoot.appendingPathComponent("Tools/build-shaders.sh").path, "--check"]
        let err = Pipe()
        process.standardError = err
        process.standardOutput = Pipe()
        try process.run()
        process.waitUntilExit()
        XCTAssertEqual(process.terminationStatus, 0, String(decoding: err.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self))
    }
}

/// The official reference models, run on the Vulkan backend (lavapipe), within the model issue's bounds.
final class VulkanReferenceTests: ValidatedVulkanTestCase {
    func testReferenceModelsOnVulkanMatchTheOfficialOutputs() throws {
        try checkReferenceModels(VulkanBackend(device: lavapipeDevice()))
    }

    /// What a discrete GPU gets: device-local memory behind staging transfers, shared-memory tiles
    /// and the few-rows decode kernel; plus a binding range (192 KiB) smaller than the flat
    /// parameter buffer, so parameters are bound as aligned windows of it.
    func testReferenceModelsWithStagingAndBindingWindows() throws {
        let backend = try VulkanBackend(
            device: lavapipeDevice(), sharedMemoryTiles: true, memory: .staging, maxBindingBytes: 192 << 10, bindingAlignment: 256)
        backend.useFewRowsKernel = true
        try checkReferenceModels(backend)
        for dir in try TestPaths.requiredReferenceModels() {
            XCTAssertGreaterThan(ParameterLayout(try Checkpoint.loadConfig(dir.path)).totalCount * 4, backend.maxBindingBytes)
        }
    }

    func checkReferenceModels(_ backend: VulkanBackend) throws {
        for dir in try TestPaths.requiredReferenceModels() {
            let model = try Checkpoint.load(dir.path, backend: backend)
            let data = try SafeTensorsFile(contentsOf: dir.appendingPathComponent("reference.safetensors").path)
            func ids(_ key: String) throws -> [[Int32]] {
                let width = try data.info(key).shape[1], flat = try data.int64s(key).map { Int32($0) }
                return stride(from: 0, to: flat.count, by: width).map { Array(flat[$0..<$0 + width]) }
            }
            let input = try ids("input_ids")
            let logits = try model.forward(tokens: input, cache: model.makeCache(batch: input.count, capacity: input[0].count))
            assertClose(logits, try data.floats("logits"), "\(dir.lastPathComponent) logits on Vulkan")
            // Cached decoding, step by step.
            let prompt = try ids("prompt_ids"), gen = try ids("gen_ids")
            let decode = try data.floats("decode_logits")
            let V = model.config.vocabSize, B = prompt.count
            let cache = try model.makeCache(batch: B, capacity: prompt[0].count + gen[0].count)
            var step = try model.forward(tokens: prompt, cache: cache, logits: ParScaleModel.LogitRows.last)
            for t in 0..<gen[0].count {
                assertClose(step, Array(decode[(t * B * V)..<((t + 1) * B * V)]), "\(dir.lastPathComponent) decode step \(t) on Vulkan")
                if t + 1 < gen[0].count { step = try model.forward(tokens: (0..<B).map { [gen[$0][t]] }, cache: cache, logits: ParScaleModel.LogitRows.last) }
            }
        }
    }
}
