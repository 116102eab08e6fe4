import ArgumentParser
import Foundation
import Logging
import SandpiperController
import SandpiperEngine
import SandpiperGitOps

struct Run: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Run the controller: sample, plan and apply every interval until stopped (systemd-friendly).",
        discussion: """
        For each cluster (default: every Clusters/* of the current directory) the controller takes one sample \
        per telemetry interval (libvirt), or replays the trace one interval per tick (`source: trace`, --speed \
        intervals per interval), keeps the last n samples per VM in memory and in Clusters/<name>/.samples/ \
        (git-ignored; read back at start, so a restart keeps its history), and every interval (or --every) runs \
        a reconcile round: observe, plan, apply per the policy's automation level with the journal and stale \
        checks of `apply`. The working-tree spec is re-read each round; an invalid edit is logged and the \
        controller keeps running on the last good spec. Without --commit the cluster's lock file is held for the \
        controller's life; with --commit each round reads the branch, locks the git ref, commits (and with \
        --remote pushes) like `reconcile --ci`.

        SIGTERM/SIGINT stop between rounds (never between an action's journalled start and its outcome), \
        release the lock and exit 0; if the round in flight is not done within --drain-timeout the process \
        exits 1 leaving the journal and lock as a crash would. SIGHUP re-reads specs, policies and traces.

        --listen serves /metrics (Prometheus text, sandpiper_* series), /healthz and /readyz. Logs: one line \
        per event on stderr (--log-format json for one JSON object per line). Webhooks named by the policy's \
        `notify:` hear of hotspots detected, resolved and unresolved, plans pending review, failed actions and \
        invalid specs; they are delivered off the loop, retried with backoff, and given at most 5 s at exit.
        """)

    @Argument(help: "Cluster directories (default: every Clusters/* with a cluster.yaml).")
    var clusters: [String] = []

    @Option(help: "Serve /metrics, /healthz and /readyz on HOST:PORT (e.g. 127.0.0.1:9464; port 0 picks one).")
    var listen: String?

    @Flag(help: "Commit state.json and the applied plans to git each round (like reconcile --commit).")
    var commit = false

    @Option(help: "Also lock on, plan from and push to this remote each round (like reconcile --ci; implies --commit).")
    var remote: String?

    @Option(help: "Branch to read from and commit to (default: the checked-out branch).")
    var branch: String?

    @Flag(help: "Commit actions the automation level does not apply to sandpiper/proposals/<plan-id> (with --commit).")
    var propose = false

    @OptionGroup var identity: GitIdentityFlags

    @Option(help: "With --commit: seconds the git lease lasts; renewed each round, a standby takes over once it expires.")
    var lease: Double = 300

    @Option(help: "Trace replay speed: recorded intervals per interval of wall time (default 1).")
    var speed: Double = 1

    @Option(help: "Seconds of observation time between plans (default: every telemetry interval).")
    var every: Double?

    @Option(help: "Stop after this many rounds of every cluster (exit 0).")
    var maxRounds: Int?

    @Option(help: "Seconds the round in flight has to finish after SIGTERM/SIGINT.")
    var drainTimeout: Double = 60

    @Option(help: "Log format: text or json.")
    var logFormat: String = "text"

    @Option(help: "Also write the metrics to this node_exporter textfile (*.prom) after each round.")
    var metricsFile: String?

    func validate() throws {
        guard speed > 0, speed.isFinite else { throw ValidationError("--speed must be positive") }
        if let e = every, !(e > 0) { throw ValidationError("--every must be positive") }
        if let m = maxRounds, m < 1 { throw ValidationError("--max-rounds must be at least 1") }
        guard lease > 0 else { throw ValidationError("--lease must be positive") }
        guard drainTimeout > 0 else { throw ValidationError("--drain-timeout must be positive") }
        guard LineLogHandler.Format(rawValue: logFormat) != nil else {
            throw ValidationError("--log-format must be text or json")
        }
        if propose && !(commit || remote != nil) { throw ValidationError("--propose needs --commit") }
        if let listen {
            do { _ = try HTTPEndpoint.address(listen) } catch { throw ValidationError("\(error)") }
        }
    }

    func run() throws {
        let format = LineLogHandler.Format(rawValue: logFormat)!
        LoggingSystem.bootstrap { LineLogHandler(label: $0, format: format) }
        let logger = Logger(label: "sandpiper.run")

        var options = ControllerOptions()
        options.clusters = clusters.isEmpty ? try Self.repositoryClusters() : clusters
        options.reconcile.commit = commit || remote != nil
        options.reconcile.remote = remote
        options.reconcile.branch = branch
        options.reconcile.propose = propose
        options.reconcile.author = identity.author
        options.reconcile.committer = identity.committer
        options.speed = speed
        options.everySeconds = every
        options.maxRounds = maxRounds
        options.drainTimeoutSeconds = drainTimeout
        options.leaseSeconds = lease
        options.metricsFile = metricsFile.map { URL(fileURLWithPath: $0) }

        let controller = Controller(options: options, logger: logger)
        controller.trapSignals()
        if let listen {
            let endpoint: HTTPEndpoint
            do { endpoint = try HTTPEndpoint(listen: listen) { controller.respond(path: $0) } } catch {
                Output.error("error: \(error)")
                throw ExitCode.invalid
            }
            endpoint.start()
            logger.notice("listening", metadata: ["address": "\(endpoint.host):\(endpoint.port)",
                                                   "endpoints": "/metrics /healthz /readyz"])
        }
        do { try controller.run() } catch {
            logger.error("cannot start", metadata: ["error": "\(error)"])
            throw ExitCode.invalid
        }
    }

    /// Every Clusters/* directory with a cluster.yaml, sorted.
    static func repositoryClusters() throws -> [String] {
        let fm = FileManager.default
        let names = (try? fm.contentsOfDirectory(atPath: "Clusters")) ?? []
        let found = names.sorted().filter { fm.fileExists(atPath: "Clusters/\($0)/cluster.yaml") }.map { "Clusters/\($0)" }
        guard !found.isEmpty else {
            throw ValidationError("no cluster given and no Clusters/*/cluster.yaml in the current directory")
        }
        return found
    }
}
