// swift-tools-version:6.0
import PackageDescription

// Layering (docs/DESIGN.md section 5): CLI -> GitOps / Simulation -> Engine -> Planner / Model; the C libraries
// (libvirt, libgit2, libyaml) sit at the edge behind Swift adapter modules.
// SandpiperModel and SandpiperPlanner never import a C module.
let package = Package(
    name: "Sandpiper",
    platforms: [.macOS(.v15)],
    products: [
        .executable(name: "sandpiper", targets: ["sandpiper"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.5.0"),
        .package(url: "https://github.com/apple/swift-crypto", from: "3.12.3"),
        // `sandpiper run`: one log line per event with metadata (text or JSON), journald-friendly stderr.
        .package(url: "https://github.com/apple/swift-log", from: "1.16.2"),
        // `/metrics` and `--metrics-file`: Prometheus text exposition (depends only on swift-metrics, swift-atomics).
        .package(url: "https://github.com/swift-server/swift-prometheus", from: "2.4.1"),
    ],
    targets: [
        // C system libraries, found through pkg-config.
        .systemLibrary(name: "CYAML", pkgConfig: "yaml-0.1", providers: [.apt(["libyaml-dev"])]),
        .systemLibrary(name: "CLibvirt", pkgConfig: "libvirt", providers: [.apt(["libvirt-dev"])]),
        .systemLibrary(name: "CGit2", pkgConfig: "libgit2", providers: [.apt(["libgit2-dev"])]),

        // Which parts of a libvirt URI are secret: one rule set for every module that prints or stores URIs.
        .target(name: "SandpiperRedaction"),

        // Adapters: Swift types over the C APIs.
        .target(name: "SandpiperYAML", dependencies: ["CYAML"]),
        .target(name: "SandpiperLibvirt", dependencies: ["CLibvirt", "SandpiperRedaction"]),
        .target(name: "SandpiperGit", dependencies: ["CGit2"]),

        // Pure core.
        .target(name: "SandpiperModel", dependencies: [
            "SandpiperYAML", "SandpiperRedaction", .product(name: "Crypto", package: "swift-crypto"),
        ]),
        .target(name: "SandpiperPlanner", dependencies: ["SandpiperModel"]),

        // Orchestration: load, observe, plan, apply, journal, lock, commit.
        .target(name: "SandpiperEngine", dependencies: [
            "SandpiperModel", "SandpiperPlanner", "SandpiperLibvirt", "SandpiperGit", "SandpiperRedaction",
        ]),

        // Git as the record and the lock: reconcile's loop, sessions, ref locks, proposals, commits.
        .target(name: "SandpiperGitOps", dependencies: [
            "SandpiperEngine", "SandpiperModel", "SandpiperPlanner", "SandpiperGit", "SandpiperRedaction",
        ]),
        // `sandpiper simulate`: the loop replayed over a trace, with ground truth, episodes, report and charts.
        .target(name: "SandpiperSimulation", dependencies: ["SandpiperEngine", "SandpiperModel", "SandpiperPlanner"]),

        // `sandpiper run`: the long-running controller (rounds, sample windows, signals, metrics, health endpoints).
        .target(name: "SandpiperController", dependencies: [
            "SandpiperEngine", "SandpiperGitOps", "SandpiperModel", "SandpiperLibvirt", "SandpiperRedaction",
            .product(name: "Logging", package: "swift-log"),
            .product(name: "Prometheus", package: "swift-prometheus"),
        ]),

        .executableTarget(name: "sandpiper", dependencies: [
            "SandpiperEngine", "SandpiperGitOps", "SandpiperSimulation", "SandpiperModel", "SandpiperController",
            .product(name: "Logging", package: "swift-log"),
            .product(name: "ArgumentParser", package: "swift-argument-parser"),
        ]),

        .testTarget(name: "SandpiperYAMLTests", dependencies: ["SandpiperYAML"]),
        .testTarget(name: "SandpiperModelTests", dependencies: ["SandpiperModel"], resources: [.copy("Fixtures")]),
        .testTarget(name: "SandpiperPlannerTests", dependencies: ["SandpiperPlanner", "SandpiperModel"]),
        // Test support: two real libvirtd/QEMU daemons on this machine (shared/labs recipe).
        .target(name: "SandpiperTestSupport", dependencies: ["SandpiperLibvirt"], path: "Tests/SandpiperTestSupport"),
        .testTarget(name: "SandpiperLibvirtTests", dependencies: ["SandpiperLibvirt", "SandpiperTestSupport"]),
        .testTarget(name: "SandpiperGitTests", dependencies: ["SandpiperGit", "SandpiperTestSupport"]),
        .testTarget(name: "SandpiperEngineTests", dependencies: [
            "SandpiperEngine", "SandpiperGitOps", "SandpiperSimulation", "SandpiperModel", "SandpiperTestSupport",
        ]),
        // Runs the built `sandpiper` binary: exit codes, output formats, crash safety.
        .testTarget(name: "SandpiperCLITests", dependencies: ["sandpiper", "SandpiperModel", "SandpiperTestSupport"],
                    exclude: ["Golden"]),
    ]
)
