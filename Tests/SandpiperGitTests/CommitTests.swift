import Foundation
import XCTest
@testable import SandpiperGit

final class CommitTests: XCTestCase {
    func testCommitsNestedNewFilesOntoExistingHistory() throws {
        let fx = try Fixture()
        let dir = try fx.operatorRepo()
        let repo = try GitRepository.open(at: dir)
        let parent = try XCTUnwrap(try repo.headCommit())

        let id = try XCTUnwrap(try repo.commitFiles(
            ["Clusters/demo/plans/abc.json": "{\"plan\": \"abc\"}\n".bytes,
             "Clusters/demo/state.json": "{\"serial\": 2}\n".bytes],
            message: "sandpiper: apply plan abc\n\nMoved web1 to pm2.\n",
            author: sandpiperSignature, expectedParent: .commit(parent)))

        XCTAssertEqual(try fx.git("rev-parse", "HEAD", in: dir).trimmed, id.hex)
        XCTAssertEqual(try fx.git("rev-parse", "HEAD~1", in: dir).trimmed, parent.hex)
        XCTAssertEqual(try fx.git("show", "HEAD:Clusters/demo/plans/abc.json", in: dir), "{\"plan\": \"abc\"}\n")
        XCTAssertEqual(try fx.git("show", "HEAD:Clusters/demo/state.json", in: dir), "{\"serial\": 2}\n")
        XCTAssertEqual(try fx.git("log", "-1", "--format=%an <%ae>|%cn|%ad|%s|%b", "--date=raw", in: dir).trimmed,
                       "Sandpiper Bot <bot@sandpiper.example>|Sandpiper Bot|1700000000 +0100|sandpiper: apply plan abc|Moved web1 to pm2.")
        XCTAssertEqual(try fx.git("diff-tree", "--no-commit-id", "--name-only", "-r", "HEAD", in: dir).lines,
                       ["Clusters/demo/plans/abc.json", "Clusters/demo/state.json"])
        // Untouched entries keep their blobs.
        XCTAssertEqual(try fx.git("rev-parse", "HEAD:Policies", in: dir), try fx.git("rev-parse", "HEAD~1:Policies", in: dir))
        XCTAssertEqual(try fx.git("fsck", "--no-progress", in: dir).trimmed, "")
        // Checked-out branch: working tree and index follow, so git status is clean.
        XCTAssertEqual(try fx.git("status", "--porcelain", in: dir), "")
        XCTAssertEqual(fx.read(dir + "/Clusters/demo/plans/abc.json"), "{\"plan\": \"abc\"}\n")
        XCTAssertFalse(try repo.isDirty("Clusters/demo/state.json"))
        XCTAssertEqual(try repo.headCommit(), id)
    }

    func testOperatorsUncommittedEditsSurviveUntouched() throws {
        let fx = try Fixture()
        let dir = try fx.operatorRepo()
        // Unstaged edit of a tracked file, a staged edit of another, an untracked file.
        let editedSpec = "apiVersion: sandpiper/v1\nkind: Cluster\nname: demo  # operator edit\n"
        try fx.write(editedSpec, to: dir + "/Clusters/demo/cluster.yaml")
        try fx.write("kind: Policy\n# staged edit\n", to: dir + "/Policies/default.yaml")
        try fx.git("add", "Policies/default.yaml", in: dir)
        try fx.write("scratch\n", to: dir + "/notes.txt")
        let statusBefore = try fx.git("status", "--porcelain", in: dir)

        let repo = try GitRepository.discover(from: dir + "/Clusters/demo")
        try repo.commitFiles(["Clusters/demo/state.json": "{\"serial\": 2}\n".bytes],
                             message: "state", author: sandpiperSignature)

        XCTAssertEqual(try fx.git("diff-tree", "--no-commit-id", "--name-only", "-r", "HEAD", in: dir).lines,
                       ["Clusters/demo/state.json"])
        XCTAssertEqual(fx.read(dir + "/Clusters/demo/cluster.yaml"), editedSpec)
        XCTAssertEqual(try fx.git("show", "HEAD:Clusters/demo/cluster.yaml", in: dir),
                       "apiVersion: sandpiper/v1\nkind: Cluster\nname: demo\n")
        XCTAssertEqual(try fx.git("status", "--porcelain", in: dir), statusBefore)
        XCTAssertEqual(statusBefore.lines.sorted(), [" M Clusters/demo/cluster.yaml", "?? notes.txt", "M  Policies/default.yaml"])
        XCTAssertEqual(try fx.git("diff", "--cached", "Policies/default.yaml", in: dir).contains("+# staged edit"), true)
        XCTAssertEqual(try repo.status(of: "Clusters/demo/cluster.yaml"), .workTreeModified)
        XCTAssertEqual(try repo.status(of: "Policies/default.yaml"), .indexModified)
        XCTAssertTrue(try repo.isDirty("notes.txt"))
        XCTAssertEqual(try repo.status(of: "Clusters/demo/state.json"), .current)
    }

