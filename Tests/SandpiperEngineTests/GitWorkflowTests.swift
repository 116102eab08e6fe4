import Foundation
import SandpiperEngine
import SandpiperGitOps
import SandpiperGit
import SandpiperModel
import SandpiperTestSupport
import XCTest

/// Real repositories in temp dirs, written through libgit2; the `git` command only cross-checks what libgit2 wrote.
final class GitWorkflowTests: XCTestCase {
    // MARK: Fixtures

    struct Repo {
        var root: URL
        var repository: GitRepository
        var cluster: URL { root.appendingPathComponent("Clusters/demo") }
        var policy: URL { root.appendingPathComponent("Policies/default.yaml") }
    }

    static let bot = "Sandpiper Bot <bot@sandpiper.example>"
    static let operatorSignature = Signature(name: "Operator", email: "op@example.org")

    /// A working repository on `main` whose first commit holds the bundled demo cluster and policies.
    func makeRepo(automation: String = "full", name: String = "ops") throws -> Repo {
        let root = try temporaryDirectory(self).appendingPathComponent(name)
        _ = try copyBundledCluster("demo", into: root)
        let policy = root.appendingPathComponent("Policies/default.yaml")
        let text = try String(contentsOf: policy, encoding: .utf8)
        try write(text.replacingOccurrences(of: "automation: manual", with: "automation: \(automation)"), to: policy)
        let repository = try GitRepository.create(at: root.path)
        try repository.commitFiles(try filesUnder(root), message: "Initial spec\n", author: Self.operatorSignature,
                                   expectedParent: .unborn)
        return Repo(root: root, repository: repository)
    }

    /// A bare repository holding `repo`'s main: the "origin" of CI tests.
    func makeRemote(for repo: Repo) throws -> String {
        let path = repo.root.deletingLastPathComponent().appendingPathComponent("origin.git").path
        _ = try GitRepository.create(at: path, bare: true)
        try repo.repository.push(remote: path, refspecs: ["refs/heads/main:refs/heads/main"])
        return path
    }

    func filesUnder(_ root: URL) throws -> [String: [UInt8]] {
        var files: [String: [UInt8]] = [:]
        let e = FileManager.default.enumerator(at: root, includingPropertiesForKeys: [.isRegularFileKey])!
        for case let url as URL in e {
            let relative = String(url.path.dropFirst(root.path.count + 1))
            guard !relative.hasPrefix(".git"), (try url.resourceValues(forKeys: [.isRegularFileKey])).isRegularFile == true
            else { continue }
            files[relative] = [UInt8](try Data(contentsOf: url))
        }
        return files
    }

    /// `git args` in `dir` with an isolated configuration; returns stdout.
    @discardableResult
    func git(_ args: String..., in dir: URL) throws -> String {
        let r = try GitCLI.run(args, in: dir, home: dir)
        XCTAssertEqual(r.status, 0, "git \(args.joined(separator: " "))")
        return r.stdout
    }

    func options(commit: Bool = true, remote: String? = nil) -> ReconcileOptions {
        var o = ReconcileOptions()
        o.commit = commit
        o.remote = remote
        o.author = Self.bot
        return o
    }

    /// One test-driver fleet shared by every step of a test (it lives as long as its connections).
    final class SharedFleet: @unchecked Sendable {
        var connections: FleetConnections?
        func connect(_ cluster: LoadedCluster) -> FleetConnections {
            if let c = connections { return c }
            let c = FleetConnections(cluster: cluster)
            connections = c
            return c
        }
    }

    func reconciler(_ repo: Repo, _ options: ReconcileOptions, fleet: SharedFleet = SharedFleet()) -> Reconciler {
        let r = Reconciler(path: repo.cluster.path, options: options)
        r.connect = { fleet.connect($0) }
        return r
    }

    // MARK: Reading at a ref

