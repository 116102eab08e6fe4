import Foundation
import XCTest
import SandpiperTestSupport

/// `reconcile`, `plan --propose`, `apply --from-ref`, `validate --ref`, `force-unlock --git` on the real binary
/// against real repositories. The `git` command builds the operator's fixtures and cross-checks what Sandpiper
/// (libgit2) wrote; Sandpiper itself never runs it.
final class ReconcileCLITests: XCTestCase {
    static let env = ["SANDPIPER_GIT_AUTHOR": "Sandpiper CI <ci@sandpiper.example>"]

    /// `git args` in `dir` as the operator, with an isolated configuration.
    @discardableResult
    func git(_ args: String..., in dir: URL, expect: Int32? = 0) throws -> String {
        let r = try GitCLI.run(args, in: dir, home: dir)
        if let expect { XCTAssertEqual(r.status, expect, "git \(args.joined(separator: " "))") }
        return r.stdout
    }

    /// The bundled clusters committed on `main`, with `automation` in the default policy.
    func makeRepo(automation: String = "manual", liveTelemetry: Bool = false) throws -> URL {
        let root = try CLI.sandbox(self)
        let policy = root.appendingPathComponent("Policies/default.yaml")
        try String(contentsOf: policy, encoding: .utf8)
            .replacingOccurrences(of: "automation: manual", with: "automation: \(automation)")
            .write(to: policy, atomically: true, encoding: .utf8)
        if liveTelemetry {
            let spec = root.appendingPathComponent("Clusters/demo/cluster.yaml")
            let text = try String(contentsOf: spec, encoding: .utf8)
                .replacingOccurrences(of: "  source: trace ", with: "  source: libvirt #")
            try text.write(to: spec, atomically: true, encoding: .utf8)
        }
        try git("init", "-q", "-b", "main", in: root)
        try git("add", "-A", in: root)
        try git("commit", "-q", "-m", "Initial spec", in: root)
        return root
    }

    func makeRemote(_ root: URL) throws -> URL {
        let bare = root.appendingPathComponent("origin.git")
        try git("init", "-q", "--bare", bare.path, in: root)
        try git("remote", "add", "origin", bare.path, in: root)
        try git("push", "-q", "origin", "main", in: root)
        // The bare repository lives inside the sandbox; keep it out of the operator's status.
        try "origin.git/\n".write(to: root.appendingPathComponent(".git/info/exclude"), atomically: true, encoding: .utf8)
        return bare
    }

    func json(_ text: String) throws -> [String: Any] {
        try XCTUnwrap(JSONSerialization.jsonObject(with: Data(text.utf8)) as? [String: Any], text)
    }

    func testReconcileWithoutGitWorksOnTheDirectory() throws {
        let root = try CLI.sandbox(self)  // not a repository
        let run = try CLI.run(["reconcile", "Clusters/demo", "--detailed-exitcode", "--json"], in: root)
        XCTAssertEqual(run.status, 2, "manual: the plan is left for review\n\(run.stderr)")
        let summary = try json(run.stdout)
        let file = try XCTUnwrap((summary["proposal"] as? [String: Any])?["file"] as? String)
        XCTAssertTrue(FileManager.default.fileExists(atPath: root.appendingPathComponent("Clusters/demo/state.json").path))
        // The saved plan is based on the state reconcile wrote: a later apply accepts it.
        let apply = try CLI.run(["apply", file], in: root)
        XCTAssertEqual(apply.status, 0, apply.stderr)
        XCTAssertEqual(try CLI.run(["reconcile", "Clusters/demo", "--commit"], in: root).status, 1,
                       "--commit needs a repository")
    }

    // MARK: Lock

