import Foundation
import SandpiperEngine

/// The versioned JSON contract of `sandpiper simulate --json` (formatVersion 1). Its own types, like
/// `PlanDocument`: the simulator may change, this may only grow. Fractions are rounded to 4 decimals and times to
/// 3, so two runs of the same cluster print the same bytes.
public struct SimulationReport: Codable, Sendable, Equatable {
    public static let currentFormatVersion = 1

    public var formatVersion: Int
    public var cluster: String
    public var policy: String
    /// gray-box | black-box (the policy's, or the `--profiling` override).
    public var profiling: String
    /// Seconds between trace samples.
    public var intervalSeconds: Double
    /// Trace intervals replayed.
    public var intervals: Int
    /// Reconcile rounds (observe -> plan) run; the loop does not plan while an apply (a migration) is running.
    public var plans: Int
    /// Plans that had actions and were applied.
    public var applies: Int
    /// Migration bandwidth (Mbit/s) when set with --bandwidth; nil = each move at the slower of its two hosts'
    /// declared network capacity (1 Gbit/s when undeclared).
    public var bandwidthMbps: Double?
    /// CPU cores a running migration costs on each of its two hosts.
    public var migrationCPUCores: Double
    public var hosts: [String]

    // Summary.
    public var hotspotsDetected: Int
    public var hotspotsResolved: Int
    public var unresolved: Int
    /// Migrations applied (done), including the two or three of each swap.
    public var migrations: Int
    public var swaps: Int
    /// nil when nothing was resolved.
    public var meanSecondsToResolve: Double?
    public var maxSecondsToResolve: Double?
    /// Actions whose apply failed (the engine's report), and balloon changes applied.
    public var applyFailures: Int
    public var balloonChanges: Int
    /// Memory pressure: a VM *swaps* in an interval when its memory demand (the trace's mem_mib) exceeds its
    /// allocation at that time (the balloon target libvirt reports). Counted over VMs x intervals.
    public var swappingIntervals: Int
    /// Host-intervals above a threshold that never became a detected hotspot (transient spikes left alone).
    public var transientIntervals: Int
    /// Consolidation: host-hours powered on (hosts on per interval x interval), seconds any host spent above one of
    /// its thresholds (hosts over per interval x interval, detected or not), power actions applied.
    public var hostHoursOn: Double
    public var hotspotSeconds: Double
    public var powerOns: Int
    public var powerOffs: Int

    public var hotspots: [Hotspot]
    public var actions: [Action]
    public var timeline: [Interval]

    public struct Hotspot: Codable, Sendable, Equatable {
        /// The hot host (host hotspots) or the host of the VM (VM memory hotspots).
        public var host: String
        /// Set for a VM memory hotspot (swapping / guest free memory below target).
        public var vm: String?
        public var resource: String
        public var threshold: Double
        /// First interval of the run-up above the threshold (or swapping), and the detection time.
        public var overSince: Double
        public var detectedAt: Double
        /// First interval at or after detection where the actions taken for it have completed and the host
        /// is back at or under its threshold (the VM no longer swaps); nil = still open at the end of the trace.
        public var resolvedAt: Double?
        public var secondsToResolve: Double?
        /// migration | swap | balloon | load fell (no action) | unresolved
        public var outcome: String
        /// Summaries of the applied actions attributed to it ("vm1 pm1 -> pm3").
        public var actions: [String]
        /// The planner's reason when it left the hotspot unresolved (last one seen).
        public var reason: String?
    }

    public struct Action: Codable, Sendable, Equatable {
        /// Trace time of the plan that decided it.
        public var plannedAt: Double
        /// Modelled start and end. Apply runs a plan in dependency waves (`wave`): the actions of one wave run at
        /// once and the next wave starts when the slowest of them has finished. A migration takes (RAM + local disk) / bandwidth,
        /// a power-on the boot time; other actions take no time.
        public var startedAt: Double
        public var finishedAt: Double
        /// The apply wave the action ran in (1 = first); absent for an action that was skipped.
        public var wave: Int?
        public var plan: String
        public var kind: String
        /// Empty for host actions.
        public var vm: String
        /// Host actions (drain, power-off, power-on): the host.
        public var host: String?
        public var from: String?
        public var to: String?
        public var mode: String?
        public var swapGroup: String?
        /// Tune: the balloon target it set, if it set one.
        public var balloonMiB: Double?
        /// done | failed | skipped
        public var status: String
        public var detail: String?
        public var summary: String
        public var reason: String
    }