    func testContentAlreadyInWorkingTreeIsCommittedAndStaysClean() throws {
        let fx = try Fixture()
        let dir = try fx.operatorRepo()
        // The engine writes state.json atomically first, then commits the same bytes.
        try fx.write("{\"serial\": 3}\n", to: dir + "/Clusters/demo/state.json")
        let repo = try GitRepository.open(at: dir)
        XCTAssertTrue(try repo.isDirty("Clusters/demo/state.json"))
        try repo.commitFiles(["Clusters/demo/state.json": "{\"serial\": 3}\n".bytes], message: "state 3",
                             author: sandpiperSignature)
        XCTAssertEqual(try fx.git("status", "--porcelain", in: dir), "")
        XCTAssertFalse(try repo.isDirty("Clusters/demo/state.json"))
    }

    func testRefusesToOverwriteAnOperatorEditOfACommittedPath() throws {
        let fx = try Fixture()
        let dir = try fx.operatorRepo()
        try fx.write("{\"serial\": 1, \"hand\": true}\n", to: dir + "/Clusters/demo/state.json")
        let repo = try GitRepository.open(at: dir)
        let head = try repo.headCommit()
        XCTAssertThrowsError(try repo.commitFiles(["Clusters/demo/state.json": "{\"serial\": 2}\n".bytes],
                                                  message: "state", author: sandpiperSignature)) {
            XCTAssertEqual(($0 as? GitError)?.kind, .uncommittedChanges)
        }
        XCTAssertEqual(try repo.headCommit(), head)
        XCTAssertEqual(fx.read(dir + "/Clusters/demo/state.json"), "{\"serial\": 1, \"hand\": true}\n")
    }

    func testNoCommitWhenNothingChanged() throws {
        let fx = try Fixture()
        let dir = try fx.operatorRepo()
        let repo = try GitRepository.open(at: dir)
        let head = try repo.headCommit()
        XCTAssertNil(try repo.commitFiles(["Clusters/demo/state.json": "{\"serial\": 1}\n".bytes],
                                          message: "same", author: sandpiperSignature))
        XCTAssertEqual(try repo.headCommit(), head)
    }

    func testFirstCommitOnUnbornBranch() throws {
        let fx = try Fixture()
        let repo = try GitRepository.create(at: fx.root + "/fresh")
        XCTAssertNil(try repo.headCommit())
        XCTAssertEqual(try repo.currentBranch(), "main")
        XCTAssertFalse(try repo.branchExists("main"))

        let first = try XCTUnwrap(try repo.commitFiles(["Clusters/demo/cluster.yaml": "name: demo\n".bytes],
                                                       message: "init", author: sandpiperSignature,
                                                       expectedParent: .unborn))
        XCTAssertEqual(try repo.headCommit(), first)
        XCTAssertEqual(try fx.git("rev-list", "--count", "HEAD", in: fx.root + "/fresh").trimmed, "1")
        XCTAssertEqual(try fx.git("status", "--porcelain", in: fx.root + "/fresh"), "")
        XCTAssertEqual(try fx.git("ls-files", in: fx.root + "/fresh").lines, ["Clusters/demo/cluster.yaml"])

        // A second "first commit" loses the race: typed error, history intact.
        XCTAssertThrowsError(try repo.commitFiles(["x": [1]], message: "again", author: sandpiperSignature,
                                                  expectedParent: .unborn)) {
            XCTAssertEqual(($0 as? GitError)?.kind, .modified)
        }
        XCTAssertEqual(try repo.headCommit(), first)
    }

