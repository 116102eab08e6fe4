import Foundation
import XCTest
import SandpiperGit

final class RemoteTests: XCTestCase {
    /// A bare "origin" with the operator repository pushed to it, and a second clone.
    private func setUpRemote(_ fx: Fixture) throws -> (origin: String, mine: String, theirs: String) {
        let origin = fx.root + "/origin.git"
        try FileManager.default.createDirectory(atPath: origin, withIntermediateDirectories: true)
        try fx.git("init", "-q", "--bare", "-b", "main", in: origin)
        let mine = try fx.operatorRepo(name: "mine")
        try fx.git("remote", "add", "origin", origin, in: mine)

        let repo = try GitRepository.open(at: mine)
        try repo.push(remote: "origin", refspecs: ["refs/heads/main:refs/heads/main"])
        XCTAssertEqual(try fx.git("rev-parse", "main", in: origin), try fx.git("rev-parse", "main", in: mine))
        XCTAssertEqual(try repo.readRef("refs/remotes/origin/main"), try repo.headCommit(),
                       "push updates the remote-tracking ref")

        try fx.git("clone", "-q", origin, "theirs", in: fx.root)
        let theirs = fx.root + "/theirs"
        try fx.git("config", "user.name", "Other", in: theirs)
        try fx.git("config", "user.email", "other@example.org", in: theirs)
        return (origin, mine, theirs)
    }

    func testPushFastForwardThenRejectNonFastForwardAfterTheRemoteMoved() throws {
        let fx = try Fixture()
        let (origin, mine, theirs) = try setUpRemote(fx)
        let repo = try GitRepository.open(at: mine)
        let base = try XCTUnwrap(try repo.headCommit())

        // A fast-forward push of a Sandpiper commit.
        let ours1 = try XCTUnwrap(try repo.commitFiles(["Clusters/demo/state.json": "{\"serial\": 2}\n".bytes],
                                                       message: "state 2", author: sandpiperSignature))
        try repo.push(refspecs: ["refs/heads/main:refs/heads/main"])
        XCTAssertEqual(try fx.git("rev-parse", "main", in: origin).trimmed, ours1.hex)

        // Another clone pushes first.
        try fx.git("pull", "-q", "--ff-only", in: theirs)
        try fx.write("kind: Policy\n# theirs\n", to: theirs + "/Policies/default.yaml")
        try fx.git("commit", "-q", "-am", "Their policy change", in: theirs)
        try fx.git("push", "-q", "origin", "main", in: theirs)
        let theirCommit = try fx.git("rev-parse", "HEAD", in: theirs).trimmed

        // Our next push is not a fast-forward: typed error, the remote keeps their commit.
        let ours2 = try XCTUnwrap(try repo.commitFiles(["Clusters/demo/state.json": "{\"serial\": 3}\n".bytes],
                                                       message: "state 3", author: sandpiperSignature))
        XCTAssertThrowsError(try repo.push(refspecs: ["refs/heads/main:refs/heads/main"])) {
            XCTAssertEqual(($0 as? GitError)?.kind, .nonFastForward, "\($0)")
        }
        XCTAssertEqual(try fx.git("rev-parse", "main", in: origin).trimmed, theirCommit)
        XCTAssertThrowsError(try repo.push(refspecs: ["+refs/heads/main:refs/heads/main"])) {
            XCTAssertEqual(($0 as? GitError)?.kind, .invalidSpec)
        }

        // Fetch, then ancestry says why: their commit does not contain ours.
        try repo.fetch(remote: "origin")
        let remoteMain = try XCTUnwrap(try repo.readRef("refs/remotes/origin/main"))
        XCTAssertEqual(remoteMain.hex, theirCommit)
        XCTAssertTrue(try repo.isAncestor(base, of: remoteMain))
        XCTAssertTrue(try repo.isAncestor(ours1, of: remoteMain))
        XCTAssertFalse(try repo.isAncestor(ours2, of: remoteMain))
        XCTAssertFalse(try repo.isAncestor(remoteMain, of: ours2))
        XCTAssertEqual(try repo.mergeBase(ours2, remoteMain), ours1)
        XCTAssertEqual(try repo.readFile("Policies/default.yaml", at: remoteMain), "kind: Policy\n# theirs\n".bytes)
        // With their commit known locally, libgit2's own ancestry check still refuses.
        XCTAssertThrowsError(try repo.push(refspecs: ["refs/heads/main:refs/heads/main"])) {
            XCTAssertEqual(($0 as? GitError)?.kind, .nonFastForward, "\($0)")
        }
        XCTAssertEqual(try fx.git("rev-parse", "main", in: origin).trimmed, theirCommit)

        // Rebuilding our change on their tip makes it a fast-forward again.
        let rebuilt = try XCTUnwrap(try repo.commitFiles(
            ["Clusters/demo/state.json": "{\"serial\": 3}\n".bytes], message: "state 3",
            author: sandpiperSignature, branch: "sandpiper/retry", expectedParent: .unborn))
        XCTAssertNotNil(rebuilt)
        try repo.createBranch("sandpiper/rebased", at: remoteMain)
        let onTop = try XCTUnwrap(try repo.commitFiles(["Clusters/demo/state.json": "{\"serial\": 3}\n".bytes],
                                                       message: "state 3", author: sandpiperSignature,
                                                       branch: "sandpiper/rebased", expectedParent: .commit(remoteMain)))
        try repo.push(refspecs: ["refs/heads/sandpiper/rebased:refs/heads/main"])
        XCTAssertEqual(try fx.git("rev-parse", "main", in: origin).trimmed, onTop.hex)
    }