    func testLoadAtRefReadsTheCommittedTreeNotTheWorkingTree() throws {
        let repo = try makeRepo()
        let committed = try ClusterLoader.load(repo.cluster.path)
        // The operator breaks cluster.yaml in the working tree without committing.
        let spec = repo.cluster.appendingPathComponent("cluster.yaml")
        try write("apiVersion: sandpiper/v1\nkind: Cluster\nname: [broken\n", to: spec)
        XCTAssertThrowsError(try ClusterLoader.load(repo.cluster.path))

        let location = try GitClusterLocation.locate(repo.cluster.path)
        XCTAssertEqual(location.clusterDirectory, "Clusters/demo")
        let snapshot = try GitSnapshot(location, revision: "main")
        XCTAssertEqual(snapshot.cluster.spec, committed.spec)
        XCTAssertEqual(snapshot.cluster.specDigest, committed.specDigest, "same bytes, same digest")
        XCTAssertEqual(snapshot.cluster.policyDigest, committed.policyDigest)
        XCTAssertEqual(snapshot.commit, try repo.repository.resolve("main"))
        // Files the spec names (trace, node XML) are there too: the plan works from the commit alone.
        let fleet = FleetConnections(cluster: snapshot.cluster)
        defer { fleet.closeAll() }
        let observed = try Engine.observe(snapshot.cluster, connections: fleet, state: nil)
        let plan = Engine.plan(snapshot.cluster, snapshot: observed, state: nil, specCommit: snapshot.commit.hex)
        XCTAssertEqual(plan.basedOn?.specCommit, snapshot.commit.hex)
        XCTAssertTrue(plan.actions.contains { $0.kind == .migrate && $0.vm == "batch1" })
    }

    func testDiagnosticsAtRefNameTheRevisionAndPath() throws {
        let repo = try makeRepo()
        let spec = repo.cluster.appendingPathComponent("cluster.yaml")
        let text = try String(contentsOf: spec, encoding: .utf8)
        try repo.repository.commitFiles(["Clusters/demo/cluster.yaml": Array(text.replacingOccurrences(
            of: "policy: default", with: "policy: nosuch").utf8)], message: "Typo\n", author: Self.operatorSignature)
        let location = try GitClusterLocation.locate(repo.cluster.path)
        XCTAssertThrowsError(try GitSnapshot(location, revision: "main")) { error in
            let message = "\(error)"
            XCTAssertTrue(message.contains("main:Clusters/demo/cluster.yaml:"), message)
            XCTAssertTrue(message.contains("main:Policies/nosuch.yaml"), message)
        }
        // The previous commit is still valid.
        XCTAssertNoThrow(try GitSnapshot(location, revision: "main~1"))
    }

    func testLoadFilesKeepsTheLimitsOfLoadFromDisk() throws {
        let files = ClusterFiles(clusterDirectory: "Clusters/x", directory: URL(fileURLWithPath: "/nonexistent"),
                                 read: { path in path.hasSuffix("cluster.yaml")
                                     ? Array(repeating: UInt8(ascii: "#"), count: ClusterLoader.maxFileBytes + 1) : nil },
                                 shown: { "r:\($0)" })
        XCTAssertThrowsError(try ClusterLoader.load(files: files)) { error in
            XCTAssertTrue("\(error)".hasPrefix("r:Clusters/x/cluster.yaml: file is"), "\(error)")
        }
    }

    // MARK: Committing decisions