    public struct Interval: Codable, Sendable, Equatable {
        public var time: Double
        public var hosts: [HostSample]
        /// VMs swapping in this interval (demand above allocation).
        public var swapping: [String]
        /// VMs being migrated during this interval.
        public var migrating: [String]
        /// True when the loop planned at this interval (false while an apply was still running).
        public var planned: Bool
        /// Hosts powered on at the end of the interval, and hosts above one of their thresholds.
        public var hostsOn: Int?
        public var hostsOver: Int?
    }

    public struct HostSample: Codable, Sendable, Equatable {
        public var name: String
        /// Utilization of capacity (0...1, may exceed 1 when demand is above capacity), including migration cost.
        public var cpu: Double
        public var net: Double
        public var mem: Double
        public var thresholds: Thresholds
        /// Resources with an open (detected, not yet resolved) hotspot.
        public var hot: [String]
    }

    public struct Thresholds: Codable, Sendable, Equatable {
        public var cpu: Double
        public var net: Double
        public var mem: Double
    }

    /// Canonical bytes: sorted keys, pretty printed, no escaped slashes; nil summary fields are written as null.
    public func encoded() throws -> Data {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .prettyPrinted, .withoutEscapingSlashes]
        return try encoder.encode(self)
    }

    private enum CodingKeys: String, CodingKey {
        case formatVersion, cluster, policy, profiling, intervalSeconds, intervals, plans, applies, bandwidthMbps
        case migrationCPUCores, hosts, hotspotsDetected, hotspotsResolved, unresolved, migrations, swaps
        case meanSecondsToResolve, maxSecondsToResolve, applyFailures, balloonChanges, swappingIntervals
        case transientIntervals, hostHoursOn, hotspotSeconds, powerOns, powerOffs, hotspots, actions, timeline
    }

    public func encode(to encoder: Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(formatVersion, forKey: .formatVersion)
        try c.encode(cluster, forKey: .cluster)
        try c.encode(policy, forKey: .policy)
        try c.encode(profiling, forKey: .profiling)
        try c.encode(intervalSeconds, forKey: .intervalSeconds)
        try c.encode(intervals, forKey: .intervals)
        try c.encode(plans, forKey: .plans)
        try c.encode(applies, forKey: .applies)
        try c.encode(bandwidthMbps, forKey: .bandwidthMbps)
        try c.encode(migrationCPUCores, forKey: .migrationCPUCores)
        try c.encode(hosts, forKey: .hosts)
        try c.encode(hotspotsDetected, forKey: .hotspotsDetected)
        try c.encode(hotspotsResolved, forKey: .hotspotsResolved)
        try c.encode(unresolved, forKey: .unresolved)
        try c.encode(migrations, forKey: .migrations)
        try c.encode(swaps, forKey: .swaps)
        try c.encode(meanSecondsToResolve, forKey: .meanSecondsToResolve)
        try c.encode(maxSecondsToResolve, forKey: .maxSecondsToResolve)
        try c.encode(applyFailures, forKey: .applyFailures)
        try c.encode(balloonChanges, forKey: .balloonChanges)
        try c.encode(swappingIntervals, forKey: .swappingIntervals)
        try c.encode(transientIntervals, forKey: .transientIntervals)
        try c.encode(hostHoursOn, forKey: .hostHoursOn)
        try c.encode(hotspotSeconds, forKey: .hotspotSeconds)
        try c.encode(powerOns, forKey: .powerOns)
        try c.encode(powerOffs, forKey: .powerOffs)
        try c.encode(hotspots, forKey: .hotspots)
        try c.encode(actions, forKey: .actions)
        try c.encode(timeline, forKey: .timeline)
    }
}
