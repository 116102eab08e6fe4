import Foundation

/// The versioned JSON contract for a plan (`plan --json`, `plans/<id>.json`, `show`).
/// Its own types, never the planner's (Terraform's jsonplan): the planner may change, this may only grow.
/// Fractions and volumes are rounded to 4 decimals, MiB and cores to 3, so identical inputs give identical bytes.
public struct PlanDocument: Sendable, Equatable, Codable {
    public static let currentFormatVersion = 1

    public var formatVersion: Int
    /// Filled by the engine: what the plan was computed from; apply refuses a stale plan.
    public var basedOn: BasedOn?
    /// Set by the engine: the cluster's name and the plan's id (a digest of the document without its id,
    /// so the same plan always gets the same id; `idAlgorithm` says how it was computed).
    public var cluster: String?
    public var id: String?
    /// `sha256-canonical-1`: the first 12 hex digits of the SHA-256 of the document's canonical JSON
    /// (`JSONValue.canonical`) without `id`. Absent in plans made before it existed (their id hashed the bytes
    /// JSONEncoder printed; they still verify with the toolchain that made them).
    public var idAlgorithm: String?
    /// The Sandpiper release that made the plan (informational: apply reads any plan of this formatVersion).
    public var sandpiperVersion: String?
    /// The cluster directory relative to the root of the repository that holds it (`Clusters/demo`), so a plan
    /// saved anywhere applies without naming the cluster again.
    public var clusterDirectory: String?
    public var summary: Summary
    public var actions: [Action]
    public var hostsBefore: [Host]
    public var hostsAfter: [Host]
    public var hotspots: [HotspotEntry]
    public var unresolved: [Unresolved]
    public var drift: [Drift]
    public var decisions: [Decision]
    public var entitlements: [EntitlementEntry]

    public struct BasedOn: Sendable, Equatable, Codable {
        public var specDigest: String
        public var policyDigest: String
        public var specCommit: String?
        public var stateLineage: String?
        public var stateSerial: Int?
        /// Digest of `PlanDocument.inventoryDigestInput(observation)`, computed by the engine.
        public var inventoryDigest: String
        public init(specDigest: String, policyDigest: String, specCommit: String? = nil, stateLineage: String? = nil,
                    stateSerial: Int? = nil, inventoryDigest: String) {
            self.specDigest = specDigest; self.policyDigest = policyDigest; self.specCommit = specCommit
            self.stateLineage = stateLineage; self.stateSerial = stateSerial; self.inventoryDigest = inventoryDigest
        }
    }

    public struct Summary: Sendable, Equatable, Codable {
        /// define/start
        public var add: Int
        /// tune/resize
        public var change: Int
        public var move: Int
        /// stop/undefine
        public var remove: Int
        public var hotspots: Int
        public var unresolved: Int
        /// drain / power-off / power-on; absent when there are none (plans without host actions are unchanged).
        public var power: Int?
        public init(add: Int, change: Int, move: Int, remove: Int, hotspots: Int, unresolved: Int, power: Int? = nil) {
            self.add = add; self.change = change; self.move = move; self.remove = remove
            self.hotspots = hotspots; self.unresolved = unresolved; self.power = power
        }

        /// The counts of a list of actions (the one place that says which kind counts where).
        public init(counting kinds: [ActionKind], hotspots: Int, unresolved: Int) {
            var add = 0, change = 0, move = 0, remove = 0, power = 0
            for k in kinds {
                switch k {
                case .define, .start: add += 1
                case .tune, .resize: change += 1
                case .migrate: move += 1
                case .stop, .undefine: remove += 1
                case .drain, .powerOff, .powerOn: power += 1
                }
            }
            self.init(add: add, change: change, move: move, remove: remove, hotspots: hotspots,
                      unresolved: unresolved, power: power > 0 ? power : nil)
        }
    }