    func testReconcileCommitsStateAndAppliedPlanOnly() throws {
        let repo = try makeRepo(automation: "full")
        let before = try repo.repository.resolve("main")
        let outcome = try reconciler(repo, options()).run()

        let commit = try XCTUnwrap(outcome.commit.flatMap { ObjectID(hex: $0) })
        let info = try repo.repository.commitInfo(commit)
        XCTAssertEqual(info.parents, [before])
        XCTAssertEqual(info.author.name, "Sandpiper Bot")
        XCTAssertEqual(info.author.email, "bot@sandpiper.example")
        let applied = try XCTUnwrap(outcome.applied.first)
        XCTAssertTrue(applied.actions.contains { $0.kind == .migrate && $0.vm == "batch1" })
        let subject = String(info.message.split(separator: "\n").first ?? "")
        XCTAssertEqual(subject, GitCommitMessage.subject(cluster: "demo", applied: outcome.applied,
                                                         reports: outcome.reports, recordedInventory: true))
        XCTAssertTrue(subject.hasPrefix("sandpiper(demo): 1 migration"), subject)
        XCTAssertTrue(info.message.contains("Plan \(applied.id!) (computed from \(before.abbreviated))"), info.message)
        XCTAssertTrue(info.message.contains("migrate batch1"), info.message)

        // git itself sees exactly two files changed, and a clean working tree.
        let changed = try git("show", "--name-only", "--format=", commit.hex, in: repo.root)
        XCTAssertEqual(changed.split(separator: "\n").sorted(),
                       ["Clusters/demo/plans/\(applied.id!).json", "Clusters/demo/state.json"])
        XCTAssertEqual(try git("status", "--porcelain", in: repo.root), "")
        XCTAssertEqual(try git("log", "-1", "--format=%s", in: repo.root).trimmingCharacters(in: .newlines), subject)
        // The committed state is what apply wrote: batch1 now runs on pm3.
        let state = try JSONDecoder().decode(StateDocument.self,
                                             from: Data(try XCTUnwrap(repo.repository.readFile("Clusters/demo/state.json", at: commit))))
        XCTAssertEqual(state.inventory?.vms.first { $0.name == "batch1" }?.host, "pm3")
        XCTAssertEqual(state.lastPlan?.id, applied.id)
        // The lock ref is gone again.
        XCTAssertNil(try repo.repository.readRef(GitRefLock.refName(cluster: "demo")))
    }

    func testOperatorUncommittedEditsAreNeitherCommittedNorLost() throws {
        let repo = try makeRepo(automation: "full")
        let spec = repo.cluster.appendingPathComponent("cluster.yaml")
        let edited = try String(contentsOf: spec, encoding: .utf8) + "# operator's draft, not committed\n"
        try write(edited, to: spec)
        try write("notes\n", to: repo.root.appendingPathComponent("NOTES.md"))  // untracked
        try write("staged\n", to: repo.root.appendingPathComponent("Policies/staged.yaml"))
        try git("add", "Policies/staged.yaml", in: repo.root)

        let outcome = try reconciler(repo, options()).run()
        let commit = try XCTUnwrap(outcome.commit)
        let changed = try git("show", "--name-only", "--format=", commit, in: repo.root)
        XCTAssertFalse(changed.contains("cluster.yaml") || changed.contains("NOTES") || changed.contains("staged"), changed)
        // The plan came from the committed spec, not the draft.
        XCTAssertEqual(outcome.plan?.basedOn?.specDigest, SHA256.hex(Array(try String(
            decoding: XCTUnwrap(repo.repository.readFile("Clusters/demo/cluster.yaml", at: ObjectID(hex: commit)!)),
            as: UTF8.self).utf8)))
        XCTAssertEqual(try String(contentsOf: spec, encoding: .utf8), edited)
        let status = try git("status", "--porcelain", in: repo.root)
        XCTAssertEqual(status.split(separator: "\n").sorted(),
                       ["?? NOTES.md", "A  Policies/staged.yaml", " M Clusters/demo/cluster.yaml"].sorted(), status)
    }

    func testOperatorEditToStateIsRefusedBeforeTheFleetIsTouched() throws {
        let repo = try makeRepo(automation: "manual")
        let fleet = SharedFleet()
        _ = try reconciler(repo, options(), fleet: fleet).run()  // commits state.json (the inventory)
        try write("{\"hand\": \"edited\"}\n", to: repo.cluster.appendingPathComponent("state.json"))
        var o = options()
        o.maxAttempts = 1
        XCTAssertThrowsError(try reconciler(repo, o, fleet: fleet).run()) { error in
            XCTAssertTrue("\(error)".contains("Clusters/demo/state.json has uncommitted changes"), "\(error)")
        }
        XCTAssertEqual(try String(contentsOf: repo.cluster.appendingPathComponent("state.json"), encoding: .utf8),
                       "{\"hand\": \"edited\"}\n")
    }

