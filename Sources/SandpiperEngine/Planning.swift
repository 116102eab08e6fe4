import Foundation
import SandpiperModel
import SandpiperPlanner

/// How a run gets its samples.
public struct TelemetryOptions: Sendable {
    /// Trace source: the time (seconds) whose window is planned on; nil = the end of the trace.
    public var traceTime: Double?
    /// Live source: seconds between samples; nil = the spec's telemetry interval.
    public var intervalSeconds: Double?
    /// Live source: number of samples; nil = the policy's window n.
    public var samples: Int?
    public var progress: (@Sendable (Int, Int) -> Void)?

    public init(traceTime: Double? = nil, intervalSeconds: Double? = nil, samples: Int? = nil,
                progress: (@Sendable (Int, Int) -> Void)? = nil) {
        self.traceTime = traceTime; self.intervalSeconds = intervalSeconds; self.samples = samples
        self.progress = progress
    }
}

public enum EngineError: Error, CustomStringConvertible, Sendable {
    case load(LoadError)
    case state(StateError)
    case trace(String)
    case plan(String)
    case stale([String])
    case apply(String)

    public var description: String {
        switch self {
        case .load(let e): e.description
        case .state(let e): e.description
        case .trace(let m): m
        case .plan(let m): m
        case .stale(let reasons): "Saved plan is stale: " + reasons.joined(separator: "; ")
            + ". Run `sandpiper plan` again and review the new plan."
        case .apply(let m): m
        }
    }
}

/// Everything one run knows about the fleet: the inventory from libvirt plus sample windows.
public struct FleetSnapshot: Sendable {
    public var observation: Observation
    public var inventory: FleetInventory

    package init(observation: Observation, inventory: FleetInventory) {
        self.observation = observation; self.inventory = inventory
    }
}

/// The steps shared by plan, apply, reconcile and observe.
public enum Engine {
    /// Observes the fleet: inventory over the open connections, windows from the cluster's telemetry source.
    public static func observe(_ cluster: LoadedCluster, connections: FleetConnections, state: StateDocument?,
                               telemetry: TelemetryOptions = TelemetryOptions()) throws(EngineError) -> FleetSnapshot {
        let n = cluster.policy.window.n
        switch cluster.spec.telemetry.source {
        case .trace:
            let trace = try loadTrace(cluster)
            var index: Int? = nil
            if let t = telemetry.traceTime {
                guard let i = TraceTelemetry.index(of: t, in: trace) else {
                    throw .trace("--at \(Units.trim(t)): the trace starts at \(Units.trim(trace.times.first ?? 0))s")
                }
                index = i
            }
            let source = TraceTelemetry(trace: trace, index: index)
            let now = trace.times.isEmpty ? 0 : trace.times[source.index]
            var inventory = connections.inventory(previous: state?.inventory, now: now)
            if let t = telemetry.traceTime, let end = trace.times.last, t > end {
                inventory.warnings.append("--at \(Units.trim(t)): the trace ends at \(Units.trim(end))s; "
                    + "using the window ending there")
            }
            let (_, samples) = source.windows(for: inventory.vms.map(\.name) + inventory.hosts.map { Trace.hostKey($0.name) },
                                              count: n)
            return FleetSnapshot(
                observation: Observation(inventory: inventory, samples: samples, now: now,
                                         intervalSeconds: cluster.spec.telemetry.intervalSeconds),
                inventory: inventory)
        case .libvirt:
            let interval = telemetry.intervalSeconds ?? cluster.spec.telemetry.intervalSeconds
            let now = Date().timeIntervalSince1970
            let inventory = connections.inventory(previous: state?.inventory, now: now)
            var source = LibvirtTelemetry(connections: connections, intervalSeconds: interval,
                                          progress: telemetry.progress)
            source.sampleHostLoad = cluster.spec.telemetry.hostLoad
            let windows: (now: Double, samples: [String: [Sample]], warnings: [String])
            do { windows = try source.sample(for: inventory.vms.map(\.name), count: telemetry.samples ?? n) }
            catch { throw .trace("sampling failed: \(error)") }
            // Hosts that stopped answering while sampled are unknown now.
            var hosts = inventory.hosts
            for i in hosts.indices where hosts[i].isUp {
                if let reason = connections.failure(hosts[i].name) { hosts[i].status = .unknown(reason: reason) }
            }
            let known = Set(hosts.filter(\.isUp).map(\.name))
            let refreshed = FleetInventory(hosts: hosts, vms: inventory.vms.filter { known.contains($0.host) },
                                           warnings: inventory.warnings + windows.warnings)
            return FleetSnapshot(
                observation: Observation(inventory: refreshed, samples: windows.samples, now: windows.now,
                                         intervalSeconds: interval),
                inventory: refreshed)
        case .prometheus:
            // History is read, not sampled: nothing waits here.
            let source = try prometheusTelemetry(cluster, intervalSeconds: telemetry.intervalSeconds)
            let now = Date().timeIntervalSince1970
            let inventory = connections.inventory(previous: state?.inventory, now: now)
            let windows = source.sample(prometheusTargets(inventory), count: telemetry.samples ?? n, now: now)
            let read = FleetInventory(hosts: inventory.hosts, vms: inventory.vms,
                                      warnings: inventory.warnings + windows.warnings, uuids: inventory.uuids)
            return FleetSnapshot(
                observation: Observation(inventory: read, samples: windows.samples, now: windows.now,
                                         intervalSeconds: source.intervalSeconds),
                inventory: read)
        }
    }