    public struct Parameters: Sendable, Equatable, Codable {
        public init(cpuShares: Int? = nil, cpuPeriodMicros: Int? = nil, cpuQuotaMicros: Int? = nil,
                    memoryHardLimitMiB: Double? = nil, memorySoftLimitMiB: Double? = nil, balloonMiB: Double? = nil,
                    vcpus: Int? = nil, memoryMiB: Double? = nil, template: String? = nil) {
            self.cpuShares = cpuShares; self.cpuPeriodMicros = cpuPeriodMicros; self.cpuQuotaMicros = cpuQuotaMicros
            self.memoryHardLimitMiB = memoryHardLimitMiB; self.memorySoftLimitMiB = memorySoftLimitMiB
            self.balloonMiB = balloonMiB; self.vcpus = vcpus; self.memoryMiB = memoryMiB; self.template = template
        }
        public var cpuShares: Int?
        public var cpuPeriodMicros: Int?
        public var cpuQuotaMicros: Int?
        public var memoryHardLimitMiB: Double?
        public var memorySoftLimitMiB: Double?
        public var balloonMiB: Double?
        public var vcpus: Int?
        public var memoryMiB: Double?
        public var template: String?
    }

    /// One action. `kind` and `mode` are closed enums: a plan naming a kind this Sandpiper does not know is refused
    /// when it is read, before anything runs (Terraform's ActionFromProto).
    public struct Action: Sendable, Equatable, Codable {
        public var id: String
        /// define | start | tune | resize | migrate | stop | undefine | drain | power-off | power-on
        public var kind: ActionKind
        /// Empty for host actions.
        public var vm: String
        /// Host actions: the host (absent for VM actions).
        public var host: String?
        public var from: String?
        public var to: String?
        /// live | cold
        public var mode: MoveMode?
        public var dependsOn: [String]
        public var swapGroup: String?
        public var parameters: Parameters
        /// For humans only; apply never decides on it.
        public var reason: String

        public init(id: String, kind: ActionKind, vm: String, host: String? = nil, from: String? = nil,
                    to: String? = nil, mode: MoveMode? = nil, dependsOn: [String] = [], swapGroup: String? = nil,
                    parameters: Parameters = Parameters(), reason: String) {
            self.id = id; self.kind = kind; self.vm = vm; self.host = host; self.from = from; self.to = to
            self.mode = mode; self.dependsOn = dependsOn; self.swapGroup = swapGroup; self.parameters = parameters
            self.reason = reason
        }

        private enum CodingKeys: String, CodingKey {
            case id, kind, vm, host, from, to, mode, dependsOn, swapGroup, parameters, reason
        }

        public init(from decoder: any Decoder) throws {
            let c = try decoder.container(keyedBy: CodingKeys.self)
            id = try c.decode(String.self, forKey: .id)
            let kindText = try c.decode(String.self, forKey: .kind)
            guard let kind = ActionKind(rawValue: kindText) else {
                throw DecodingError.dataCorruptedError(
                    forKey: .kind, in: c, debugDescription: "action \(id): unknown kind \"\(kindText)\" (this Sandpiper "
                        + "knows \(ActionKind.allCases.map(\.rawValue).joined(separator: ", ")))")
            }
            self.kind = kind
            vm = try c.decode(String.self, forKey: .vm)
            host = try c.decodeIfPresent(String.self, forKey: .host)
            from = try c.decodeIfPresent(String.self, forKey: .from)
            to = try c.decodeIfPresent(String.self, forKey: .to)
            if let modeText = try c.decodeIfPresent(String.self, forKey: .mode) {
                guard let mode = MoveMode(rawValue: modeText) else {
                    throw DecodingError.dataCorruptedError(
                        forKey: .mode, in: c, debugDescription: "action \(id): unknown mode \"\(modeText)\" (live or cold)")
                }
                self.mode = mode
            } else {
                mode = nil
            }
            dependsOn = try c.decode([String].self, forKey: .dependsOn)
            swapGroup = try c.decodeIfPresent(String.self, forKey: .swapGroup)
            parameters = try c.decode(Parameters.self, forKey: .parameters)
            reason = try c.decode(String.self, forKey: .reason)
        }
    }