    func testTwoConcurrentReconcilersOneWinsTheLock() throws {
        let root = try makeRepo(liveTelemetry: true)
        let before = try git("rev-parse", "main", in: root)
        // A samples for ~2 s while holding refs/sandpiper/locks/demo; B starts while A holds it.
        let group = DispatchGroup()
        nonisolated(unsafe) var a: Run?
        group.enter()
        DispatchQueue.global().async {
            a = try? CLI.run(["reconcile", "Clusters/demo", "--commit", "--samples", "3", "--interval", "1"],
                             in: root, environment: Self.env)
            group.leave()
        }
        let deadline = Date().addingTimeInterval(20)
        while try git("show-ref", "refs/sandpiper/locks/demo", in: root, expect: nil).isEmpty {
            guard Date() < deadline else { return XCTFail("A never took the lock") }
            usleep(20_000)
        }
        let b = try CLI.run(["reconcile", "Clusters/demo", "--commit"], in: root, environment: Self.env)
        group.wait()
        let winner = try XCTUnwrap(a)
        XCTAssertEqual(winner.status, 0, winner.stderr)
        XCTAssertEqual(b.status, 1, b.stdout)
        XCTAssertTrue(b.stderr.contains("the cluster is locked: reconcile by"), b.stderr)
        XCTAssertTrue(b.stderr.contains("sandpiper force-unlock"), b.stderr)
        // One Sandpiper commit on top of the operator's, and the lock is gone.
        let log = try git("log", "--format=%an|%s", "\(before.trimmingCharacters(in: .newlines))..main", in: root)
        XCTAssertEqual(log.split(separator: "\n").count, 1, log)
        XCTAssertTrue(log.hasPrefix("Sandpiper CI|sandpiper(demo): record observed inventory"), log)
        XCTAssertEqual(try git("show-ref", "refs/sandpiper/locks/demo", in: root, expect: nil), "")
    }

    func testForceUnlockReleasesALockLeftInGit() throws {
        let root = try makeRepo()
        // A runner died holding the lock: a record commit whose message names it.
        let record = try git("commit-tree", "4b825dc642cb6eb9a060e54bf8d69288fbee4904", "-m",
                             #"sandpiper lock: reconcile demo{"createdAt":0,"id":"dead-beef","operation":"reconcile","owner":"ci@runner-7","pid":42}"#,
                             in: root).trimmingCharacters(in: .newlines)
        try git("update-ref", "refs/sandpiper/locks/demo", record, in: root)
        let refused = try CLI.run(["reconcile", "Clusters/demo", "--commit"], in: root, environment: Self.env)
        XCTAssertEqual(refused.status, 1)
        XCTAssertTrue(refused.stderr.contains("reconcile by ci@runner-7 (pid 42)"), refused.stderr)
        XCTAssertTrue(refused.stderr.contains("sandpiper force-unlock dead-beef Clusters/demo --git"), refused.stderr)
        XCTAssertEqual(try CLI.run(["force-unlock", "wrong-id", "Clusters/demo", "--git"], in: root).status, 1)
        let released = try CLI.run(["force-unlock", "dead-beef", "Clusters/demo", "--git"], in: root)
        XCTAssertEqual(released.status, 0, released.stderr)
        XCTAssertEqual(try CLI.run(["reconcile", "Clusters/demo", "--commit"], in: root, environment: Self.env).status, 0)
    }

    // MARK: CI

