// swift-tools-version: 6.0
// PruneGym: a gym-style RL framework for learning to prune the visual tokens of a
// vision-language model. See README.md and DESIGN in the docs for the module layering.
import PackageDescription

let package = Package(
    name: "PruneGym",
    products: [
        .library(name: "TensorCore", targets: ["TensorCore"]),
        .library(name: "NN", targets: ["NN"]),
        .executable(name: "prunegym", targets: ["PruneGymCLI"]),
    ],
    targets: [
        // OpenBLAS, found through pkg-config; the one system library.
        .systemLibrary(
            name: "COpenBLAS",
            path: "Sources/COpenBLAS",
            pkgConfig: "openblas",
            providers: [.apt(["libopenblas-dev"])]
        ),
        .target(name: "TensorCore", dependencies: ["COpenBLAS"], path: "Sources/TensorCore"),
        .target(name: "NN", dependencies: ["TensorCore"], path: "Sources/NN"),
        .executableTarget(
            name: "PruneGymCLI",
            dependencies: ["TensorCore", "NN"],
            path: "Sources/PruneGymCLI"
        ),

        // Benchmarks: executables that print measured figures and ratios against peers.
        .executableTarget(
            name: "TensorBench",
            dependencies: ["TensorCore", "NN"],
            path: "Benchmarks/TensorBench"
        ),

        // Tests
        .target(name: "TestSupport", dependencies: ["TensorCore"], path: "Tests/TestSupport"),
        .testTarget(
            name: "TensorCoreTests",
            dependencies: ["TensorCore", "TestSupport"],
            path: "Tests/TensorCoreTests"
        ),
        .testTarget(
            name: "NNTests",
            dependencies: ["NN", "TensorCore", "TestSupport"],
            path: "Tests/NNTests"
        ),
    ]
)