    public struct Thresholds: Sendable, Equatable, Codable {
        public var cpu: Double
        public var net: Double
        public var mem: Double
    }

    public struct Host: Sendable, Equatable, Codable {
        public var name: String
        /// up | unknown | maintenance | standby
        public var status: String
        public var cpu: Double
        public var net: Double
        public var mem: Double
        public var volume: Double
        public var hot: [String]
        public var thresholds: Thresholds
        public var vmCount: Int
    }

    public struct HotspotEntry: Sendable, Equatable, Codable {
        public var host: String
        public var vm: String?
        public var resource: String
        /// "4 of 5"
        public var over: String
        public var samples: [Double]
        public var predicted: Double?
        public var threshold: Double
        /// threshold | at-allocation | swapping | guest-free (absent in plans made before it existed).
        public var trigger: String?
        /// guest-free: the free-memory target in MiB.
        public var targetMiB: Double?

        /// Counted as a hotspot (summary, simulate): everything but a VM's CPU at its own allocation.
        public var counts: Bool {
            if let trigger { return trigger != Hotspot.Trigger.atAllocation.rawValue }
            return vm == nil || resource == ResourceKind.mem.rawValue
        }
    }

    public struct Unresolved: Sendable, Equatable, Codable {
        public var host: String?
        public var vm: String?
        public var resources: [String]
        public var reason: String
    }

    public struct Drift: Sendable, Equatable, Codable {
        public var kind: String
        public var vm: String?
        public var host: String?
        public var message: String
    }

    public struct Candidate: Sendable, Equatable, Codable {
        public var host: String
        public var volumeBefore: Double
        public var volumeAfter: Double
        public var penalty: Double
        public var score: Double
    }

    public struct Decision: Sendable, Equatable, Codable {
        public var vm: String
        public var purpose: String
        public var from: String?
        public var chosen: String?
        public var hostsExamined: Int
        public var hostsTotal: Int
        /// Rejections by reason (JSON object; keys sorted on encoding).
        public var filtered: [String: Int]
        public var examples: [String]
        public var candidates: [Candidate]
    }

    public struct EntitlementEntry: Sendable, Equatable, Codable {
        public var vm: String
        public var host: String
        public var resource: String
        public var reservation: Double
        public var limit: Double?
        public var shares: Int
        public var demand: Double
        public var entitlement: Double
    }

    public init(formatVersion: Int = PlanDocument.currentFormatVersion, basedOn: BasedOn? = nil, summary: Summary,
                actions: [Action], hostsBefore: [Host], hostsAfter: [Host], hotspots: [HotspotEntry],
                unresolved: [Unresolved], drift: [Drift], decisions: [Decision], entitlements: [EntitlementEntry]) {
        self.formatVersion = formatVersion; self.basedOn = basedOn; self.summary = summary; self.actions = actions
        self.hostsBefore = hostsBefore; self.hostsAfter = hostsAfter; self.hotspots = hotspots
        self.unresolved = unresolved; self.drift = drift; self.decisions = decisions; self.entitlements = entitlements
    }
}

// MARK: - From the planner's Plan