    func testNoCommitWhenNothingChanged() throws {
        let repo = try makeRepo(automation: "manual")
        let fleet = SharedFleet()
        let first = try reconciler(repo, options(), fleet: fleet).run()
        XCTAssertNotNil(first.commit, "the first run records the observed inventory")
        XCTAssertTrue(first.recordedInventory)
        XCTAssertTrue(first.applied.isEmpty, "manual applies nothing")
        XCTAssertEqual(first.pending, first.plan?.actions.count)
        let tip = try repo.repository.resolve("main")
        let second = try reconciler(repo, options(), fleet: fleet).run()
        XCTAssertNil(second.commit)
        XCTAssertEqual(try repo.repository.resolve("main"), tip, "no empty commits")
    }

    func testPartialAutomationAppliesAllocationsAndProposesMoves() throws {
        let repo = try makeRepo(automation: "partial")
        let fleet = SharedFleet()
        var o = options()
        o.propose = true
        let outcome = try reconciler(repo, o, fleet: fleet).run()
        XCTAssertTrue(outcome.applied.flatMap(\.actions).allSatisfy { [ActionKind.tune, .resize, .define, .start].contains($0.kind) },
                      "\(outcome.applied.flatMap(\.actions).map(\.kind))")
        XCTAssertNotNil(try fleet.connections!.connection("pm2")!.domainIfExists(named: "batch1"), "batch1 not moved")
        let proposal = try XCTUnwrap(outcome.proposal)
        XCTAssertTrue(proposal.actions.contains { $0.kind == .migrate && $0.vm == "batch1" })
        let branch = try XCTUnwrap(outcome.proposalBranch)
        XCTAssertEqual(branch, GitProposals.branch(proposal.id!))
        // The proposal sits on top of the decisions commit, whose state it is based on.
        let proposalTip = try repo.repository.resolve(branch)
        let base = try XCTUnwrap(outcome.commit.flatMap { ObjectID(hex: $0) } ?? ObjectID(hex: outcome.baseCommit!))
        XCTAssertEqual(try repo.repository.commitInfo(proposalTip).parents, [base])
        let state = try JSONDecoder().decode(StateDocument.self, from: Data(
            try XCTUnwrap(repo.repository.readFile("Clusters/demo/state.json", at: base))))
        XCTAssertEqual(proposal.basedOn?.stateSerial, state.serial)
        XCTAssertEqual(proposal.basedOn?.stateLineage, state.lineage)
        // ... so it can be applied after review, from its branch.
        var apply = options()
        apply.maxAttempts = 1
        let applied = try GitPlanApply.run(path: repo.cluster.path, fromRef: branch, planID: nil, options: apply,
                                           connect: { fleet.connect($0) })
        XCTAssertNotNil(applied.commit)
        XCTAssertNotNil(try fleet.connections!.connection("pm3")!.domainIfExists(named: "batch1"), "batch1 moved")
    }

    func testCommitMessageSummarisesMovesSwapsAndHotspots() {
        func action(_ id: String, _ kind: String, swap: String? = nil) -> PlanDocument.Action {
            let json = """
                {"id": "\(id)", "kind": "\(kind)", "vm": "vm\(id)", "from": "pm2", "to": "pm1", "dependsOn": [],
                 \(swap.map { "\"swapGroup\": \"\($0)\"," } ?? "") "parameters": {}, "reason": ""}
                """
            return try! JSONDecoder().decode(PlanDocument.Action.self, from: Data(json.utf8))
        }
        func hotspot(_ host: String) -> PlanDocument.HotspotEntry {
            let json = #"{"host": "\#(host)", "resource": "cpu", "over": "5 of 5", "samples": [], "threshold": 0.75}"#
            return try! JSONDecoder().decode(PlanDocument.HotspotEntry.self, from: Data(json.utf8))
        }
        let document = PlanDocument(
            summary: .init(add: 0, change: 0, move: 4, remove: 0, hotspots: 2, unresolved: 0),
            actions: [action("1", "migrate"), action("2", "migrate"), action("3", "migrate", swap: "s1"),
                      action("4", "migrate", swap: "s1")],
            hostsBefore: [], hostsAfter: [], hotspots: [hotspot("pm2"), hotspot("pm3")], unresolved: [], drift: [],
            decisions: [], entitlements: [])
        XCTAssertEqual(GitCommitMessage.subject(cluster: "demo", applied: [document], reports: [],
                                                recordedInventory: false),
                       "sandpiper(demo): 2 migrations, 1 swap — resolved hotspots on pm2, pm3")
        XCTAssertEqual(GitCommitMessage.subject(cluster: "demo", applied: [], reports: [], recordedInventory: true),
                       "sandpiper(demo): record observed inventory")
    }

