import Foundation
import Logging
import SandpiperEngine
import SandpiperGit
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
    private var holder: String
    /// Git mode: where the lease lives, who signs its records, and the lease while this controller is active.
    private var location: GitClusterLocation?
    private var identity: GitIdentity?
    private var lease: GitRefLock?
    private var lastRenewal = Date.distantPast
    private var _standbyFor: String?
    var nextDue = ContinuousClock.now
    private var ticks = 0
    private var reportedEnd = false
    private let status = NSLock()
    private var _rounds = 0
    private var _lastError: String?
    /// The plan this controller last saved for review (working tree): replaced, not accumulated, by the next one.
    private var lastProposalFile: String?
    /// Webhooks of the policy (`notify:`), rebuilt when the policy's list changes.
    private var notifier: Notifier?
    private var notifyConfig: [Webhook]?
    private var notifications: RoundNotifications
    /// Times the spec was decoded again after start (each logged as `spec read`), and whether the last try failed.
    private(set) var specReads = 0
    private var lastLoadFailed = false

    var name: String { cluster.spec.name }
    var rounds: Int { status.lock(); defer { status.unlock() }; return _rounds }
    var lastError: String? { status.lock(); defer { status.unlock() }; return _lastError }
    /// The lease holder this controller waits for as a standby; nil while active (or without git).
    var standbyFor: String? { status.lock(); defer { status.unlock() }; return _standbyFor }

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

    /// True once the controller is stopping: the round in flight starts no further wave of actions.
    let isStopping: () -> Bool

    init(path: String, options: ControllerOptions, metrics: ControllerMetrics, logger: Logger,
         isStopping: @escaping () -> Bool = { false }) throws {
        self.path = path
        self.isStopping = isStopping
        self.options = options
        self.metrics = metrics
        let cluster = try Engine.load(path)
        self.cluster = cluster
        notifications = RoundNotifications(cluster: cluster.spec.name)
        var logger = logger
        logger[metadataKey: "cluster"] = "\(cluster.spec.name)"
        self.logger = logger
        if !options.reconcile.usesGit {
            do { lock = try ClusterLock.acquire(directory: cluster.directory, operation: "run") } catch {
                throw EngineError.apply("\(error)")
            }
            holder = lock!.info.description
        } else {
            holder = "none"
            location = try GitClusterLocation.locate(path)
            identity = try GitIdentity.resolve(author: options.reconcile.author, committer: options.reconcile.committer,
                                               repository: location!.repository)
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
        if lock != nil { metrics.lock(cluster: cluster.spec.name, holder: holder, held: true) }
        metrics.specValid(cluster: cluster.spec.name, true)
        logger.info("cluster opened", metadata: [
            "source": "\(cluster.spec.telemetry.source.rawValue)", "interval_s": "\(cluster.spec.telemetry.intervalSeconds)",
            "automation": "\(cluster.policy.automation.rawValue)", "lock": "\(holder)"])
        if let from = feed.resumedFrom { logger.info("resumed sample history", metadata: ["from": "\(from)"]) }
        configureNotifier()
    }

    /// (Re)builds the webhooks when the policy's `notify:` list changed (the working tree's, or with `--commit`
    /// the one the last round read from the branch); unreadable URL files are logged.
    private func configureNotifier(_ webhooks: [Webhook]? = nil) {
        let hooks = webhooks ?? cluster.policy.notify
        guard hooks != notifyConfig else { return }
        notifyConfig = hooks
        notifier?.close()
        notifier = nil
        guard !hooks.isEmpty else { return }
        let (targets, problems) = Notifier.targets(hooks, relativeTo: cluster.policyFile.deletingLastPathComponent())
        for p in problems { logger.error("webhook left out", metadata: ["error": "\(p)"]) }
        let metrics = self.metrics, name = self.name
        notifier = Notifier(targets: targets, options: options.notifier, logger: logger) {
            metrics.notification(cluster: name, $0)
        }
        metrics.notification(cluster: name, nil)
        logger.info("webhooks", metadata: ["targets": .array(targets.map { "\($0.redacted) (\($0.format.rawValue))" })])
    }

    private func notify(_ list: [WebhookMessage]) {
        guard let notifier else { return }
        for n in list { notifier.send(n) }
    }

    /// At stop: waits for queued notifications until `deadline`.
    func flushNotifications(until deadline: Date) {
        guard let notifier else { return }
        let left = notifier.flush(timeout: max(0, deadline.timeIntervalSinceNow))
        if left > 0 { logger.warning("notifications not delivered before exit", metadata: ["count": .stringConvertible(left)]) }
    }

    /// Sample windows are telemetry, not decisions: kept out of git (`Clusters/*/.samples/` is ignored).
    static func store(_ cluster: LoadedCluster) -> URL {
        cluster.directory.appendingPathComponent(".samples").appendingPathComponent("windows.json")
    }

    static func hostKeys(_ cluster: LoadedCluster) -> [String] {
        cluster.spec.hosts.map { "\($0.name) \(cluster.connectionURI(for: $0))" }
    }

    func release() {
        if let lease {
            lease.release()
            self.lease = nil
            metrics.lock(cluster: name, holder: holder, held: false)
            logger.info("lease released", metadata: ["ref": "\(lease.ref)"])
        }
        guard let lock else { return }
        lock.release()
        self.lock = nil
        metrics.lock(cluster: name, holder: holder, held: false)
        logger.info("lock released")
    }

    /// A holder's name that stays the same while the lease is renewed (a metric label must not change each round).
    static func stableName(_ info: LockInfo) -> String {
        "\(info.operation) by \(info.owner) (pid \(info.pid)), lock ID \(info.id)"
    }

    /// Git mode: holds the lease (renewed) or takes it (new, or over an expired one); false = standby.
    private func holdLease() -> Bool {
        guard let location, let identity else { return true }
        let leaseSeconds = options.leaseSeconds
        let repo = location.repository
        let clusterName = location.clusterName
        let remote = options.reconcile.remote
        if let lease {
            do {
                try lease.renew(leaseSeconds: leaseSeconds, cluster: clusterName, author: identity.author)
                lastRenewal = Date()
                return true
            } catch {
                logger.error("lease lost: another controller holds the cluster now", metadata: ["error": "\(error)"])
                self.lease = nil
                metrics.lock(cluster: name, holder: holder, held: false)
            }
        }
        do throws(GitWorkflowError) {
            let taken: GitRefLock
            do throws(GitWorkflowError) {
                taken = try GitRefLock.acquire(repo, cluster: clusterName, remote: remote, operation: "run",
                                               author: identity.author, leaseSeconds: leaseSeconds)
            } catch {
                guard case .lockHeld(let info, _, _) = error, let until = info.expiresAt,
                      until < Date().timeIntervalSince1970 else { throw error }
                taken = try GitRefLock.takeOver(repo, cluster: clusterName, remote: remote, operation: "run",
                                                author: identity.author, leaseSeconds: leaseSeconds, expired: info)
                logger.notice("took over an expired lease", metadata: ["previous": "\(Self.stableName(info))"])
            }
            lease = taken
            lastRenewal = Date()
            holder = Self.stableName(taken.info)
            metrics.lock(cluster: name, holder: holder, held: true)
            metrics.standby(cluster: name, false)
            status.lock(); _standbyFor = nil; status.unlock()
            logger.notice("lease taken: this controller is active", metadata: [
                "ref": "\(taken.ref)", "lease_s": .stringConvertible(leaseSeconds), "holder": "\(holder)"])
            return true
        } catch .lockHeld(let info, _, _) {
            let other = info.expiresAt == nil ? "\(info) (not a lease: released by its run or force-unlock)"
                : Self.stableName(info) + ", lease until "
                    + Date(timeIntervalSince1970: info.expiresAt!).formatted(.iso8601)
            // Logged when the holder changes, not each time it renews.
            let changed = standbyFor.map { !$0.hasPrefix(Self.stableName(info)) } ?? true
            status.lock(); _standbyFor = other; status.unlock()
            metrics.standby(cluster: name, true)
            if changed { logger.notice("standby: another controller holds the lease", metadata: ["holder": "\(other)"]) }
            return false
        } catch {
            status.lock(); _standbyFor = "unknown (\(error))"; status.unlock()
            metrics.standby(cluster: name, true)
            logger.error("lease could not be taken", metadata: ["error": "\(error)"])
            return false
        }
    }

    /// Renews the lease during a long round (after actions), well before it could expire.
    private func renewIfDue() {
        guard let lease, let location, let identity,
              Date().timeIntervalSince(lastRenewal) > options.leaseSeconds / 3 else { return }
        do {
            try lease.renew(leaseSeconds: options.leaseSeconds, cluster: location.clusterName, author: identity.author)
            lastRenewal = Date()
        } catch {
            logger.error("lease renewal failed during a round", metadata: ["error": "\(error)"])
        }
    }

    /// Re-reads the spec (and, when asked, the trace); a spec that does not load keeps the last good one.
    /// Unforced, the loaded cluster is reused while none of the files it was read from changed (see
    /// `LoadInputs`); after a failed load every interval reads again, so a fix is picked up and reported.
    func reload(force: Bool = true) {
        if !force, !lastLoadFailed, let inputs = cluster.inputs, inputs.unchanged() { return }
        let fresh: LoadedCluster
        specReads += 1
        logger.info("spec read", metadata: ["reads": .stringConvertible(specReads), "forced": "\(force)"])
        do { fresh = try Engine.load(path); lastLoadFailed = false } catch {
            lastLoadFailed = true
            metrics.specValid(cluster: name, false)
            logger.error("spec invalid, running on the last good spec", metadata: ["error": "\(error)"])
            if let n = notifications.specInvalid("\(error)", at: Date()) { notify([n]) }
            return
        }
        metrics.specValid(cluster: name, true)
        notifications.specValid()
        let hostsChanged = Self.hostKeys(fresh) != connectedHosts
        let telemetryChanged = fresh.spec.telemetry != cluster.spec.telemetry || fresh.policy.window.n != feed.count
        cluster = fresh
        configureNotifier()
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
        if ticks % ticksPerRound == 0, holdLease() { round() }
        do { try feed.persist() } catch {
            logger.warning("sample windows not persisted", metadata: ["file": "\(feed.store.path)", "error": "\(error)"])
        }
    }

    private func round() {
        let clock = ContinuousClock()
        let started = clock.now
        let cpuAtStart = Self.processCPUSeconds()
        var roundLogger = logger
        roundLogger[metadataKey: "round"] = .stringConvertible(rounds + 1)
        var reconcileOptions = options.reconcile
        reconcileOptions.lease = lease
        let reconciler = Reconciler(path: path, options: reconcileOptions)
        let feed = self.feed
        let warningLogger = roundLogger
        reconciler.observe = { cluster, connections, state in
            let snapshot = feed.snapshot(cluster, connections: connections, state: state)
            // What observe/plan print as warnings (telemetry gaps, capacity mismatches), one log line each.
            for w in snapshot.inventory.warnings { warningLogger.warning("\(w)") }
            return snapshot
        }
        let connections = self.connections
        reconciler.connect = { _ in connections }
        reconciler.shouldStop = isStopping
        // The crash-safety hook `apply` has (SANDPIPER_APPLY_PAUSE_MS): tests signal the controller mid-wave.
        if let ms = ProcessInfo.processInfo.environment["SANDPIPER_APPLY_PAUSE_MS"].flatMap(Int.init) {
            reconciler.pauseAfterStart = .milliseconds(ms)
        }
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
            self.renewIfDue()
        }
        let outcome: ReconcileOutcome
        do {
            outcome = options.reconcile.usesGit ? try reconciler.run() : try reconciler.reconcile(cluster, connections: connections)
        } catch {
            let seconds = Double(started.duration(to: clock.now).components.attoseconds) / 1e18
                + Double(started.duration(to: clock.now).components.seconds)
            metrics.roundFinished(cluster: name, succeeded: false, seconds: seconds, at: Date().timeIntervalSince1970)
            status.lock(); _rounds += 1; _lastError = "\(error)"; status.unlock()
            if options.reconcile.usesGit, case .load = error as? EngineError {
                // GitOps pull: an invalid commit on the branch is not acted on; rounds go on, and the next
                // valid commit is picked up.
                metrics.specValid(cluster: name, false)
                roundLogger.error("spec at the branch tip is invalid; nothing applied until it is fixed",
                                  metadata: ["error": "\(error)"])
                if let n = notifications.specInvalid("\(error)", at: Date()) { notify([n]) }
                return
            }
            roundLogger.error("round failed", metadata: ["error": "\(error)"])
            return
        }
        let d = started.duration(to: clock.now).components
        let seconds = Double(d.seconds) + Double(d.attoseconds) / 1e18
        metrics.record(outcome)
        if options.reconcile.usesGit {
            metrics.specValid(cluster: name, true)
            notifications.specValid()
            configureNotifier(outcome.notify)
        }
        notify(notifications.events(outcome, at: Date()))
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
            // CPU of the whole process during the round (all threads): what a round costs on a busy machine.
            "cpu_ms": .stringConvertible(Int((Self.processCPUSeconds() - cpuAtStart) * 1000)),
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

    /// User + system CPU time of this process so far.
    static func processCPUSeconds() -> Double {
        var usage = rusage()
        getrusage(RUSAGE_SELF.rawValue, &usage)
        return Double(usage.ru_utime.tv_sec + usage.ru_stime.tv_sec)
            + Double(usage.ru_utime.tv_usec + usage.ru_stime.tv_usec) / 1e6
    }
}