    func testCIReconcilePushesToTheRemoteWithAJSONSummary() throws {
        let root = try makeRepo(automation: "manual")
        let bare = try makeRemote(root)
        let run = try CLI.run(["reconcile", "Clusters/demo", "--ci", "--json", "--detailed-exitcode"], in: root,
                              environment: Self.env)
        XCTAssertEqual(run.status, 2, "manual automation leaves the plan for review: \(run.stderr)")
        let summary = try json(run.stdout)
        XCTAssertEqual(summary["formatVersion"] as? Int, 1)
        XCTAssertEqual(summary["ok"] as? Bool, true)
        XCTAssertEqual(summary["automation"] as? String, "manual")
        XCTAssertEqual(summary["pushed"] as? Bool, true)
        XCTAssertEqual(summary["branch"] as? String, "main")
        let commit = try XCTUnwrap(summary["commit"] as? String)
        XCTAssertEqual(try git("--git-dir", bare.path, "rev-parse", "main", in: root)
            .trimmingCharacters(in: .newlines), commit)
        XCTAssertEqual(try git("--git-dir", bare.path, "log", "-1", "--format=%an <%ae>", "main", in: root),
                       "Sandpiper CI <ci@sandpiper.example>\n")
        let proposal = try XCTUnwrap(summary["proposal"] as? [String: Any])
        let branch = try XCTUnwrap(proposal["branch"] as? String)
        XCTAssertEqual(summary["pending"] as? Int, proposal["actions"] as? Int)
        // The proposal branch on the remote holds the plan file on top of the decisions commit.
        let planID = try XCTUnwrap(proposal["planID"] as? String)
        let files = try git("--git-dir", bare.path, "show", "--name-only", "--format=%P", branch, in: root)
        XCTAssertEqual(files.split(separator: "\n").map(String.init), [commit, "Clusters/demo/plans/\(planID).json"])
        XCTAssertEqual(try git("--git-dir", bare.path, "for-each-ref", "refs/sandpiper/", in: root), "", "lock released")
        // The operator's checkout was not touched; a second run has nothing new to commit.
        XCTAssertEqual(try git("status", "--porcelain", in: root), "")
        let again = try CLI.run(["reconcile", "Clusters/demo", "--ci", "--json"], in: root, environment: Self.env)
        XCTAssertEqual(again.status, 0, again.stderr)
        XCTAssertNil(try json(again.stdout)["commit"] as? String)
        XCTAssertEqual(try git("--git-dir", bare.path, "rev-parse", "main", in: root)
            .trimmingCharacters(in: .newlines), commit, "no empty commits")
    }

    func testCIReportsAnErrorAsJSONAndExitsOne() throws {
        let root = try makeRepo()
        let run = try CLI.run(["reconcile", "Clusters/demo", "--ci", "--json", "--remote", "nosuchremote"],
                              in: root, environment: Self.env)
        XCTAssertEqual(run.status, 1)
        let summary = try json(run.stdout)
        XCTAssertEqual(summary["ok"] as? Bool, false)
        XCTAssertNotNil(summary["error"] as? String)
    }

    // MARK: Review workflow

    func testProposedPlanIsAppliedFromItsBranchOnlyWhileFresh() throws {
        let root = try makeRepo(automation: "manual")
        let proposed = try CLI.run(["plan", "Clusters/demo", "--propose", "--json"], in: root, environment: Self.env)
        XCTAssertEqual(proposed.status, 0, proposed.stderr)
        let staleID = try XCTUnwrap(try json(proposed.stdout)["id"] as? String)
        XCTAssertEqual(try git("rev-parse", "--verify", "-q", "sandpiper/proposals/\(staleID)", in: root).count, 41)
        // The operator changes the policy on main after the review started: the plan is stale.
        let policy = root.appendingPathComponent("Policies/default.yaml")
        try (try String(contentsOf: policy, encoding: .utf8) + "# tightened\n").write(to: policy, atomically: true,
                                                                                     encoding: .utf8)
        try git("commit", "-q", "-am", "Tighten policy", in: root)
        let tip = try git("rev-parse", "main", in: root)
        let refused = try CLI.run(["apply", "Clusters/demo", "--from-ref", "sandpiper/proposals/\(staleID)"],
                                  in: root, environment: Self.env)
        XCTAssertEqual(refused.status, 1)
        XCTAssertTrue(refused.stderr.contains("Saved plan is stale: policy default changed"), refused.stderr)
        XCTAssertEqual(try git("rev-parse", "main", in: root), tip, "nothing committed")

        // Proposed again from the new tip: applied, and the decisions are committed on main.
        let again = try CLI.run(["plan", "Clusters/demo", "--propose", "--json"], in: root, environment: Self.env)
        let id = try XCTUnwrap(try json(again.stdout)["id"] as? String)
        XCTAssertNotEqual(id, staleID)
        XCTAssertFalse(FileManager.default.fileExists(atPath: root.appendingPathComponent("Clusters/demo/plans/\(id).json").path),
                       "--propose keeps the plan on its branch, not as an untracked file")
        let applied = try CLI.run(["apply", "Clusters/demo", "--from-ref", "sandpiper/proposals/\(id)", "--json"],
                                  in: root, environment: Self.env)
        let report = try json(applied.stdout)
        XCTAssertEqual(report["planID"] as? String, id)
        let commit = try XCTUnwrap(report["commit"] as? String)
        XCTAssertEqual(try git("rev-parse", "main", in: root).trimmingCharacters(in: .newlines), commit)
        let files = try git("show", "--name-only", "--format=", commit, in: root)
        XCTAssertEqual(files.split(separator: "\n").sorted(), ["Clusters/demo/plans/\(id).json", "Clusters/demo/state.json"])
        XCTAssertTrue(try git("log", "-1", "--format=%s", in: root).hasPrefix("sandpiper(demo): "))
        XCTAssertEqual(try git("status", "--porcelain", in: root), "", "working tree follows the commit")
    }