extension PlanDocument {
    public init(plan: Plan, basedOn: BasedOn? = nil) {
        let f = PlanDocument.fraction, q = PlanDocument.quantity
        func host(_ h: HostUtilization) -> Host {
            Host(name: h.name, status: h.status.rawValue, cpu: f(h.cpu), net: f(h.net), mem: f(h.mem),
                 volume: f(h.volume), hot: h.hot.map(\.rawValue),
                 thresholds: Thresholds(cpu: f(h.thresholds.cpu), net: f(h.thresholds.net), mem: f(h.thresholds.mem)),
                 vmCount: h.vmCount)
        }
        self.init(
            basedOn: basedOn,
            summary: Summary(counting: plan.actions.map(\.kind), hotspots: plan.hotspots.filter(\.counts).count,
                             unresolved: plan.unresolved.count),
            actions: plan.actions.map { a in
                let p = a.parameters
                return Action(id: a.id, kind: a.kind, vm: a.vm, host: a.host, from: a.from, to: a.to,
                              mode: a.mode, dependsOn: a.dependsOn, swapGroup: a.swapGroup,
                              parameters: Parameters(cpuShares: p.cpuShares, cpuPeriodMicros: p.cpuPeriodMicros,
                                                     cpuQuotaMicros: p.cpuQuotaMicros,
                                                     memoryHardLimitMiB: p.memoryHardLimitMiB.map(q),
                                                     memorySoftLimitMiB: p.memorySoftLimitMiB.map(q),
                                                     balloonMiB: p.balloonMiB.map(q), vcpus: p.vcpus,
                                                     memoryMiB: p.memoryMiB.map(q), template: p.template),
                              reason: a.reason)
            },
            hostsBefore: plan.hostsBefore.map(host),
            hostsAfter: plan.hostsAfter.map(host),
            hotspots: plan.hotspots.map {
                HotspotEntry(host: $0.host, vm: $0.vm, resource: $0.resource.rawValue, over: $0.overSummary,
                             samples: $0.samples.map(f), predicted: $0.predicted.map(f), threshold: f($0.threshold),
                             trigger: $0.trigger.rawValue, targetMiB: $0.targetMiB.map(q))
            },
            unresolved: plan.unresolved.map {
                Unresolved(host: $0.host, vm: $0.vm, resources: $0.resources.map(\.rawValue), reason: $0.reason)
            },
            drift: plan.drift.map { Drift(kind: $0.kind.rawValue, vm: $0.vm, host: $0.host, message: $0.message) },
            decisions: plan.decisions.map { d in
                var filtered: [String: Int] = [:]
                for c in d.filtered { filtered[c.reason, default: 0] += c.count }
                return Decision(vm: d.vm, purpose: d.purpose.rawValue, from: d.from, chosen: d.chosen,
                                hostsExamined: d.hostsExamined, hostsTotal: d.hostsTotal, filtered: filtered,
                                examples: d.examples,
                                candidates: d.candidates.map {
                                    Candidate(host: $0.host, volumeBefore: f($0.volumeBefore),
                                              volumeAfter: f($0.volumeAfter), penalty: f($0.penalty),
                                              score: f($0.score))
                                })
            },
            entitlements: plan.entitlements.map {
                EntitlementEntry(vm: $0.vm, host: $0.host, resource: $0.resource.rawValue,
                                 reservation: q($0.reservation), limit: $0.limit.map(q), shares: $0.shares,
                                 demand: q($0.demand), entitlement: q($0.entitlement))
            })
    }

    /// Round a fraction or volume to 4 decimals.
    public static func fraction(_ x: Double) -> Double { round(x, scale: 10_000) }
    /// Round a quantity (cores, MiB) to 3 decimals.
    public static func quantity(_ x: Double) -> Double { round(x, scale: 1_000) }

    private static func round(_ x: Double, scale: Double) -> Double {
        guard x.isFinite else { return x }
        let r = (x * scale).rounded(.toNearestOrAwayFromZero) / scale
        return r == 0 ? 0 : r // no "-0"
    }
}

// MARK: - Encoding

extension PlanDocument {
    /// Canonical bytes: sorted keys, no escaped slashes, pretty printed unless asked otherwise.
    /// Same document -> same bytes.
    public func encoded(pretty: Bool = true) throws -> Data {
        let encoder = JSONEncoder()
        encoder.outputFormatting = pretty ? [.sortedKeys, .prettyPrinted, .withoutEscapingSlashes]
                                          : [.sortedKeys, .withoutEscapingSlashes]
        return try encoder.encode(self)
    }

    /// Any action to apply (`plan --detailed-exitcode` exits 2).
    public var hasChanges: Bool { !actions.isEmpty }

    public static let canonicalIDAlgorithm = "sha256-canonical-1"