    func testCompareAndSwapFailsWhenTheBranchMoved() throws {
        let fx = try Fixture()
        let dir = try fx.operatorRepo()
        let repo = try GitRepository.open(at: dir)
        let seen = try XCTUnwrap(try repo.headCommit())

        // Meanwhile an operator commits.
        try fx.write("kind: Policy\nthresholds: {cpu: 0.8}\n", to: dir + "/Policies/default.yaml")
        try fx.git("commit", "-q", "-am", "Operator tunes policy", in: dir)
        let theirs = try fx.git("rev-parse", "HEAD", in: dir).trimmed

        XCTAssertThrowsError(try repo.commitFiles(["Clusters/demo/state.json": "{\"serial\": 2}\n".bytes],
                                                  message: "state", author: sandpiperSignature,
                                                  expectedParent: .commit(seen))) {
            XCTAssertEqual(($0 as? GitError)?.kind, .modified, "\($0)")
        }
        XCTAssertEqual(try repo.headCommit()?.hex, theirs)
        XCTAssertEqual(try fx.git("log", "-1", "--format=%s", in: dir).trimmed, "Operator tunes policy")
        XCTAssertEqual(try fx.git("status", "--porcelain", in: dir), "")

        // Two writers that both saw the same tip: the second one fails, the first one's commit stays.
        let other = try GitRepository.open(at: dir)
        let tip = try XCTUnwrap(try repo.headCommit())
        let a = try repo.commitFiles(["Clusters/demo/plans/a.json": "a".bytes], message: "a",
                                     author: sandpiperSignature, expectedParent: .commit(tip))
        XCTAssertThrowsError(try other.commitFiles(["Clusters/demo/plans/b.json": "b".bytes], message: "b",
                                                   author: sandpiperSignature, expectedParent: .commit(tip))) {
            XCTAssertEqual(($0 as? GitError)?.kind, .modified)
        }
        XCTAssertEqual(try repo.headCommit(), a)
        XCTAssertNil(try repo.readFile("Clusters/demo/plans/b.json", at: a!))
    }

    func testCommitToAnotherBranchLeavesWorktreeAndIndexAlone() throws {
        let fx = try Fixture()
        let dir = try fx.operatorRepo()
        let repo = try GitRepository.open(at: dir)
        let head = try XCTUnwrap(try repo.headCommit())
        try repo.createBranch("sandpiper/proposals/p1", at: head)
        XCTAssertThrowsError(try repo.createBranch("sandpiper/proposals/p1", at: head)) {
            XCTAssertEqual(($0 as? GitError)?.kind, .exists)
        }
        try repo.createBranch("sandpiper/proposals/p2", at: head)
        try repo.createBranch("feature", at: head)
        XCTAssertEqual(try repo.branches(withPrefix: "sandpiper/proposals/"),
                       ["sandpiper/proposals/p1", "sandpiper/proposals/p2"])
        XCTAssertTrue(try repo.branchExists("feature"))
        XCTAssertFalse(try repo.branchExists("nope"))

        let proposal = try XCTUnwrap(try repo.commitFiles(
            ["Clusters/demo/plans/p1.json": "{}".bytes], message: "propose p1", author: sandpiperSignature,
            branch: "sandpiper/proposals/p1", expectedParent: .commit(head)))
        XCTAssertEqual(try repo.headCommit(), head)
        XCTAssertFalse(FileManager.default.fileExists(atPath: dir + "/Clusters/demo/plans/p1.json"))
        XCTAssertEqual(try fx.git("status", "--porcelain", in: dir), "")
        XCTAssertEqual(try fx.git("show", "sandpiper/proposals/p1:Clusters/demo/plans/p1.json", in: dir), "{}")
        XCTAssertEqual(try repo.resolve("sandpiper/proposals/p1"), proposal)
        XCTAssertTrue(try repo.isAncestor(head, of: proposal))
        XCTAssertFalse(try repo.isAncestor(proposal, of: head))
        XCTAssertEqual(try repo.mergeBase(head, proposal), head)
        XCTAssertTrue(try repo.deleteBranch("sandpiper/proposals/p2", expected: head))
        XCTAssertEqual(try repo.branches(withPrefix: "sandpiper/"), ["sandpiper/proposals/p1"])
    }
}

extension String {
    var trimmed: String { trimmingCharacters(in: .whitespacesAndNewlines) }
    var lines: [String] { split(separator: "\n").map(String.init) }
}
