// swift-tools-version: 6.0
// Your own environment, tested with PruneGymTesting: a 4×4 grid world and its Swift Testing
// suite. See the README's tutorial "Write and test your own environment".
import PackageDescription

let package = Package(
    name: "my-environment",
    dependencies: [.package(name: "PruneGym", path: "../..")],
    targets: [
        .target(name: "GridWorld", dependencies: [.product(name: "Gym", package: "PruneGym"), .product(name: "TensorCore", package: "PruneGym")]),
        .testTarget(name: "GridWorldTests", dependencies: ["GridWorld", .product(name: "PruneGymTesting", package: "PruneGym"),
                                                           .product(name: "Gym", package: "PruneGym")]),
    ]
)