    func testCredentialsInHostURIsNeverReachACommit() throws {
        let repo = try makeRepo(automation: "manual")
        // A fourth host behind a password-bearing URI that cannot be reached.
        let spec = repo.cluster.appendingPathComponent("cluster.yaml")
        let text = try String(contentsOf: spec, encoding: .utf8).replacingOccurrences(of: "vms:\n", with: """
              - name: pm4
                uri: qemu+tcp://admin:s3cret@127.0.0.1:1/system
                capacity: {cpus: 8, memory: 16GiB, network: 1Gbit}
            vms:

            """)
        try write(text, to: spec)
        try repo.repository.commitFiles(["Clusters/demo/cluster.yaml": Array(text.utf8)], message: "pm4\n",
                                        author: Self.operatorSignature)
        let outcome = try reconciler(repo, options()).run()
        let commit = try XCTUnwrap(outcome.commit)
        let everything = try git("show", commit, in: repo.root)
        XCTAssertFalse(everything.contains("s3cret"), "secret leaked into the commit")
        XCTAssertTrue(everything.contains("pm4"))
    }

    // MARK: Lock in git

    func testRefLockHasOneHolderAndNamesIt() throws {
        let repo = try makeRepo()
        let first = try GitRefLock.acquire(repo.repository, cluster: "demo", remote: nil, operation: "reconcile",
                                           author: Self.operatorSignature)
        XCTAssertThrowsError(try GitRefLock.acquire(repo.repository, cluster: "demo", remote: nil,
                                                    operation: "reconcile", author: Self.operatorSignature)) { error in
            XCTAssertTrue("\(error)".contains("lock ID \(first.info.id)"), "\(error)")
            XCTAssertTrue("\(error)".contains("sandpiper force-unlock \(first.info.id) Clusters/demo --git"), "\(error)")
        }
        // A reconcile in the meantime is refused, names the holder, and commits nothing.
        let tip = try repo.repository.resolve("main")
        XCTAssertThrowsError(try reconciler(repo, options()).run()) { error in
            XCTAssertTrue("\(error)".contains("the cluster is locked"), "\(error)")
        }
        XCTAssertEqual(try repo.repository.resolve("main"), tip)
        XCTAssertEqual(try GitRefLock.current(repo.repository, cluster: "demo", remote: nil)?.id, first.info.id)
        first.release()
        XCTAssertNil(try GitRefLock.current(repo.repository, cluster: "demo", remote: nil))
        let again = try GitRefLock.acquire(repo.repository, cluster: "demo", remote: nil, operation: "x",
                                           author: Self.operatorSignature)
        XCTAssertThrowsError(try GitRefLock.forceUnlock(repo.repository, cluster: "demo", id: "wrong", remote: nil))
        try GitRefLock.forceUnlock(repo.repository, cluster: "demo", id: again.info.id, remote: nil)
        XCTAssertNil(try repo.repository.readRef(GitRefLock.refName(cluster: "demo")))
    }

