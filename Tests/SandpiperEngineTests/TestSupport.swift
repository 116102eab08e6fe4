import Foundation
import XCTest
import SandpiperTestSupport
import SandpiperEngine

/// The repository root (for the bundled Clusters/ and Policies/); one definition, in SandpiperTestSupport.
let repositoryRoot = SandpiperTestSupport.repositoryRoot

/// A fresh temporary directory, removed when the test ends.
func temporaryDirectory(_ test: XCTestCase) throws -> URL {
    let url = FileManager.default.temporaryDirectory.appendingPathComponent("sandpiper-test-\(UUID().uuidString)")
    try FileManager.default.createDirectory(at: url, withIntermediateDirectories: true)
    test.addTeardownBlock { try? FileManager.default.removeItem(at: url) }
    return url
}

/// Copies a bundled cluster and the Policies/ directory into a temp repository layout.
func copyBundledCluster(_ name: String, into root: URL) throws -> URL {
    let fm = FileManager.default
    try fm.createDirectory(at: root.appendingPathComponent("Clusters"), withIntermediateDirectories: true)
    let target = root.appendingPathComponent("Clusters/\(name)")
    try copyBundled(from: repositoryRoot.appendingPathComponent("Clusters/\(name)"), to: target)
    if !fm.fileExists(atPath: root.appendingPathComponent("Policies").path) {
        try fm.copyItem(at: repositoryRoot.appendingPathComponent("Policies"), to: root.appendingPathComponent("Policies"))
    }
    return target
}

func write(_ text: String, to url: URL) throws {
    try FileManager.default.createDirectory(at: url.deletingLastPathComponent(), withIntermediateDirectories: true)
    try text.write(to: url, atomically: true, encoding: .utf8)
}

/// A generated 40-host / 800-VM cluster written under `root`, then every bundled cluster in name order: the
/// directories equivalence tests run both paths over.
func generatedAndBundledClusterPaths(under root: URL) throws -> [String] {
    _ = try GeneratedCluster.write(hosts: 40, vms: 800, intervals: 6, under: root)
    var paths = [root.appendingPathComponent("Clusters/bench").path]
    let clusters = repositoryRoot.appendingPathComponent("Clusters")
    for name in try FileManager.default.contentsOfDirectory(atPath: clusters.path).sorted() {
        paths.append(clusters.appendingPathComponent(name).path)
    }
    return paths
}
