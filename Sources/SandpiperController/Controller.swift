import Dispatch
import Foundation
import Logging
import SandpiperEngine
import SandpiperGitOps
import SandpiperModel

/// How `sandpiper run` runs.
public struct ControllerOptions: Sendable {
    /// Cluster directories (Clusters/<name>).
    public var clusters: [String] = []
    /// Git and reconcile options used for every round (commit, remote, branch, identity, propose).
    public var reconcile = ReconcileOptions()
    /// Trace replay: intervals per interval of wall time (10 = ten times faster than recorded).
    public var speed: Double = 1
    /// Seconds of observation time between plans; nil = every telemetry interval.
    public var everySeconds: Double?
    /// Stop (exit 0) after this many rounds of every cluster; nil = until a signal.
    public var maxRounds: Int?
    /// After SIGTERM/SIGINT: seconds the round in flight has to reach a safe point.
    public var drainTimeoutSeconds: Double = 60
    /// Also write the metrics to this node_exporter textfile after each round.
    public var metricsFile: URL?
    /// With git (`reconcile.commit`): the ref lock is a lease of this many seconds, renewed each round and
    /// after each action; a second controller waits as a standby and takes over once it has expired.
    public var leaseSeconds: Double = 300
    /// At stop: seconds queued notifications get to be delivered before the process exits anyway.
    public var notifyFlushSeconds: Double = 5
    /// Retries, backoff, queue size and timeout of webhook deliveries.
    public var notifier = Notifier.Options()

    public init() {}
}

/// The long-running controller: each telemetry interval it takes one more sample (or replays one more trace
/// interval), and every `--every` it runs a reconcile round (observe with the kept windows, plan, apply per the
/// policy's automation level, commit) per cluster. Signals stop it between rounds, never inside one: a round's
/// apply journals `started` and its outcome before the controller looks at the stop flag again.
public final class Controller: @unchecked Sendable {
    public let metrics: ControllerMetrics
    let options: ControllerOptions
    let logger: Logger
    private var runners: [ClusterRunner] = []
    private let wake = DispatchSemaphore(value: 0)
    private let mutex = NSLock()
    private var stopRequested = false
    private var reloadRequested = false
    private var finished = false
    private var signalSources: [DispatchSourceSignal] = []

    public init(options: ControllerOptions, metrics: ControllerMetrics = ControllerMetrics(),
                logger: Logger = Logger(label: "sandpiper.run")) {
        self.options = options; self.metrics = metrics; self.logger = logger
    }

    // MARK: Signals

    /// SIGTERM/SIGINT stop at the next safe point; SIGHUP re-reads specs, policies and traces now.
    public func trapSignals() {
        for (sig, action) in [(SIGTERM, "stop"), (SIGINT, "stop"), (SIGHUP, "reload")] {
            signal(sig, SIG_IGN)
            let source = DispatchSource.makeSignalSource(signal: sig, queue: .global())
            source.setEventHandler { [self] in
                if action == "stop" { requestStop(signal: sig) } else { requestReload() }
            }
            source.resume()
            signalSources.append(source)
        }
    }

    public func requestStop(signal: Int32 = SIGTERM) {
        mutex.lock()
        let first = !stopRequested
        stopRequested = true
        mutex.unlock()
        guard first else { return }
        logger.notice("stopping at the next safe point", metadata: [
            "signal": "\(signal == SIGINT ? "SIGINT" : "SIGTERM")", "drain_timeout_s": "\(options.drainTimeoutSeconds)"])
        wake.signal()
        let timeout = options.drainTimeoutSeconds
        DispatchQueue.global().asyncAfter(deadline: .now() + timeout) { [self] in
            mutex.lock(); let done = finished; mutex.unlock()
            guard !done else { return }
            // The round in flight is still applying. Leaving now is what a crash would leave: the journal shows
            // the action as started and the lock names this process, for the next run or force-unlock.
            logger.critical("drain timeout: a round is still applying after \(Int(timeout))s; exiting with its lock held")
            exit(1)
        }
    }

    public func requestReload() {
        mutex.lock(); reloadRequested = true; mutex.unlock()
        logger.notice("SIGHUP: reloading specs, policies and traces")
        wake.signal()
    }