    func testRemoteLockExcludesARunnerOnAnotherClone() throws {
        let a = try makeRepo(name: "runner-a")
        let origin = try makeRemote(for: a)
        let b = try makeRepo(name: "runner-b")
        let held = try GitRefLock.acquire(a.repository, cluster: "demo", remote: origin, operation: "reconcile",
                                          author: Self.operatorSignature)
        let remoteRef = try a.repository.remoteReferences(remote: origin)[GitRefLock.refName(cluster: "demo")]
        XCTAssertEqual(remoteRef, held.record)
        XCTAssertThrowsError(try GitRefLock.acquire(b.repository, cluster: "demo", remote: origin,
                                                    operation: "reconcile", author: Self.operatorSignature)) { error in
            guard case GitWorkflowError.lockHeld(let info, _, let remote) = error else {
                return XCTFail("expected lockHeld, got \(error)")
            }
            XCTAssertEqual(info.id, held.info.id)
            XCTAssertEqual(remote, origin)
        }
        // B's failed attempt left no local lock behind, and the holder's lock is intact on the remote.
        XCTAssertNil(try b.repository.readRef(GitRefLock.refName(cluster: "demo")))
        XCTAssertEqual(try b.repository.remoteReferences(remote: origin)[GitRefLock.refName(cluster: "demo")], held.record)
        held.release()
        XCTAssertNil(try a.repository.remoteReferences(remote: origin)[GitRefLock.refName(cluster: "demo")])
        let next = try GitRefLock.acquire(b.repository, cluster: "demo", remote: origin, operation: "reconcile",
                                          author: Self.operatorSignature)
        next.release()
    }

    // MARK: CI: push, remote moved

    func testCIReconcilePushesAndRetriesWhenTheRemoteMoved() throws {
        let repo = try makeRepo(automation: "full")
        let origin = try makeRemote(for: repo)
        let bare = try GitRepository.open(at: origin)
        let r = reconciler(repo, options(remote: origin))
        var operatorCommit: ObjectID?
        r.beforePush = { attempt in
            guard attempt == 1 else { return }
            // Someone pushes a README to main while the run is between commit and push.
            operatorCommit = try bare.commitFiles(["README.md": Array("hello\n".utf8)], message: "Operator docs\n",
                                                  author: Self.operatorSignature, branch: "main")
        }
        let outcome = try r.run()
        XCTAssertEqual(outcome.attempts, 2)
        XCTAssertTrue(outcome.pushed)
        XCTAssertTrue(outcome.notes.contains { $0.contains("moved") }, "\(outcome.notes)")
        let pushed = try XCTUnwrap(outcome.commit.flatMap { ObjectID(hex: $0) })
        XCTAssertEqual(try bare.resolve("main"), pushed)
        let info = try bare.commitInfo(pushed)
        XCTAssertEqual(info.parents, [try XCTUnwrap(operatorCommit)], "built on the operator's commit, not over it")
        XCTAssertEqual(try bare.readFile("README.md", at: pushed), Array("hello\n".utf8))
        XCTAssertNotNil(try bare.readFile("Clusters/demo/state.json", at: pushed))
        XCTAssertEqual(try git("--git-dir", origin, "log", "--format=%s", "-3", in: repo.root).split(separator: "\n").count, 3)
        XCTAssertNil(try bare.readRef(GitRefLock.refName(cluster: "demo")), "lock released on the remote")
    }