    /// The Prometheus source of a cluster, with its credentials file read (its content is never shown).
    public static func prometheusTelemetry(_ cluster: LoadedCluster,
                                           intervalSeconds: Double? = nil) throws(EngineError) -> PrometheusTelemetry {
        guard let endpoint = cluster.spec.telemetry.prometheus else {
            throw .trace("telemetry source is prometheus but no url is given")
        }
        var credentials: String?
        if let file = endpoint.credentialsFile {
            guard let data = FileManager.default.contents(atPath: cluster.resolve(file).path) else {
                throw .trace("telemetry.credentialsFile \"\(file)\" cannot be read")
            }
            credentials = String(decoding: data, as: UTF8.self)
        }
        do {
            return try PrometheusTelemetry(endpoint: endpoint, credentials: credentials,
                                           intervalSeconds: intervalSeconds ?? cluster.spec.telemetry.intervalSeconds)
        } catch { throw .trace("telemetry.credentialsFile \"\(endpoint.credentialsFile ?? "")\": \(error.message)") }
    }

    /// The running VMs of an inventory, by name and UUID, as Prometheus series are matched to them.
    public static func prometheusTargets(_ inventory: FleetInventory) -> [PrometheusTelemetry.Target] {
        inventory.vms.filter { $0.state == .running || $0.state == .paused }
            .map { PrometheusTelemetry.Target(name: $0.name, uuid: inventory.uuids[$0.name]) }
    }

    /// "Now" on the cluster's observation clock: the end of the trace, or Unix time for live telemetry.
    public static func observationClock(_ cluster: LoadedCluster) throws(EngineError) -> Double {
        switch cluster.spec.telemetry.source {
        case .trace: return try loadTrace(cluster).times.last ?? 0
        case .libvirt, .prometheus: return Date().timeIntervalSince1970
        }
    }

    package static func loadTrace(_ cluster: LoadedCluster) throws(EngineError) -> Trace {
        if let trace = cluster.trace { return trace }  // parsed at load
        guard let path = cluster.spec.telemetry.trace else { throw .trace("telemetry source is trace but no trace file is named") }
        do { return try Trace.load(cluster.resolve(path), shown: path) } catch { throw .trace("\(error)") }
    }

