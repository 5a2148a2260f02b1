// swift-tools-version:5.9
// The sod2 Swift package. `build-xcframework.sh` (macOS) builds the native library for iOS
// devices and simulators into build/sod2_uniffiFFI.xcframework; the Swift sources are generated
// by uniffi from the same Rust library (scripts/regen-uniffi.sh) plus a thin, idiomatic wrapper.
import PackageDescription

let package = Package(
    name: "Sod2",
    platforms: [.iOS(.v15), .macOS(.v12)],
    products: [
        .library(name: "Sod2", targets: ["Sod2"]),
    ],
    targets: [
        .binaryTarget(name: "sod2_uniffiFFI", path: "build/sod2_uniffiFFI.xcframework"),
        .target(name: "Sod2UniFFI", dependencies: ["sod2_uniffiFFI"], path: "Sources/Sod2UniFFI"),
        .target(name: "Sod2", dependencies: ["Sod2UniFFI"], path: "Sources/Sod2"),
        .testTarget(name: "Sod2Tests", dependencies: ["Sod2"], path: "Tests/Sod2Tests", resources: [.copy("Resources")]),
    ]
)
