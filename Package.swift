// swift-tools-version: 6.0
// PruneGym: a gym-style RL framework for learning to prune the visual tokens of a
// vision-language model. See README.md and DESIGN in the docs for the module layering.
import PackageDescription

let package = Package(
    name: "PruneGym",
    products: [
        .library(name: "TensorCore", targets: ["TensorCore"]),
        .library(name: "NN", targets: ["NN"]),
        .library(name: "Gym", targets: ["Gym"]),
        .library(name: "VLM", targets: ["VLM"]),
        .library(name: "ClassicControl", targets: ["ClassicControl"]),
        .library(name: "TokenPruning", targets: ["TokenPruning"]),
        .library(name: "Pruners", targets: ["Pruners"]),
        .library(name: "TPRL", targets: ["TPRL"]),
        .library(name: "Policies", targets: ["Policies"]),
        .library(name: "PPO", targets: ["PPO"]),
        .library(name: "BehaviorCloning", targets: ["BehaviorCloning"]),
        // Helpers for testing your own environments and agents (see examples/).
        .library(name: "PruneGymTesting", targets: ["PruneGymTesting"]),
        .library(name: "PruneGymCommands", targets: ["PruneGymCommands"]),
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
        .target(name: "Gym", dependencies: ["TensorCore"], path: "Sources/Gym"),
        .target(name: "VLM", dependencies: ["TensorCore", "NN"], path: "Sources/VLM"),
        .target(name: "ClassicControl", dependencies: ["Gym", "TensorCore"], path: "Environments/ClassicControl"),
        .target(name: "TokenPruning", dependencies: ["Gym", "NN", "VLM", "TensorCore"], path: "Environments/TokenPruning"),
        .target(name: "Pruners", dependencies: ["Gym", "VLM", "TokenPruning", "TensorCore"], path: "Agents/Pruners"),
        .target(name: "TPRL", dependencies: ["Gym", "NN", "TensorCore", "VLM", "TokenPruning", "Pruners", "Policies", "PPO", "BehaviorCloning"],
                path: "Agents/TPRL"),
        // Shared by the learning agents: action distributions and actor-critic networks.
        .target(name: "Policies", dependencies: ["Gym", "NN", "TensorCore"], path: "Agents/Policies"),
        .target(name: "PPO", dependencies: ["Gym", "NN", "TensorCore", "Policies"], path: "Agents/PPO"),
        .target(name: "BehaviorCloning", dependencies: ["Gym", "NN", "TensorCore", "Policies"], path: "Agents/BehaviorCloning"),
        .target(name: "PruneGymTesting", dependencies: ["Gym", "TensorCore", "VLM", "TokenPruning"], path: "Sources/PruneGymTesting"),
        // The command line as a library (so packages can run it with their own agents) and its executable.
        .target(
            name: "PruneGymCommands",
            dependencies: ["TensorCore", "NN", "Gym", "VLM", "ClassicControl", "TokenPruning", "Pruners", "TPRL", "Policies", "PPO", "BehaviorCloning"],
            path: "Sources/PruneGymCommands"
        ),
        .executableTarget(name: "PruneGymCLI", dependencies: ["PruneGymCommands"], path: "Sources/PruneGymCLI"),

        // Benchmarks: executables that print measured figures and ratios against peers.
        .executableTarget(
            name: "TensorBench",
            dependencies: ["TensorCore", "NN"],
            path: "Benchmarks/TensorBench"
        ),

        .executableTarget(
            name: "GymBench",
            dependencies: ["Gym", "ClassicControl", "PPO", "BehaviorCloning", "TensorCore"],
            path: "Benchmarks/GymBench"
        ),

        .executableTarget(name: "VLMBench", dependencies: ["VLM", "TensorCore"], path: "Benchmarks/VLMBench"),
        .executableTarget(name: "PruningBench", dependencies: ["TokenPruning", "Pruners", "TPRL", "Gym", "TensorCore"], path: "Benchmarks/PruningBench"),

        // Tests
        .target(name: "TestSupport", dependencies: ["TensorCore", "Gym"], path: "Tests/TestSupport"),
        .testTarget(
            name: "TensorCoreTests",
            dependencies: ["TensorCore", "TestSupport"],
            path: "Tests/TensorCoreTests"
        ),
        .testTarget(name: "VLMTests", dependencies: ["VLM", "NN", "TensorCore", "TestSupport"], path: "Tests/VLMTests"),
        .testTarget(name: "GymTests", dependencies: ["Gym", "TensorCore", "TestSupport"], path: "Tests/GymTests"),
        .testTarget(
            name: "ClassicControlTests",
            dependencies: ["ClassicControl", "Gym", "TensorCore", "TestSupport"],
            path: "Tests/ClassicControlTests"
        ),
        .testTarget(name: "PPOTests", dependencies: ["PPO", "Policies", "Gym", "ClassicControl", "NN", "TensorCore", "TestSupport"], path: "Tests/PPOTests"),
        .testTarget(
            name: "BehaviorCloningTests",
            dependencies: ["BehaviorCloning", "Policies", "Gym", "ClassicControl", "TensorCore", "TestSupport"],
            path: "Tests/BehaviorCloningTests"
        ),
        .testTarget(name: "TokenPruningTests", dependencies: ["TokenPruning", "Pruners", "TPRL", "Policies", "PPO", "VLM", "Gym", "NN", "TensorCore", "TestSupport", "PruneGymTesting"],
                    path: "Tests/TokenPruningTests"),
        .testTarget(name: "WorkflowTests", dependencies: ["PruneGymTesting", "TPRL", "Pruners", "TokenPruning", "ClassicControl", "Gym", "TensorCore", "TestSupport",
                                                    "NN", "Policies", "PPO", "PruneGymCommands", "VLM"],
                    path: "Tests/WorkflowTests"),
        .testTarget(
            name: "NNTests",
            dependencies: ["NN", "TensorCore", "TestSupport"],
            path: "Tests/NNTests"
        ),
    ]
)
