import Foundation
import XCTest

/// `run --listen` with a value that is not HOST:PORT is an argument mistake (exit 64 with usage, as for every
/// other flag), refused before any cluster is opened or locked; a well-formed address that cannot be bound
/// stays "cannot start" (exit 1).
final class RunListenArgumentTests: XCTestCase {
    func testMalformedListenExits64BeforeLocking() throws {
        let root = try CLI.sandbox(self)
        for bad in ["nonsense", "127.0.0.1:99999", "nowhere:9464"] {
            let r = try CLI.run(["run", "Clusters/demo", "--listen", bad], in: root, timeout: 30)
            XCTAssertEqual(r.status, 64, "\(bad): \(r.stderr)")
            XCTAssertTrue(r.stderr.contains("--listen"), r.stderr)
            XCTAssertTrue(r.stderr.contains("Usage: sandpiper run"), r.stderr)
            XCTAssertFalse(FileManager.default.fileExists(
                atPath: root.appendingPathComponent("Clusters/demo/.sandpiper.lock").path))
        }
    }
}