    func testApplyCommitCommitsOnlyStateAndThePlan() throws {
        let root = try makeRepo()
        try "draft\n".write(to: root.appendingPathComponent("Clusters/demo/NOTES.md"), atomically: true, encoding: .utf8)
        let plan = try CLI.run(["plan", "Clusters/demo", "--out", "saved-plan.json", "--json"], in: root)
        let id = try XCTUnwrap(try json(plan.stdout)["id"] as? String)
        let apply = try CLI.run(["apply", "saved-plan.json", "--cluster", "Clusters/demo", "--commit"], in: root,
                                environment: Self.env)
        XCTAssertEqual(apply.status, 0, apply.stderr)
        let files = try git("show", "--name-only", "--format=%an|%s", "HEAD", in: root).split(separator: "\n")
        XCTAssertTrue(files.first?.hasPrefix("Sandpiper CI|sandpiper(demo): ") == true, "\(files)")
        XCTAssertEqual(files.dropFirst().filter { !$0.isEmpty }.sorted(),
                       ["Clusters/demo/plans/\(id).json", "Clusters/demo/state.json"])
        let status = try git("status", "--porcelain", in: root)
        XCTAssertEqual(status.split(separator: "\n").sorted(), ["?? Clusters/demo/NOTES.md", "?? saved-plan.json"], status)
    }

    func testValidateAndPlanAtARef() throws {
        let root = try makeRepo()
        try git("checkout", "-q", "-b", "broken", in: root)
        let spec = root.appendingPathComponent("Clusters/demo/cluster.yaml")
        try (try String(contentsOf: spec, encoding: .utf8).replacingOccurrences(of: "vcpus: 6", with: "vcpus: six"))
            .write(to: spec, atomically: true, encoding: .utf8)
        try git("commit", "-q", "-am", "Break it", in: root)
        try git("checkout", "-q", "main", in: root)

        let broken = try CLI.run(["validate", "Clusters/demo", "--ref", "broken"], in: root)
        XCTAssertEqual(broken.status, 1)
        XCTAssertTrue(broken.stderr.contains("broken:Clusters/demo/cluster.yaml:"), broken.stderr)
        XCTAssertEqual(try CLI.run(["validate", "Clusters/demo"], in: root).status, 0)

        let main = try git("rev-parse", "main", in: root).trimmingCharacters(in: .newlines)
        let plan = try CLI.run(["plan", "Clusters/demo", "--ref", "main", "--json"], in: root)
        XCTAssertEqual(plan.status, 0, plan.stderr)
        let basedOn = try XCTUnwrap(try json(plan.stdout)["basedOn"] as? [String: Any])
        XCTAssertEqual(basedOn["specCommit"] as? String, main, "the plan records the commit it was computed from")
    }
}
