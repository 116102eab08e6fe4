import Foundation
import XCTest
import SandpiperGit

final class RefTests: XCTestCase {
    func testCreateRefIfAbsentIsALock() throws {
        let fx = try Fixture()
        let dir = try fx.operatorRepo()
        let repo = try GitRepository.open(at: dir)
        let lock = "refs/sandpiper/locks/demo"
        let mine = try repo.writeBlob("holder: job-1\n".bytes)
        let theirs = try repo.writeBlob("holder: job-2\n".bytes)

        XCTAssertNil(try repo.readRef(lock))
        XCTAssertTrue(try repo.createRefIfAbsent(lock, target: mine, message: "lock demo"))
        XCTAssertFalse(try repo.createRefIfAbsent(lock, target: theirs, message: "lock demo"))
        XCTAssertEqual(try repo.readRef(lock), mine)
        XCTAssertEqual(try repo.readBlob(try XCTUnwrap(try repo.readRef(lock))), "holder: job-1\n".bytes)
        XCTAssertEqual(try fx.git("cat-file", "-p", lock, in: dir), "holder: job-1\n")
        XCTAssertEqual(try repo.references(withPrefix: "refs/sandpiper/locks/").map(\.name), [lock])

        // Release only by the holder: a stale expectation is a typed error and keeps the lock.
        XCTAssertThrowsError(try repo.deleteRef(lock, expected: theirs)) {
            XCTAssertEqual(($0 as? GitError)?.kind, .modified)
        }
        XCTAssertEqual(try repo.readRef(lock), mine)
        XCTAssertTrue(try repo.deleteRef(lock, expected: mine))
        XCTAssertFalse(try repo.deleteRef(lock, expected: mine))
        XCTAssertNil(try repo.readRef(lock))
        XCTAssertTrue(try repo.createRefIfAbsent(lock, target: theirs, message: "lock demo"))

        // Compare-and-swap update (e.g. refreshing the holder record).
        XCTAssertThrowsError(try repo.updateRef(lock, to: mine, expected: mine, message: "refresh")) {
            XCTAssertEqual(($0 as? GitError)?.kind, .modified)
        }
        try repo.updateRef(lock, to: mine, expected: theirs, message: "refresh")
        XCTAssertEqual(try repo.readRef(lock), mine)
    }

    func testRacingCreateRefIfAbsentHasExactlyOneWinner() throws {
        let fx = try Fixture()
        let dir = try fx.operatorRepo()
        let lock = "refs/sandpiper/locks/demo"
        let contenders = 8
        for round in 0..<5 {
            // Separate instances, as separate processes would have: only git's lock files
            // and libgit2's create-if-absent arbitrate.
            let repos = try (0..<contenders).map { _ in try GitRepository.open(at: dir) }
            let holders = try repos.enumerated().map { i, repo in try repo.writeBlob("holder \(round)-\(i)\n".bytes) }
            let results = Results(count: contenders)
            let start = DispatchSemaphore(value: 0)
            let group = DispatchGroup()
            for i in 0..<contenders {
                let repo = repos[i], holder = holders[i]
                DispatchQueue.global().async(group: group) {
                    start.wait()
                    results.set(i, Result { try repo.createRefIfAbsent(lock, target: holder, message: "race") })
                }
            }
            for _ in 0..<contenders { start.signal() }
            XCTAssertEqual(group.wait(timeout: .now() + 30), .success)

            let outcomes = try results.all.map { try XCTUnwrap($0).get() }
            XCTAssertEqual(outcomes.filter { $0 }.count, 1, "round \(round): \(outcomes)")
            let winner = try XCTUnwrap(outcomes.firstIndex(of: true))
            XCTAssertEqual(try repos[0].readRef(lock), holders[winner])
            XCTAssertTrue(try repos[winner].deleteRef(lock, expected: holders[winner]))
        }
    }
}

extension RefTests {
    func testWaitsOutABrieflyHeldRefLockAndReportsAStuckOne() throws {
        let fx = try Fixture()
        let dir = try fx.operatorRepo()
        let repo = try GitRepository.open(at: dir)
        let head = try XCTUnwrap(try repo.headCommit())
        let lockFile = dir + "/.git/refs/sandpiper/locks/demo.lock"
        try fx.write("", to: lockFile)  // another git process is writing this ref right now

        DispatchQueue.global().asyncAfter(deadline: .now() + 0.1) {
            try? FileManager.default.removeItem(atPath: lockFile)
        }
        XCTAssertTrue(try repo.createRefIfAbsent("refs/sandpiper/locks/demo", target: head, message: "lock"))

        try fx.write("", to: dir + "/.git/refs/sandpiper/locks/stuck.lock")
        XCTAssertThrowsError(try repo.createRefIfAbsent("refs/sandpiper/locks/stuck", target: head, message: "lock")) {
            XCTAssertEqual(($0 as? GitError)?.kind, .locked, "\($0)")
        }
    }
}

/// Results written by concurrent contenders, one slot each.
private final class Results: @unchecked Sendable {
    private let lock = NSLock()
    private var slots: [Result<Bool, any Error>?]
    init(count: Int) { slots = Array(repeating: nil, count: count) }
    func set(_ i: Int, _ value: Result<Bool, any Error>) { lock.withLock { slots[i] = value } }
    var all: [Result<Bool, any Error>?] { lock.withLock { slots } }
}
