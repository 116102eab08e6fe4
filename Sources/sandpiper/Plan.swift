import ArgumentParser
import Foundation
import SandpiperEngine
import SandpiperGitOps
import SandpiperModel

struct Plan: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Compute the plan that converges the fleet to the spec, print and save it.",
        discussion: """
        Observes the fleet (libvirt inventory; samples from the cluster's telemetry source), detects hotspots \
        and computes allocations, migrations and swaps. The plan is printed and, when it has changes, saved to \
        Clusters/<name>/plans/<id>.json (or --out) for review and `sandpiper apply`. Never modifies state.json.

        Exit codes: 0 success; with --detailed-exitcode 0 = no changes, 2 = changes present; 1 = error.
        """)

    @Argument(help: "Cluster directory (Clusters/<name>) or its cluster.yaml.")
    var cluster: String

    @Option(help: "Save the plan to this file (default: Clusters/<name>/plans/<id>.json when there are changes).")
    var out: String?

    @Flag(help: "Print the plan as one JSON object (formatVersion 1).")
    var json = false

    @Flag(help: "Exit 2 when the plan has changes, 0 when it has none.")
    var detailedExitcode = false

    @Flag(help: "Also stop and undefine running VMs the spec does not declare.")
    var prune = false

    @OptionGroup var telemetry: TelemetryFlags

    @OptionGroup var deadline: HostDeadlineFlags

    @Option(help: "Plan from the spec, policy and state committed at this revision (libgit2, no checkout); the plan records the commit.")
    var ref: String?

    @Flag(help: "Commit the plan to the branch sandpiper/proposals/<plan-id> (from --ref, default HEAD) for review.")
    var propose = false

    @Option(help: "With --propose: push the proposal branch to this remote.")
    var remote: String?

    @Option(help: "With --propose: commit author \"Name <email>\" (default: $SANDPIPER_GIT_AUTHOR, then git config).")
    var author: String?

    func validate() throws {
        if remote != nil && !propose { throw ValidationError("--remote is used with --propose") }
    }

    func run() throws {
        let document: PlanDocument
        do {
            // --ref / --propose: read the committed cluster (the snapshot lives until the end of the run).
            let gitBase = try gitSnapshot()
            let loaded = try gitBase?.cluster ?? Engine.load(cluster)
            let state = try gitBase?.readState() ?? Engine.readState(loaded)
            Output.warnInterrupted(state, directory: loaded.directory)
            let connections = FleetConnections(cluster: loaded, readOnly: true, timeout: deadline.timeout, previous: state?.inventory)
            defer { connections.closeAll() }
            let snapshot = try Engine.observe(loaded, connections: connections, state: state,
                                              telemetry: telemetry.options(quiet: json))
            for w in snapshot.inventory.warnings { Output.error("warning: \(w)") }
            document = Engine.plan(loaded, snapshot: snapshot, state: state, specCommit: gitBase?.commit.hex,
                                   prune: prune)
            let hasChanges = !document.actions.isEmpty
            var savedTo: String?
            if let out {
                try PlanStore.save(document, to: URL(fileURLWithPath: out))
                savedTo = out
            } else if hasChanges, !propose, let id = document.id, let url = defaultPlanURL(loaded, id: id, git: gitBase) {
                // With --propose the plan lives on its proposal branch; an untracked copy in the working tree
                // would only collide with the decisions commit that adds the same file later.
                try PlanStore.save(document, to: url)
                savedTo = Output.relative(url.path)
            }
            var proposed: String?
            if propose, hasChanges, let gitBase {
                let identity = try GitIdentity.resolve(author: author, committer: nil,
                                                       repository: gitBase.location.repository)
                try GitProposals.propose(document, location: gitBase.location, base: gitBase.commit, identity: identity)
                proposed = GitProposals.branch(document.id ?? "")
                if let remote, let proposed { try GitProposals.push(proposed, location: gitBase.location, remote: remote) }
            }
            if json {
                print(String(decoding: try document.encoded(), as: UTF8.self))
            } else {
                print(PlanRenderer(color: Output.isTerminal).render(document))
                if let savedTo { print("\nSaved plan to \(savedTo). Apply it with: sandpiper apply \(savedTo)") }
                if let proposed {
                    print("Proposed on branch \(proposed)\(remote.map { " (pushed to \($0))" } ?? ""). After review: "
                        + "sandpiper apply \(cluster) --from-ref \(proposed) --commit")
                }
            }
        } catch {
            throw Output.failure(error, json: json)
        }
        if detailedExitcode && !document.actions.isEmpty { throw ExitCode.changesPresent }
    }

    /// With --ref or --propose: the cluster as committed at --ref (default HEAD).
    private func gitSnapshot() throws -> GitSnapshot? {
        guard ref != nil || propose else { return nil }
        return try GitSnapshot(try GitClusterLocation.locate(cluster), revision: ref ?? "HEAD")
    }

    /// Where a plan with changes is saved by default: plans/ of the cluster directory in the working tree
    /// (also when it was read at a ref), nil when that directory does not exist.
    private func defaultPlanURL(_ loaded: LoadedCluster, id: String, git: GitSnapshot?) -> URL? {
        guard let git else { return PlanStore.defaultURL(loaded, id: id) }
        guard let dir = git.location.worktreeDirectory,
              FileManager.default.fileExists(atPath: dir.appendingPathComponent("cluster.yaml").path) else { return nil }
        return dir.appendingPathComponent("plans/\(id).json")
    }
}

struct Show: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Render a saved plan.",
        discussion: "Prints a plan saved by `sandpiper plan` exactly as `plan` printed it, or its JSON with --json.")

    @Argument(help: "A saved plan file (Clusters/<name>/plans/<id>.json).")
    var planFile: String

    @Flag(help: "Print the plan's JSON (formatVersion 1).")
    var json = false

    func run() throws {
        do {
            let document = try PlanStore.load(planFile)
            if json { print(String(decoding: try document.encoded(), as: UTF8.self)) }
            else { print(PlanRenderer(color: Output.isTerminal).render(document)) }
        } catch {
            throw Output.failure(error, json: json)
        }
    }
}

enum Progress {
    /// Sampling progress on stderr: a rewritten line on a terminal, plain lines in CI, nothing with --json.
    static func sampling(quiet: Bool) -> (@Sendable (Int, Int) -> Void)? {
        guard !quiet else { return nil }
        let tty = Output.isTerminal
        return { done, total in
            if tty { Output.errorInline("\rsampling \(done)/\(total)" + (done == total ? "\n" : "")) }
            else { Output.error("sampling \(done)/\(total)") }
        }
    }
}
