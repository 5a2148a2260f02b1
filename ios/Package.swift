// swift-tools-version:5.9
// The sod2 Swift package. `build-xcframework.sh` (macOS) builds the native library for iOS
// devices and simulators into build/sod2_uniffiFFI.xcframework; the Swift sources are generated
// by uniffi from the same Rust library (scripts/regen-uniffi.sh) plus a thin, idiomatic wrapper.
//
// On Linux (no Apple frameworks, no XCFramework) the FFI module is a system library target
// instead: Linux/sod2_uniffiFFI/module.modulemap names the checked-in header and links
// libsod2_uniffi from `cargo build --release -p sod2-uniffi`; scripts/swift-test.sh builds it and
// runs `swift build` / `swift test` with `-Xlinker -L<root>/target/release` (and an rpath).
import PackageDescription

#if os(Linux)
let ffi: Target = .systemLibrary(name: "sod2_uniffiFFI", path: "Linux/sod2_uniffiFFI")
#else
let ffi: Target = .binaryTarget(name: "sod2_uniffiFFI", path: "build/sod2_uniffiFFI.xcframework")
#endif

let package = Package(
    name: "Sod2",
    platforms: [.iOS(.v15), .macOS(.v12)],
    products: [
        .library(name: "Sod2", targets: ["Sod2"]),
    ],
    targets: [
        ffi,
        .target(name: "Sod2UniFFI", dependencies: ["sod2_uniffiFFI"], path: "Sources/Sod2UniFFI"),
        .target(name: "Sod2", dependencies: ["Sod2UniFFI"], path: "Sources/Sod2"),
        .testTarget(name: "Sod2Tests", dependencies: ["Sod2"], path: "Tests/Sod2Tests", resources: [.copy("Resources")]),
    ]
)