    /// Computes the plan document for an observation, with what it is based on and its content id.
    /// `identify: false` leaves out the inventory digest and the id (the simulator's plans without actions are
    /// never saved or applied: it identifies only the others, with `identify(_:snapshot:state:)`).
    public static func plan(_ cluster: LoadedCluster, snapshot: FleetSnapshot, state: StateDocument?,
                            specCommit: String? = nil, prune: Bool = false, identify: Bool = true) -> PlanDocument {
        let plan = Planner.plan(spec: cluster.spec, observation: snapshot.observation, policy: cluster.policy,
                                options: PlanOptions(prune: prune))
        let basedOn = PlanDocument.BasedOn(
            specDigest: cluster.specDigest, policyDigest: cluster.policyDigest, specCommit: specCommit,
            stateLineage: state?.lineage, stateSerial: state?.serial,
            inventoryDigest: identify ? inventoryDigest(snapshot.observation, state: state) : "")
        var document = PlanDocument(plan: plan, basedOn: basedOn)
        // The planner does not know drivers: say here what apply will do. libvirt's test driver cannot migrate
        // live, so moves between test-driver hosts are cold (apply would fall back to cold anyway).
        let live = document.actions.indices.filter { document.actions[$0].kind == .migrate && document.actions[$0].mode == .live }
        let testHosts = live.isEmpty ? []
            : Set(cluster.spec.hosts.filter { cluster.connectionURI(for: $0).hasPrefix("test:") }.map(\.name))
        for i in live {
            if let from = document.actions[i].from, let to = document.actions[i].to,
               testHosts.contains(from), testHosts.contains(to) {
                document.actions[i].mode = .cold
                document.actions[i].reason += " (cold: the libvirt test driver cannot migrate live)"
            }
        }
        document.cluster = cluster.spec.name
        document.clusterDirectory = cluster.repositoryPath.isEmpty ? nil : cluster.repositoryPath
        document.sandpiperVersion = SandpiperVersion.current
        document.idAlgorithm = PlanDocument.canonicalIDAlgorithm
        if identify { document.id = planID(document) }
        return document
    }

    /// Completes a plan made with `identify: false`: the same document `plan` would have returned.
    public static func identify(_ document: inout PlanDocument, snapshot: FleetSnapshot, state: StateDocument?) {
        document.basedOn?.inventoryDigest = inventoryDigest(snapshot.observation, state: state)
        document.id = planID(document)
    }

    /// The digest a plan records of the fleet: the observed VMs, plus those the state last saw on hosts that do
    /// not answer now (kept as `StateDocument.record` keeps them), so an outage of a host no action touches does
    /// not make a plan stale, at plan time or at apply time.
    public static func inventoryDigest(_ observation: Observation, state: StateDocument?) -> String {
        // Every host answers: the state keeps no VM the observation does not show, so the digest is of the
        // observed VMs (written directly when their names allow; `CanonicalEncoderTests` compares both paths).
        if observation.hosts.allSatisfy(\.isUp) || state?.inventory == nil,
           let bytes = PlanDocument.inventoryDigestBytes(observation.vms) {
            return SHA256.hex(bytes)
        }
        var seen = state ?? StateDocument(cluster: "", lineage: "")
        seen.record(observation)
        let merged = Observation(hosts: observation.hosts, vms: seen.inventory?.vms ?? observation.vms)
        return SHA256.hex(PlanDocument.inventoryDigestInput(merged))
    }

    /// A plan's id: the first 12 hex digits of the SHA-256 of its canonical JSON without the id
    /// (`PlanDocument.canonicalID`; plans from before `idAlgorithm` existed keep their legacy id).
    public static func planID(_ document: PlanDocument) -> String {
        document.idAlgorithm == nil ? document.legacyID : document.canonicalID
    }

    /// Reads the state file, mapping its errors.
    public static func readState(_ cluster: LoadedCluster) throws(EngineError) -> StateDocument? {
        do { return try StateFile(directory: cluster.directory).read(cluster: cluster.spec.name) } catch { throw .state(error) }
    }

    public static func load(_ path: String) throws(EngineError) -> LoadedCluster {
        do { return try ClusterLoader.load(path) } catch { throw .load(error) }
    }
}
