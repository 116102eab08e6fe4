import Foundation
import Synchronization
import SandpiperEngine
import XCTest

final class ClusterLockTests: XCTestCase {
    func testSecondHolderIsRefusedWithTheHolderNamed() throws {
        let dir = try temporaryDirectory(self)
        let first = try ClusterLock.acquire(directory: dir, operation: "apply")
        XCTAssertThrowsError(try ClusterLock.acquire(directory: dir, operation: "reconcile")) { error in
            let text = "\(error)"
            XCTAssertTrue(text.contains("the cluster is locked: apply by"), text)
            XCTAssertTrue(text.contains(first.info.id), text)
        }
        first.release()
        let second = try ClusterLock.acquire(directory: dir, operation: "reconcile")
        XCTAssertEqual(try ClusterLock.current(directory: dir)?.id, second.info.id)
    }

    func testForceUnlockChecksTheID() throws {
        let dir = try temporaryDirectory(self)
        let held = try ClusterLock.acquire(directory: dir, operation: "apply")
        XCTAssertThrowsError(try ClusterLock.forceUnlock(directory: dir, id: "nope"))
        try ClusterLock.forceUnlock(directory: dir, id: held.info.id)
        XCTAssertNil(try ClusterLock.current(directory: dir))
        XCTAssertThrowsError(try ClusterLock.forceUnlock(directory: dir, id: held.info.id)) { error in
            XCTAssertTrue("\(error)".contains("not locked"))
        }
    }

    func testOnlyOneOfManyConcurrentAcquirersWins() throws {
        let dir = try temporaryDirectory(self)
        // Locks are kept (not released) until every contender has tried, so exactly one may win.
        let winners = Mutex<[ClusterLock]>([])
        DispatchQueue.concurrentPerform(iterations: 16) { _ in
            if let lock = try? ClusterLock.acquire(directory: dir, operation: "race") {
                winners.withLock { $0.append(lock) }
            }
        }
        XCTAssertEqual(winners.withLock { $0.count }, 1)
    }
}
