import Foundation
import SandpiperEngine
import XCTest

/// What a dead or careless run leaves next to the lock is recoverable: a garbage lock file can be force-unlocked
/// (by the content ID the refusal prints), and private temp files of killed runs are swept.
final class LockLeftoverTests: XCTestCase {
    private func lockFile(_ dir: URL) -> URL { dir.appendingPathComponent(".sandpiper.lock") }

    func testAGarbageLockIsNamedAndCanBeForceUnlocked() throws {
        let dir = try temporaryDirectory(self)
        for garbage in ["", "not json at all", "{\"id\": 7}"] {
            try write(garbage, to: lockFile(dir))
            var printedID = ""
            XCTAssertThrowsError(try ClusterLock.acquire(directory: dir, operation: "observe")) { error in
                let text = "\(error)"
                XCTAssertTrue(text.contains("the lock file is not a Sandpiper lock"), text)
                let id = text.components(separatedBy: "sandpiper force-unlock ").dropFirst().first?.split(separator: " ").first
                printedID = id.map(String.init) ?? ""
            }
            XCTAssertTrue(printedID.hasPrefix("damaged-"), printedID)
            XCTAssertThrowsError(try ClusterLock.forceUnlock(directory: dir, id: "damaged-0000000000000000"))
            XCTAssertTrue(FileManager.default.fileExists(atPath: lockFile(dir).path), "a wrong ID removes nothing")
            try ClusterLock.forceUnlock(directory: dir, id: printedID)
            XCTAssertFalse(FileManager.default.fileExists(atPath: lockFile(dir).path), garbage)
            let lock = try ClusterLock.acquire(directory: dir, operation: "observe")
            lock.release()
        }
    }

    func testTheDamagedIDNamesTheContentSoANewLockIsNotRemovedByAnOldID() throws {
        let dir = try temporaryDirectory(self)
        try write("garbage", to: lockFile(dir))
        var oldID = ""
        XCTAssertThrowsError(try ClusterLock.acquire(directory: dir, operation: "x")) { error in
            oldID = "\(error)".components(separatedBy: "force-unlock ").last?.split(separator: " ").first.map(String.init) ?? ""
        }
        try write("other garbage", to: lockFile(dir))
        XCTAssertThrowsError(try ClusterLock.forceUnlock(directory: dir, id: oldID)) { error in
            XCTAssertTrue("\(error)".contains("does not match"), "\(error)")
        }
    }

    func testPrivateLockFilesOfKilledRunsAreSwept() throws {
        let dir = try temporaryDirectory(self)
        // A pid that is certainly gone: a child that has exited and been reaped.
        let child = Process()
        child.executableURL = URL(fileURLWithPath: "/bin/true")
        try child.run()
        child.waitUntilExit()
        let dead = child.processIdentifier
        let orphan = ".sandpiper.lock.\(dead).0f0e0d0c-0000-4000-8000-000000000001.tmp"
        let alive = ".sandpiper.lock.\(getpid()).0f0e0d0c-0000-4000-8000-000000000002.tmp"  // a run in progress
        let legacy = ".sandpiper.lock.0f0e0d0c-0000-4000-8000-000000000003.tmp"          // older format, old
        let legacyNested = "..sandpiper.lock.0f0e0d0c-0000-4000-8000-000000000004.tmp.\(dead).tmp"
        for name in [orphan, alive, legacy, legacyNested] {
            try write("{}", to: dir.appendingPathComponent(name))
        }
        for name in [legacy, legacyNested] {
            try FileManager.default.setAttributes([.modificationDate: Date(timeIntervalSinceNow: -3600)],
                                                  ofItemAtPath: dir.appendingPathComponent(name).path)
        }
        let lock = try ClusterLock.acquire(directory: dir, operation: "observe")
        lock.release()
        let left = try FileManager.default.contentsOfDirectory(atPath: dir.path).filter { $0.hasSuffix(".tmp") }
        XCTAssertEqual(left, [alive], "only the live run's private file stays")
    }
}