    private var stopping: Bool { mutex.lock(); defer { mutex.unlock() }; return stopRequested }

    // MARK: Health

    /// `/healthz`: the loop is running (not stopping, not finished).
    public var health: HTTPEndpoint.Response {
        mutex.lock(); defer { mutex.unlock() }
        if finished { return .init(status: 503, body: "stopped\n") }
        if stopRequested { return .init(status: 503, body: "stopping\n") }
        return .init(status: 200, body: "ok\n")
    }

    /// `/readyz`: every cluster has completed a round and its last round succeeded.
    public var readiness: HTTPEndpoint.Response {
        mutex.lock(); defer { mutex.unlock() }
        if stopRequested || finished { return .init(status: 503, body: "stopping\n") }
        let waiting = runners.compactMap { r -> String? in
            if let holder = r.standbyFor { return "\(r.name): standby, the lease is held by \(holder)" }
            if r.rounds == 0 { return "\(r.name): no round completed yet" }
            if let e = r.lastError { return "\(r.name): last round failed: \(e)" }
            return nil
        }
        if runners.isEmpty { return .init(status: 503, body: "starting\n") }
        return waiting.isEmpty ? .init(status: 200, body: "ready\n")
            : .init(status: 503, body: waiting.joined(separator: "\n") + "\n")
    }

    public func respond(path: String) -> HTTPEndpoint.Response {
        switch path {
        case "/metrics":
            HTTPEndpoint.Response(status: 200, contentType: "text/plain; version=0.0.4; charset=utf-8",
                                  body: metrics.text())
        case "/healthz": health
        case "/readyz": readiness
        default: HTTPEndpoint.Response(status: 404, body: "not found: try /metrics, /healthz, /readyz\n")
        }
    }

    // MARK: Loop

    /// Opens and locks every cluster, then runs rounds until a signal or `maxRounds`. Returns normally after a
    /// clean stop (locks released); throws when a cluster cannot be started.
    public func run() throws {
        defer {
            for r in runners { r.release() }
            mutex.lock(); finished = true; mutex.unlock()
            // Bounded: a receiver that does not answer cannot hold the exit.
            let deadline = Date().addingTimeInterval(options.notifyFlushSeconds)
            for r in runners { r.flushNotifications(until: deadline) }
            writeMetricsFile()
            logger.notice("stopped", metadata: ["rounds": "\(runners.map(\.rounds).reduce(0, +))"])
        }
        var opened: [ClusterRunner] = []
        for path in options.clusters {
            do {
                opened.append(try ClusterRunner(path: path, options: options, metrics: metrics, logger: logger,
                                                isStopping: { [unowned self] in stopping }))
            }
            catch {
                for r in opened { r.release() }
                throw error
            }
        }
        mutex.lock(); runners = opened; mutex.unlock()
        let clock = ContinuousClock()
        let start = clock.now
        for r in runners { r.nextDue = start }
        while !stopping {
            mutex.lock()
            let reload = reloadRequested
            reloadRequested = false
            mutex.unlock()
            if reload { for r in runners { r.reload() } }
            let active = runners.filter { r in options.maxRounds.map { r.rounds < $0 } ?? true }
            for r in active where clock.now >= r.nextDue {
                if stopping { break }
                r.tick()
                // Keep to the schedule, but never try to catch up on rounds missed while a slow round ran.
                r.nextDue = max(r.nextDue + r.tickDuration, clock.now)
            }
                guard let next = runners.filter({ r in options.maxRounds.map { r.rounds < $0 } ?? true })
                .map(\.nextDue).min() else { break }
            let wait = clock.now.duration(to: next)
            if wait > .zero {
                let (s, a) = wait.components
                _ = self.wake.wait(timeout: .now() + Double(s) + Double(a) / 1e18)
            }
        }
    }

    func writeMetricsFile() {
        guard let url = options.metricsFile else { return }
        do { try metrics.write(to: url) } catch {
            logger.error("cannot write the metrics file", metadata: ["file": "\(url.path)", "error": "\(error)"])
        }
    }

    func roundDone() { writeMetricsFile() }
}
