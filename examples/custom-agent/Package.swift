// swift-tools-version: 6.0
// An agent added to PruneGym from outside its sources: REINFORCE with a learned baseline, in one
// file (Sources/custom-agent/ReinforceAgent.swift), registered beside PPO. See the README's
// tutorial "Swap in your own agent".
import PackageDescription

let package = Package(
    name: "custom-agent",
    dependencies: [.package(name: "PruneGym", path: "../..")],
    targets: [
        .executableTarget(
            name: "custom-agent",
            dependencies: [
                .product(name: "PruneGymCommands", package: "PruneGym"),
                .product(name: "Gym", package: "PruneGym"),
                .product(name: "Policies", package: "PruneGym"),
                .product(name: "NN", package: "PruneGym"),
                .product(name: "TensorCore", package: "PruneGym"),
            ],
            path: "Sources/custom-agent"
        ),
    ]
)