    func testCIGivesUpWithoutForcePushWhenSomeoneElseChangedTheState() throws {
        let repo = try makeRepo(automation: "manual")
        let origin = try makeRemote(for: repo)
        let bare = try GitRepository.open(at: origin)
        var o = options(remote: origin)
        o.maxAttempts = 3
        let fleet = SharedFleet()
        _ = try reconciler(repo, o, fleet: fleet).run()  // state.json exists on the remote now
        // New observation: an operator moved db1's state by hand? Make the run record something new.
        let r = reconciler(repo, o, fleet: fleet)
        try fleet.connections!.connection("pm2")!.destroy("web2")
        var theirs: ObjectID?
        r.beforePush = { attempt in
            guard attempt == 1 else { return }
            theirs = try bare.commitFiles(["Clusters/demo/state.json": Array("{\"formatVersion\": 1}\n".utf8)],
                                          message: "Hand-edited state\n", author: Self.operatorSignature, branch: "main")
        }
        XCTAssertThrowsError(try r.run()) { error in
            XCTAssertTrue("\(error)".contains("Clusters/demo/state.json was changed on main by someone else"), "\(error)")
            XCTAssertTrue("\(error)".contains("refs/sandpiper/unpushed/demo/"), "\(error)")
        }
        XCTAssertEqual(try bare.resolve("main"), theirs, "the operator's commit is still the tip: nothing forced")
        XCTAssertEqual(try bare.references(withPrefix: "refs/sandpiper/unpushed/demo/").count, 1,
                       "this run's decisions are kept on the remote")
        XCTAssertNil(try bare.readRef(GitRefLock.refName(cluster: "demo")))
    }

    // MARK: Review workflow

    func testReviewedPlanAppliesWhileFreshAndIsRefusedWhenStale() throws {
        let repo = try makeRepo(automation: "manual")
        let location = try GitClusterLocation.locate(repo.cluster.path)
        let identity = GitIdentity(author: Self.operatorSignature)
        let fleet = SharedFleet()

        func propose() throws -> PlanDocument {
            let snapshot = try GitSnapshot(location, revision: "main")
            let connections = fleet.connect(snapshot.cluster)
            let observed = try Engine.observe(snapshot.cluster, connections: connections, state: snapshot.readState())
            let document = Engine.plan(snapshot.cluster, snapshot: observed, state: try snapshot.readState(),
                                       specCommit: snapshot.commit.hex)
            try GitProposals.propose(document, location: location, base: snapshot.commit, identity: identity)
            return document
        }
        var o = options()
        o.maxAttempts = 1

        // 1. Stale: the spec changed on main after the proposal.
        let stale = try propose()
        let proposalTip = try repo.repository.resolve(GitProposals.branch(stale.id!))
        XCTAssertEqual(try repo.repository.readFile(location.planPath(stale.id!), at: proposalTip),
                       Array(try stale.encoded()) + Array("\n".utf8))
        let spec = repo.cluster.appendingPathComponent("cluster.yaml")
        let text = try String(contentsOf: spec, encoding: .utf8) + "# reviewed elsewhere\n"
        try repo.repository.commitFiles(["Clusters/demo/cluster.yaml": Array(text.utf8)], message: "Edit\n",
                                        author: Self.operatorSignature)
        let tip = try repo.repository.resolve("main")
        XCTAssertThrowsError(try GitPlanApply.run(path: repo.cluster.path, fromRef: GitProposals.branch(stale.id!),
                                                  planID: nil, options: o, connect: { fleet.connect($0) })) { error in
            XCTAssertTrue("\(error)".contains("Saved plan is stale: cluster.yaml changed"), "\(error)")
        }
        XCTAssertEqual(try repo.repository.resolve("main"), tip, "nothing committed")
        XCTAssertNotNil(try fleet.connections!.connection("pm2")!.domainIfExists(named: "batch1"), "fleet untouched")

        // 2. Fresh: proposed from the new tip, applied and committed.
        let fresh = try propose()
        let outcome = try GitPlanApply.run(path: repo.cluster.path, fromRef: GitProposals.branch(fresh.id!),
                                           planID: nil, options: o, connect: { fleet.connect($0) })
        XCTAssertEqual(outcome.document, fresh)
        let commit = try XCTUnwrap(outcome.commit.flatMap { ObjectID(hex: $0) })
        XCTAssertEqual(try repo.repository.commitInfo(commit).parents, [tip])
        XCTAssertNotNil(try repo.repository.readFile(location.planPath(fresh.id!), at: commit))
        XCTAssertNotNil(try fleet.connections!.connection("pm3")!.domainIfExists(named: "batch1"), "batch1 moved")
        XCTAssertEqual(try git("status", "--porcelain", in: repo.root), "")
    }
}
