import Foundation
import Logging
import SandpiperEngine
import SandpiperGitOps
import SandpiperModel

/// One cluster under `sandpiper run`: its last good spec, open connections, sample windows, lock and schedule.
final class ClusterRunner: @unchecked Sendable {
    let path: String
    let options: ControllerOptions
    let metrics: ControllerMetrics
    var logger: Logger
    /// The last spec that loaded and validated; a broken edit keeps the controller on this one.
    private(set) var cluster: LoadedCluster
    private var connections: FleetConnections
    private var connectedHosts: [String]
    private var feed: WindowFeed
    /// Working-tree mode: the cluster's file lock, held for the controller's life.
    private var lock: ClusterLock?
    private let holder: String
    var nextDue = ContinuousClock.now
    private var ticks = 0
    private var reportedEnd = false
    private let status = NSLock()
    private var _rounds = 0
    private var _lastError: String?
    /// The plan this controller last saved for review (working tree): replaced, not accumulated, by the next one.
    private var lastProposalFile: String?

    var name: String { cluster.spec.name }
    var rounds: Int { status.lock(); defer { status.unlock() }; return _rounds }
    var lastError: String? { status.lock(); defer { status.unlock() }; return _lastError }

    /// Wall time between ticks: the telemetry interval, divided by `--speed` when a trace is replayed.
    var tickDuration: Duration {
        let interval = cluster.spec.telemetry.intervalSeconds
        let seconds = cluster.spec.telemetry.source == .trace ? interval / options.speed : interval
        return .milliseconds(Int((seconds * 1000).rounded()))
    }

    /// Ticks between plans (`--every`, in seconds of observation time, rounded to whole intervals).
    private var ticksPerRound: Int {
        guard let every = options.everySeconds else { return 1 }
        return max(1, Int((every / cluster.spec.telemetry.intervalSeconds).rounded()))
    }

    init(path: String, options: ControllerOptions, metrics: ControllerMetrics, logger: Logger) throws {
        self.path = path
        self.options = options
        self.metrics = metrics
        let cluster = try Engine.load(path)
        self.cluster = cluster
        var logger = logger
        logger[metadataKey: "cluster"] = "\(cluster.spec.name)"
        self.logger = logger
        if !options.reconcile.usesGit {
            do { lock = try ClusterLock.acquire(directory: cluster.directory, operation: "run") } catch {
                throw EngineError.apply("\(error)")
            }
            holder = lock!.info.description
        } else {
            holder = "git ref lock refs/sandpiper/locks/\(cluster.spec.name), taken each round"
        }
        do {
            feed = try WindowFeed(cluster: cluster, store: Self.store(cluster))
        } catch {
            lock?.release()
            throw error
        }
        let state = try? Engine.readState(cluster)
        connections = FleetConnections(cluster: cluster, previous: state?.inventory)
        connectedHosts = Self.hostKeys(cluster)
        metrics.lock(cluster: cluster.spec.name, holder: holder, held: true)
        metrics.specValid(cluster: cluster.spec.name, true)
        logger.info("cluster opened", metadata: [
            "source": "\(cluster.spec.telemetry.source.rawValue)", "interval_s": "\(cluster.spec.telemetry.intervalSeconds)",
            "automation": "\(cluster.policy.automation.rawValue)", "lock": "\(holder)"])
        if let from = feed.resumedFrom { logger.info("resumed sample history", metadata: ["from": "\(from)"]) }
    }

    /// Sample windows are telemetry, not decisions: kept out of git (`Clusters/*/.samples/` is ignored).
    static func store(_ cluster: LoadedCluster) -> URL {
        cluster.directory.appendingPathComponent(".samples").appendingPathComponent("windows.json")
    }

    static func hostKeys(_ cluster: LoadedCluster) -> [String] {
        cluster.spec.hosts.map { "\($0.name) \(cluster.connectionURI(for: $0))" }
    }

    func release() {
        guard let lock else { return }
        lock.release()
        self.lock = nil
        metrics.lock(cluster: name, holder: holder, held: false)
        logger.info("lock released")
    }

    /// Re-reads the spec (and, when asked, the trace); a spec that does not load keeps the last good one.
    func reload(force: Bool = true) {
        let fresh: LoadedCluster
        do { fresh = try Engine.load(path) } catch {
            metrics.specValid(cluster: name, false)
            logger.error("spec invalid, running on the last good spec", metadata: ["error": "\(error)"])
            return
        }
        metrics.specValid(cluster: name, true)
        let hostsChanged = Self.hostKeys(fresh) != connectedHosts
        let telemetryChanged = fresh.spec.telemetry != cluster.spec.telemetry || fresh.policy.window.n != feed.count
        cluster = fresh
        if hostsChanged {
            connections = FleetConnections(cluster: fresh, previous: (try? Engine.readState(fresh))?.inventory)
            connectedHosts = Self.hostKeys(fresh)
            logger.info("hosts changed: connections reopened")
        }
        if force || telemetryChanged {
            do {
                try? feed.persist()
                feed = try WindowFeed(cluster: fresh, store: Self.store(fresh))
            } catch {
                logger.error("telemetry could not be reloaded, keeping the previous windows", metadata: ["error": "\(error)"])
            }
        }
    }

