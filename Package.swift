// swift-tools-version:5.9
import PackageDescription

let package = Package(
    name: "parscale",
    platforms: [.macOS(.v13)],
    products: [
        .library(name: "ParScale", targets: ["ParScale"]),
        // For Tools/fuzz (trainer_state.json).
        .library(name: "ParScaleTrain", targets: ["ParScaleTrain"]),
        .executable(name: "parscale", targets: ["parscale"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.5.0"),
    ],
    targets: [
        // cblas from OpenBLAS (Debian: libopenblas-dev).
        .systemLibrary(
            name: "COpenBLAS", path: "Sources/COpenBLAS", pkgConfig: "openblas",
            providers: [.apt(["libopenblas-dev"])]),
        // Vulkan headers only (Debian: libvulkan-dev). No pkgConfig and no `link` on purpose:
        // the loader is opened with dlopen at run time, so the binary also starts (and the CPU
        // backend works) on a machine without libvulkan.so.1.
        .systemLibrary(
            name: "CVulkan", path: "Sources/CVulkan",
            providers: [.apt(["libvulkan-dev"])]),
        // Small hand-vectorised kernels (AVX2+FMA chosen at run time, plain C otherwise).
        .target(name: "CKernels", cSettings: [.unsafeFlags(["-O3"])]),
        .target(
            name: "ParScale", dependencies: ["COpenBLAS", "CKernels"],
            swiftSettings: [.unsafeFlags(["-Ounchecked"])]),
        .target(name: "ParScaleVulkan", dependencies: ["CVulkan", "ParScale"]),
        .target(name: "ParScaleTrain", dependencies: ["ParScale"]),
        .target(name: "ParScaleLaw", dependencies: ["ParScale", "ParScaleTrain"]),
        .executableTarget(
            name: "parscale",
            dependencies: [
                "ParScale", "ParScaleVulkan", "ParScaleTrain", "ParScaleLaw",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
            ]),
        // Helpers every test target shares: paths (reference models, fixtures, temporary folders),
        // tolerances, the tiny model, short training runs.
        .target(name: "TestSupport", dependencies: ["ParScale", "ParScaleTrain"], path: "Tests/TestSupport"),
        // Core tests build without Vulkan; the Vulkan backend has its own target (lavapipe).
        .testTarget(name: "ParScaleTests", dependencies: ["ParScale", "TestSupport"]),
        .testTarget(name: "ParScaleVulkanTests", dependencies: ["ParScaleVulkan", "ParScaleTrain", "ParScale", "TestSupport"]),
        .testTarget(name: "ParScaleTrainTests", dependencies: ["ParScaleTrain", "ParScale", "TestSupport"]),
        .testTarget(name: "ParScaleLawTests", dependencies: ["ParScaleLaw", "ParScaleTrain", "ParScale", "TestSupport"]),
        .testTarget(name: "CLITests", dependencies: ["parscale", "TestSupport"]),
    ]
)
