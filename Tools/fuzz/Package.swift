// swift-tools-version:5.9
// libFuzzer targets, one per parser of the main package (issue #16). Not part of the normal build:
// they only link with the fuzzer runtime. Build and run them with Tools/fuzz.sh.
import PackageDescription

let fuzzTargets = ["FuzzSafeTensors", "FuzzConfig", "FuzzIndex", "FuzzTokenizer", "FuzzTrainerState", "FuzzAdapter"]

let package = Package(
    name: "parscale-fuzz",
    products: fuzzTargets.map { .executable(name: $0, targets: [$0]) },
    dependencies: [.package(name: "parscale", path: "../..")],
    targets: [
        .target(name: "FuzzSupport"),
    ] + fuzzTargets.map {
        .executableTarget(
            name: $0,
            dependencies: [
                "FuzzSupport",
                .product(name: "ParScale", package: "parscale"),
                .product(name: "ParScaleTrain", package: "parscale"),
            ],
            // libFuzzer supplies main; the entry is LLVMFuzzerTestOneInput.
            swiftSettings: [.unsafeFlags(["-parse-as-library"])])
    }
)