    /// One interval: a sample (or trace step) every tick, a round every `ticksPerRound` ticks.
    func tick() {
        // The working tree is re-read each round, so an edit takes effect without a restart (SIGHUP forces
        // it, and re-reads the trace too).
        if !options.reconcile.usesGit { reload(force: false) }
        feed.tick(connections: connections)
        ticks += 1
        if feed.atEnd && !reportedEnd {
            reportedEnd = true
            logger.notice("trace replay reached its end; later rounds plan on its last window",
                          metadata: ["trace_time_s": "\(feed.now)"])
        }
        if ticks % ticksPerRound == 0 { round() }
        do { try feed.persist() } catch {
            logger.warning("sample windows not persisted", metadata: ["file": "\(feed.store.path)", "error": "\(error)"])
        }
    }

    private func round() {
        let clock = ContinuousClock()
        let started = clock.now
        var roundLogger = logger
        roundLogger[metadataKey: "round"] = .stringConvertible(rounds + 1)
        let reconciler = Reconciler(path: path, options: options.reconcile)
        let feed = self.feed
        reconciler.observe = { cluster, connections, state in
            feed.snapshot(cluster, connections: connections, state: state)
        }
        let connections = self.connections
        reconciler.connect = { _ in connections }
        reconciler.log = { roundLogger.info("\($0)") }
        final class Current { var plan = "" }
        let current = Current()
        reconciler.onApply = { current.plan = $0.id ?? "" }
        reconciler.onStart = { _, _, summary in roundLogger.info("action started", metadata: ["plan": "\(current.plan)", "action": "\(summary)"]) }
        reconciler.onFinish = { o in
            let meta: Logger.Metadata = ["plan": "\(current.plan)", "action": "\(o.actionID)", "kind": "\(o.kind.rawValue)",
                                         "outcome": "\(o.status.rawValue)", "summary": "\(o.summary)"]
                .merging(o.detail.map { ["detail": "\($0)"] } ?? [:]) { $1 }
            if o.status == .failed { roundLogger.error("action failed", metadata: meta) }
            else { roundLogger.info("action finished", metadata: meta) }
        }
        let outcome: ReconcileOutcome
        do {
            outcome = options.reconcile.usesGit ? try reconciler.run() : try reconciler.reconcile(cluster, connections: connections)
        } catch {
            let seconds = Double(started.duration(to: clock.now).components.attoseconds) / 1e18
                + Double(started.duration(to: clock.now).components.seconds)
            metrics.roundFinished(cluster: name, succeeded: false, seconds: seconds, at: Date().timeIntervalSince1970)
            status.lock(); _rounds += 1; _lastError = "\(error)"; status.unlock()
            roundLogger.error("round failed", metadata: ["error": "\(error)"])
            return
        }
        let d = started.duration(to: clock.now).components
        let seconds = Double(d.seconds) + Double(d.attoseconds) / 1e18
        metrics.record(outcome)
        metrics.observed(cluster: name, at: feed.now)
        metrics.roundFinished(cluster: name, succeeded: outcome.succeeded, seconds: seconds,
                              at: Date().timeIntervalSince1970)
        status.lock()
        _rounds += 1
        _lastError = outcome.succeeded ? nil : "an action failed (see the journal in state.json)"
        status.unlock()
        // Numbers stay numbers in JSON logs.
        var meta: Logger.Metadata = [
            "observed_at": .stringConvertible(feed.now), "duration_ms": .stringConvertible(Int(seconds * 1000)),
            "applied": .stringConvertible(outcome.reports.map(\.done).reduce(0, +)),
            "pending": .stringConvertible(outcome.pending)]
        if let plan = outcome.plan {
            meta["plan"] = "\(plan.id ?? "")"
            meta["actions"] = .stringConvertible(plan.actions.count)
            meta["hotspots"] = .stringConvertible(plan.summary.hotspots)
            meta["unresolved"] = .stringConvertible(plan.summary.unresolved)
        }
        if let file = outcome.proposalFile {
            meta["proposal"] = "\(file)"
            // A long-running controller on `manual` would otherwise leave one plan file per round. Only a file
            // this process wrote, and only when the new proposal replaces it, goes.
            if let old = lastProposalFile, old != file {
                try? FileManager.default.removeItem(atPath: old)
            }
            lastProposalFile = file
        } else if let old = lastProposalFile, outcome.plan?.actions.isEmpty == true {
            try? FileManager.default.removeItem(atPath: old)
            lastProposalFile = nil
        }
        if let c = outcome.commit { meta["commit"] = "\(c.prefix(12))" }
        if outcome.pushed { meta["pushed"] = "true" }
        if outcome.succeeded { roundLogger.info("round done", metadata: meta) }
        else { roundLogger.error("round done with failed actions", metadata: meta) }
        for note in outcome.notes { roundLogger.info("\(note)") }
    }
}