    func testRefusalReportedByTheRemoteIsATypedError() throws {
        let fx = try Fixture()
        let (origin, mine, _) = try setUpRemote(fx)
        let repo = try GitRepository.open(at: mine)
        let before = try fx.git("rev-parse", "main", in: origin)
        try repo.commitFiles(["Clusters/demo/state.json": "{\"serial\": 2}\n".bytes], message: "state 2",
                             author: sandpiperSignature)
        // The remote cannot update main (its ref is locked): it reports a per-ref status
        // through push_update_reference although the push itself was a fast-forward.
        try fx.write("", to: origin + "/refs/heads/main.lock")
        XCTAssertThrowsError(try repo.push(refspecs: ["refs/heads/main:refs/heads/main"])) {
            let error = $0 as? GitError
            XCTAssertEqual(error?.kind, .pushRejected, "\($0)")
            XCTAssertTrue(error?.message.contains("refs/heads/main") ?? false, "\($0)")
        }
        XCTAssertEqual(try fx.git("rev-parse", "main", in: origin), before)
        try FileManager.default.removeItem(atPath: origin + "/refs/heads/main.lock")
        try repo.push(refspecs: ["refs/heads/main:refs/heads/main"])
        XCTAssertEqual(try fx.git("rev-parse", "main", in: origin).trimmed, try repo.headCommit()?.hex)
    }

    func testFetchByURLAndLockRefsOnTheRemote() throws {
        let fx = try Fixture()
        let (origin, mine, theirs) = try setUpRemote(fx)
        let repo = try GitRepository.open(at: mine)
        let other = try GitRepository.open(at: theirs)
        let lock = "refs/sandpiper/locks/demo"

        // We take the shared lock by creating the ref on the remote; the holder is a record commit.
        let record = try repo.createRecordCommit(message: "holder: mine\n", author: sandpiperSignature)
        XCTAssertTrue(try repo.createRefIfAbsent(lock, target: record, message: "lock"))
        try repo.push(refspecs: ["\(lock):\(lock)"])
        XCTAssertEqual(try fx.git("log", "-1", "--format=%B", lock, in: origin).trimmed, "holder: mine")

        // The other clone cannot take it: its push of a different value is refused.
        let theirRecord = try other.createRecordCommit(message: "holder: theirs\n", author: sandpiperSignature)
        XCTAssertTrue(try other.createRefIfAbsent(lock, target: theirRecord, message: "lock"))
        XCTAssertThrowsError(try other.push(refspecs: ["\(lock):\(lock)"])) {
            XCTAssertEqual(($0 as? GitError)?.kind, .nonFastForward, "\($0)")
        }
        XCTAssertEqual(try fx.git("rev-parse", lock, in: origin).trimmed, record.hex)

        // It can see who holds it by fetching that ref (by URL here, no configured remote needed).
        try other.fetch(remote: origin, refspecs: ["+\(lock):refs/sandpiper/remote-locks/demo"])
        let holder = try XCTUnwrap(try other.readRef("refs/sandpiper/remote-locks/demo"))
        let info = try other.commitInfo(holder)
        XCTAssertEqual(info.message, "holder: mine\n")
        XCTAssertEqual(info.parents, [])
        XCTAssertEqual(info.author, sandpiperSignature)
        // Even knowing their record, pushing over it is refused (unrelated histories).
        XCTAssertThrowsError(try other.push(refspecs: ["\(lock):\(lock)"])) {
            XCTAssertEqual(($0 as? GitError)?.kind, .nonFastForward, "\($0)")
        }
        XCTAssertEqual(try other.remoteReferences(remote: "origin")[lock], record)

        // Release on the remote only while it is still ours (a lease on the current value).
        XCTAssertThrowsError(try other.push(refspecs: [":\(lock)"], expecting: [lock: theirRecord])) {
            XCTAssertEqual(($0 as? GitError)?.kind, .modified, "\($0)")
        }
        XCTAssertEqual(try fx.git("rev-parse", lock, in: origin).trimmed, record.hex)
        try repo.push(refspecs: [":\(lock)"], expecting: [lock: record])
        XCTAssertNotEqual(try fx.gitStatus("rev-parse", "--verify", "-q", lock, in: origin), 0)
    }
}
