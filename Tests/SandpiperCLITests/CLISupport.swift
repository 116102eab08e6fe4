import Foundation
import XCTest
import SandpiperTestSupport

/// The result of running the `sandpiper` binary.
struct Run {
    var status: Int32
    var stdout: String
    var stderr: String
}

enum CLI {
    /// `.build/<config>/sandpiper`, next to the test bundle.
    static var binary: URL {
        var dir = Bundle(for: Marker.self).bundleURL.deletingLastPathComponent()
        if !FileManager.default.fileExists(atPath: dir.appendingPathComponent("sandpiper").path) {
            dir = URL(fileURLWithPath: CommandLine.arguments[0]).deletingLastPathComponent()
        }
        return dir.appendingPathComponent("sandpiper")
    }

    static var repositoryRoot: URL { SandpiperTestSupport.repositoryRoot }

    /// Runs sandpiper with `arguments` in `directory` and waits (at most `timeout` seconds).
    @discardableResult
    static func run(_ arguments: [String], in directory: URL? = nil, environment: [String: String] = [:],
                    timeout: TimeInterval = 120) throws -> Run {
        let process = Process()
        process.executableURL = binary
        process.arguments = arguments
        if let directory { process.currentDirectoryURL = directory }
        var env = ProcessInfo.processInfo.environment
        env["CI"] = "true"
        for (k, v) in environment { env[k] = v }
        process.environment = env
        let out = Pipe(), err = Pipe()
        process.standardOutput = out
        process.standardError = err
        try process.run()
        // Read both pipes concurrently so a full pipe never blocks the child.
        let group = DispatchGroup()
        nonisolated(unsafe) var outData = Data(), errData = Data()
        group.enter(); DispatchQueue.global().async { outData = out.fileHandleForReading.readDataToEndOfFile(); group.leave() }
        group.enter(); DispatchQueue.global().async { errData = err.fileHandleForReading.readDataToEndOfFile(); group.leave() }
        if group.wait(timeout: .now() + timeout) == .timedOut {
            process.terminate()
            throw NSError(domain: "CLI", code: 1, userInfo: [NSLocalizedDescriptionKey: "sandpiper \(arguments) timed out"])
        }
        process.waitUntilExit()
        return Run(status: process.terminationStatus, stdout: String(decoding: outData, as: UTF8.self),
                   stderr: String(decoding: errData, as: UTF8.self))
    }

    /// A temp repository with the bundled clusters and policies.
    static func sandbox(_ test: XCTestCase, from source: URL = repositoryRoot) throws -> URL {
        let root = FileManager.default.temporaryDirectory.appendingPathComponent("sandpiper-cli-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: root, withIntermediateDirectories: true)
        for item in ["Clusters", "Policies"] {
            try copyBundled(from: source.appendingPathComponent(item), to: root.appendingPathComponent(item))
        }
        test.addTeardownBlock { try? FileManager.default.removeItem(at: root) }
        return root
    }
}

private final class Marker {}
