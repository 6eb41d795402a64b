import Foundation
import XCTest

/// What a test needs from the machine (a Vulkan driver, glslc, the reference models). Where it is
/// missing the test skips, or, with PARSCALE_REQUIRE_ALL=1 (as .ci/run sets it), fails: then no
/// test can pass by skipping.
public enum Requirements {
    public static var requireAll: Bool { ProcessInfo.processInfo.environment["PARSCALE_REQUIRE_ALL"] == "1" }
}

/// A requirement that PARSCALE_REQUIRE_ALL=1 made a failure (a thrown error fails the test).
public struct MissingRequirement: Error, CustomStringConvertible {
    public let reason: String
    public var description: String { "PARSCALE_REQUIRE_ALL=1 and \(reason)" }
}

/// Skips the running test for `reason`, or fails it under PARSCALE_REQUIRE_ALL=1. Every test that
/// cannot run here ends through this.
public func requireOrSkip(_ reason: String, file: StaticString = #filePath, line: UInt = #line) throws -> Never {
    if Requirements.requireAll {
        XCTFail("PARSCALE_REQUIRE_ALL=1 and \(reason)", file: file, line: line)
        throw MissingRequirement(reason: reason)
    }
    throw XCTSkip(reason, file: file, line: line)
}

/// lavapipe, the Vulkan driver on the CPU that the Vulkan tests run on (Tools/setup.sh installs it).
public enum Lavapipe {
    public static let icdDirectory = "/usr/share/vulkan/icd.d"

    /// The driver manifest the tests use: the one VK_DRIVER_FILES names when it is set (a driver
    /// installed elsewhere; a missing file skips or fails as a missing driver does), else lavapipe's
    /// on this machine's architecture (lvp_icd.<arch>.json); `requireOrSkip` where there is none.
    public static func icd(file: StaticString = #filePath, line: UInt = #line) throws -> String {
        if let chosen = ProcessInfo.processInfo.environment["VK_DRIVER_FILES"], !chosen.isEmpty {
            guard FileManager.default.fileExists(atPath: chosen) else {
                try requireOrSkip("VK_DRIVER_FILES=\(chosen) names no driver manifest", file: file, line: line)
            }
            return chosen
        }
        guard let found = manifest(in: icdDirectory) else {
            try requireOrSkip(
                "lavapipe is not installed (no \(icdDirectory)/lvp_icd.*.json; Tools/setup.sh installs mesa-vulkan-drivers)",
                file: file, line: line)
        }
        return found
    }

    /// lavapipe's manifest in `directory` (lvp_icd.<arch>.json: x86_64, aarch64, ...), or nil.
    public static func manifest(in directory: String) -> String? {
        let names = (try? FileManager.default.contentsOfDirectory(atPath: directory)) ?? []
        return names.filter { $0.hasPrefix("lvp_icd.") && $0.hasSuffix(".json") }.sorted().first.map { directory + "/" + $0 }
    }

    /// Sets VK_DRIVER_FILES to `path` for this process (and the commands it starts); the returned
    /// closure puts back what was there before.
    public static func useDriver(_ path: String) -> () -> Void {
        let previous = getenv("VK_DRIVER_FILES").map { String(cString: $0) }
        setenv("VK_DRIVER_FILES", path, 1)
        return {
            if let previous { setenv("VK_DRIVER_FILES", previous, 1) } else { unsetenv("VK_DRIVER_FILES") }
        }
    }
}

extension TestPaths {
    /// The reference models (`referenceModels`), or `requireOrSkip` where the folder holds none:
    /// a test that loops over them cannot pass without looping.
    public static func requiredReferenceModels(file: StaticString = #filePath, line: UInt = #line) throws -> [URL] {
        let models = referenceModels
        if models.isEmpty {
            try requireOrSkip(
                "no reference models in \(reference.path) (set PARSCALE_REFERENCE_DIR)", file: file, line: line)
        }
        return models
    }

    /// The reference model `name` (a folder of `reference`), or `requireOrSkip` where it is missing.
    public static func requiredReferenceModel(_ name: String, file: StaticString = #filePath, line: UInt = #line) throws -> URL {
        let dir = reference.appendingPathComponent(name)
        guard FileManager.default.fileExists(atPath: dir.appendingPathComponent("config.json").path) else {
            try requireOrSkip("no reference model \(name) in \(reference.path) (set PARSCALE_REFERENCE_DIR)", file: file, line: line)
        }
        return dir
    }
}