    /// The plan's id under `sha256-canonical-1`, computed from the JSON text of a plan (as saved): independent of
    /// how that text is spaced or ordered, and of the `id` field itself.
    public static func canonicalID(ofJSON data: Data) throws -> String {
        String(SHA256.hex(try JSONValue.parse(data).removing("id").canonical).prefix(12))
    }

    /// This document's id under `sha256-canonical-1`: its canonical text written directly (`CanonicalEncoder`),
    /// the same bytes as printing it with JSONEncoder and parsing that back (the path `canonicalID(ofJSON:)` takes
    /// for a saved plan, and this one falls back to).
    public var canonicalID: String {
        var copy = self
        copy.id = nil
        if let bytes = try? CanonicalEncoder.bytes(of: copy) { return String(SHA256.hex(bytes).prefix(12)) }
        return (try? Self.canonicalID(ofJSON: copy.encoded(pretty: false))) ?? ""
    }

    /// The id plans made before `idAlgorithm` existed carry: the SHA-256 of this toolchain's JSONEncoder bytes.
    public var legacyID: String {
        var copy = self
        copy.id = nil
        return String(SHA256.hex((try? copy.encoded()) ?? Data()).prefix(12))
    }

    public static func decode(_ data: Data) throws -> PlanDocument {
        let doc = try JSONDecoder().decode(PlanDocument.self, from: data)
        guard doc.formatVersion == currentFormatVersion else {
            throw UnsupportedFormatVersion(found: doc.formatVersion, supported: currentFormatVersion)
        }
        return doc
    }

    public struct UnsupportedFormatVersion: Error, Equatable, CustomStringConvertible {
        public var found: Int
        public var supported: Int
        public var description: String {
            "plan formatVersion \(found) is not supported (this sandpiper reads version \(supported))"
        }
    }

    /// The canonical inventory text the engine hashes into `BasedOn.inventoryDigest`: one line per observed VM,
    /// `vm<TAB>host<TAB>state<TAB>vcpus<TAB>memoryMiB`, sorted, newline separated. Samples are not part of it:
    /// utilization moves all the time and does not make a plan stale.
    /// `inventoryDigestInput(observation)` as bytes, written in name order without sorting the lines: the same
    /// order when every name is unique and printable ASCII (a tab sorts before any such character, so a name
    /// that is a prefix of another still comes first); nil otherwise (the caller takes the string path).
    public static func inventoryDigestBytes(_ vms: [VMObservation]) -> [UInt8]? {
        guard vms.allSatisfy({ $0.name.utf8.allSatisfy { $0 > 0x20 && $0 < 0x7F } }) else { return nil }
        let ordered = vms.sorted { $0.name.utf8.lexicographicallyPrecedes($1.name.utf8) }
        var out: [UInt8] = []
        out.reserveCapacity(vms.count * 48)
        for (i, vm) in ordered.enumerated() {
            if i > 0 {
                guard ordered[i - 1].name != vm.name else { return nil }
                out.append(0x0A)
            }
            let mem = vm.memoryMiB == vm.memoryMiB.rounded() && abs(vm.memoryMiB) < 1e15
                ? String(Int64(vm.memoryMiB)) : String(vm.memoryMiB)
            out.append(contentsOf: vm.name.utf8); out.append(0x09)
            out.append(contentsOf: vm.host.utf8); out.append(0x09)
            out.append(contentsOf: vm.state.rawValue.utf8); out.append(0x09)
            out.append(contentsOf: String(vm.vcpus).utf8); out.append(0x09)
            out.append(contentsOf: mem.utf8)
        }
        return out
    }

    public static func inventoryDigestInput(_ observation: Observation) -> String {
        observation.vms
            .map { vm in
                let mem = vm.memoryMiB == vm.memoryMiB.rounded() && abs(vm.memoryMiB) < 1e15
                    ? String(Int64(vm.memoryMiB)) : String(vm.memoryMiB)
                return "\(vm.name)\t\(vm.host)\t\(vm.state.rawValue)\t\(vm.vcpus)\t\(mem)"
            }
            .sorted()
            .joined(separator: "\n")
    }
}
