import Foundation
import SandpiperYAML

/// Strict decoding of cluster.yaml and policy files into the spec types.
/// Reports every problem it finds (not only the first), each with file, line, column and field.
public enum SpecDecoder {
    public static let apiVersion = "sandpiper/v1"

    /// Decodes a cluster spec. Throws `SpecErrors` listing every problem found.
    public static func decodeCluster(_ text: String, file: String,
                                     limits: YAMLLimits = .default) throws -> (ClusterSpec, SourceMap) {
        let reader = NodeReader(file: file)
        let root = try parseDocument(text, reader: reader, limits: limits)
        let spec = readCluster(root, reader)
        if !reader.diagnostics.isEmpty { throw SpecErrors(reader.diagnostics) }
        return (spec!, reader.sourceMap)
    }

    /// Decodes and validates in one pass, reporting every problem: decoding errors, and the semantic errors of
    /// every part that decoded (a VM whose memory is malformed is still checked for its SLA, not for its memory).
    /// The spec is returned even with errors (malformed fields hold defaults): valid only when `diagnostics` is empty.
    public static func check(_ text: String, file: String, limits: YAMLLimits = .default,
                             fileExists: (String) -> Bool) -> (spec: ClusterSpec?, sourceMap: SourceMap?,
                                                               diagnostics: [SpecDiagnostic]) {
        let reader = NodeReader(file: file)
        let root: YAMLNode
        do { root = try parseDocument(text, reader: reader, limits: limits) } catch let e as SpecErrors {
            return (nil, nil, e.diagnostics)
        } catch { return (nil, nil, [SpecDiagnostic(file: file, line: 1, column: 1, field: "", message: "\(error)")]) }
        guard let spec = readCluster(root, reader) else { return (nil, nil, reader.diagnostics) }
        let decodeErrors = reader.diagnostics
        // Fields that failed to decode hold defaults: drop semantic findings on those very fields.
        let broken = Set(decodeErrors.map(\.field))
        let semantic = SpecValidator.validate(spec, sourceMap: reader.sourceMap, fileExists: fileExists).filter { d in
            !broken.contains { d.field == $0 || d.field.hasPrefix($0 + ".") || d.field.hasPrefix($0 + "[") }
        }
        let all = SpecErrors(decodeErrors + semantic).diagnostics
        return (spec, reader.sourceMap, all)
    }

    /// Decodes a policy; `name` is the policy's name (its file name without `.yaml`).
    public static func decodePolicy(_ text: String, file: String, name: String,
                                    limits: YAMLLimits = .default) throws -> Policy {
        let reader = NodeReader(file: file)
        let root = try parseDocument(text, reader: reader, limits: limits)
        let policy = readPolicy(root, name: name, reader)
        if !reader.diagnostics.isEmpty { throw SpecErrors(reader.diagnostics) }
        return policy!
    }

    private static func parseDocument(_ text: String, reader: NodeReader, limits: YAMLLimits) throws -> YAMLNode {
        do {
            guard let root = try YAMLParser.parse(text, limits: limits) else {
                throw SpecErrors([SpecDiagnostic(file: reader.file, line: 1, column: 1, field: "",
                                                 message: "the file is empty")])
            }
            _ = reader.untagged(root, "")
            return root
        } catch let e as YAMLError {
            let m = e.mark ?? Mark(line: 1, column: 1)
            throw SpecErrors([SpecDiagnostic(file: reader.file, line: m.line, column: m.column, field: "",
                                             message: e.message)])
        }
    }

    private static func readHeader(_ m: MappingReader, kind: String) {
        if let v = m.readRequired("apiVersion", m.reader.string), v != apiVersion {
            m.reader.error(at: "apiVersion", "unsupported apiVersion \"\(v)\" (this Sandpiper reads \(apiVersion))")
        }
        if let k = m.readRequired("kind", m.reader.string), k != kind {
            m.reader.error(at: "kind", "expected kind \(kind), found \"\(k)\"")
        }
    }

    // MARK: cluster.yaml

    static func readCluster(_ root: YAMLNode, _ r: NodeReader) -> ClusterSpec? {
        guard let m = r.mapping(root, "", allowed: SpecKeys.cluster.keys) else { return nil }
        readHeader(m, kind: "Cluster")
        var spec = ClusterSpec(name: m.readRequired("name", r.name) ?? "")
        spec.policy = m.read("policy", r.name) ?? "default"
        if let t = m["telemetry"] { spec.telemetry = readTelemetry(t, m.field("telemetry"), r) ?? Telemetry() }
        if let node = m["slas"], let slas = r.mapping(node, "slas", allowed: slaNames(node)) {
            spec.slas = slaNames(node).compactMap { name in
                slas[name].flatMap { readSLA($0, name: name, path: "slas.\(name)", r) }
            }
        }
        if let hosts = m.readRequired("hosts", r.sequence) {
            spec.hosts = hosts.enumerated().compactMap { readHost($1, "hosts[\($0)]", r) }
        }
        if let vms = m.read("vms", r.sequence) {
            spec.vms = vms.enumerated().compactMap { readVM($1, "vms[\($0)]", r) }
        }
        if let groups = m.read("groups", r.sequence) {
            spec.groups = groups.enumerated().compactMap { readGroup($1, "groups[\($0)]", r) }
        }
        return spec
    }

    /// SLA names are the keys of `slas:` (a mapping keyed by name).
    private static func slaNames(_ node: YAMLNode) -> [String] {
        guard case .mapping(let pairs) = node.kind else { return [] }
        return pairs.compactMap { if case .scalar(let k, _) = $0.key.kind { k } else { nil } }
    }

    static func readTelemetry(_ node: YAMLNode, _ path: String, _ r: NodeReader) -> Telemetry? {
        guard let m = r.mapping(node, path, allowed: SpecKeys.telemetry.keys) else { return nil }
        var t = Telemetry()
        t.source = m.read("source") { r.oneOf($0, $1, Telemetry.Source.self) } ?? .libvirt
        t.trace = m.read("trace", r.string)
        t.hostLoad = m.read("hostLoad", r.bool) ?? false
        if let s = m.read("interval", r.durationSeconds) {
            if s < 1 { r.error(at: m.field("interval"), "\(Units.formatSeconds(s)) is shorter than the minimum 1s") }
            t.intervalSeconds = s
        }
        if t.source == .trace && t.trace == nil {
            r.error(node.mark, m.field("trace"), "missing required field (telemetry source is trace)")
        }
        let url = m.read("url", r.string)
        let credentials = m.read("credentialsFile", r.string)
        let queries = m.read("queries") { q, p in r.mapping(q, p, allowed: SpecKeys.prometheusQueries.keys) }
        let timeout = m.read("timeout", r.durationSeconds)
        guard t.source == .prometheus else {
            for key in ["url", "credentialsFile", "queries", "timeout"] where m[key] != nil {
                r.error(at: m.field(key), "only used with telemetry source prometheus")
            }
            return t
        }
        if t.hostLoad {
            r.error(at: m.field("hostLoad"), "not read from Prometheus (host load comes from libvirt sampling or trace @host rows)")
        }
        guard let url else {
            r.error(node.mark, m.field("url"), "missing required field (telemetry source is prometheus)")
            return t
        }
        if let problem = PrometheusEndpoint.urlProblem(url) { r.error(at: m.field("url"), problem) }
        var endpoint = PrometheusEndpoint(url: url, credentialsFile: credentials)
        if let timeout {
            if timeout <= 0 { r.error(at: m.field("timeout"), "must be longer than 0s") }
            endpoint.timeoutSeconds = timeout
        }
        if let queries {
            func query(_ key: String) -> String? {
                guard let q = queries.read(key, r.string) else { return nil }
                if q.trimmingCharacters(in: .whitespacesAndNewlines).isEmpty {
                    r.error(at: queries.field(key), "must not be empty (leave the key out for the default query)")
                }
                return q
            }
            endpoint.cpuQuery = query("cpu"); endpoint.memoryQuery = query("memory"); endpoint.networkQuery = query("network")
        }
        t.prometheus = endpoint
        return t
    }

    static func readThresholds(_ node: YAMLNode, _ path: String, _ r: NodeReader) -> Thresholds? {
        guard let m = r.mapping(node, path, allowed: SpecKeys.thresholds.keys) else { return nil }
        return Thresholds(cpu: m.read("cpu", r.fraction), net: m.read("net", r.fraction), mem: m.read("mem", r.fraction))
    }

    static func readSLA(_ node: YAMLNode, name: String, path: String, _ r: NodeReader) -> SLA? {
        _ = r.name(YAMLNode(kind: .scalar(name, plain: true), mark: r.sourceMap.mark(for: path)), path)
        guard let m = r.mapping(node, path, allowed: SpecKeys.sla.keys) else { return nil }
        var sla = SLA(name: name)
        sla.thresholds = m.read("thresholds") { readThresholds($0, $1, r) } ?? Thresholds()
        sla.migration = m.read("migration") { r.oneOf($0, $1, MigrationMode.self) } ?? .any
        return sla
    }

    static func readHost(_ node: YAMLNode, _ path: String, _ r: NodeReader) -> HostSpec? {
        guard let m = r.mapping(node, path, allowed: SpecKeys.host.keys)
        else { return nil }
        let name = m.readRequired("name", r.name)
        let uri = m.readRequired("uri", r.string)
        var host = HostSpec(name: name ?? "", uri: uri ?? "")
        if let c = m["capacity"], let cm = r.mapping(c, m.field("capacity"), allowed: SpecKeys.capacity.keys) {
            host.capacity = Capacity(
                cpus: cm.read("cpus") { r.number($0, $1, min: 0.01, what: "a number of CPUs") },
                memoryMiB: cm.read("memory", r.sizeMiB),
                networkMbps: cm.read("network", r.bandwidthMbps))
            if let rv = cm["reserved"], let rm = r.mapping(rv, cm.field("reserved"), allowed: SpecKeys.reserved.keys) {
                host.capacity.reservedCPUs = rm.read("cpus") { r.number($0, $1, min: 0, what: "a number of CPUs") } ?? 0
                host.capacity.reservedMemoryMiB = rm.read("memory", r.sizeMiB) ?? 0
            }
        }
        host.allocationRatio = m.read("allocationRatio") { readAllocationRatio($0, $1, r) }
        host.schedulable = m.read("schedulable", r.bool) ?? true
        host.storage = m.read("storage") { r.oneOf($0, $1, StorageMode.self) }
        host.sharedPools = m.read("sharedPools", r.sequence).map { pools in
            pools.enumerated().compactMap { r.string($1, "\(m.field("sharedPools"))[\($0)]") }
        }
        host.maintenance = m.read("maintenance", r.bool) ?? false
        host.labels = m.read("labels", r.stringMap) ?? [:]
        host.power = m.read("power") { readPower($0, $1, r) }
        return name == nil ? nil : host
    }

    /// `allocationRatio: {cpu: 4.0, memory: 1.0}` (policy, or a host's override).
    static func readAllocationRatio(_ node: YAMLNode, _ path: String, _ r: NodeReader) -> AllocationRatio? {
        guard let m = r.mapping(node, path, allowed: SpecKeys.allocationRatio.keys) else { return nil }
        return AllocationRatio(cpu: m.read("cpu") { r.number($0, $1, min: 0.01, max: 1000) },
                               memory: m.read("memory") { r.number($0, $1, min: 0.01, max: 1000) })
    }

    /// `power: {on: [argv], off: [argv], status: [argv]}`: lists of strings, never a shell line.
    static func readPower(_ node: YAMLNode, _ path: String, _ r: NodeReader) -> HostPower? {
        guard let m = r.mapping(node, path, allowed: SpecKeys.power.keys) else { return nil }
        func argv(_ node: YAMLNode, _ path: String) -> [String]? {
            guard let items = r.sequence(node, path) else { return nil }
            let args = items.enumerated().compactMap { r.string($1, "\(path)[\($0)]") }
            return args.count == items.count ? args : nil
        }
        let on = m.readRequired("on", argv), off = m.readRequired("off", argv)
        let status = m.read("status", argv)
        guard let on, let off else { return nil }
        return HostPower(on: on, off: off, status: status)
    }

    static func readControl(_ node: YAMLNode, _ path: String, memory: Bool, _ r: NodeReader) -> ResourceControl? {
        guard let m = r.mapping(node, path, allowed: SpecKeys.control.keys) else { return nil }
        let amount: (YAMLNode, String) -> Double? = memory
            ? { r.sizeMiB($0, $1) }
            : { r.number($0, $1, min: 0, what: "a number of cores") }
        var c = ResourceControl()
        c.reservation = m.read("reservation", amount) ?? 0
        c.limit = m.read("limit", amount)
        c.shares = m.read("shares") { readShares($0, $1, r) } ?? .normal
        return c
    }

    static func readShares(_ node: YAMLNode, _ path: String, _ r: NodeReader) -> Shares? {
        guard let text = r.plainScalar(node, path, expected: "low, normal, high or a whole number") else { return nil }
        switch text {
        case "low": return .low
        case "normal": return .normal
        case "high": return .high
        default:
            if let n = Int(text), n > 0, n <= 1_000_000 { return .custom(n) }
            r.error(node.mark, path, "\"\(text)\" is not a share level (low, normal, high or a whole number 1-1000000)")
            return nil
        }
    }

    static func readVM(_ node: YAMLNode, _ path: String, _ r: NodeReader) -> VMSpec? {
        guard let m = r.mapping(node, path, allowed: SpecKeys.vm.keys) else { return nil }
        let name = m.readRequired("name", r.name)
        let vcpus = m.readRequired("vcpus") { r.int($0, $1, min: 1, max: 4096) }
        let memory = m.readRequired("memory", r.sizeMiB)
        // Undecodable vcpus/memory stay 0 (never valid): the validator skips checks that depend on them.
        var vm = VMSpec(name: name ?? "", vcpus: vcpus ?? 0, memoryMiB: memory ?? 0)
        vm.sla = m.read("sla", r.name)
        vm.template = m.read("template", r.string)
        if let res = m["resources"], let rm = r.mapping(res, m.field("resources"), allowed: SpecKeys.resources.keys) {
            vm.resources.cpu = rm.read("cpu") { readControl($0, $1, memory: false, r) } ?? ResourceControl()
            vm.resources.memory = rm.read("memory") { readControl($0, $1, memory: true, r) } ?? ResourceControl()
        }
        if let p = m["placement"], let pm = r.mapping(p, m.field("placement"), allowed: SpecKeys.placement.keys) {
            vm.placement = PlacementRule(host: pm.read("host", r.name), labels: pm.read("labels", r.stringMap) ?? [:])
        }
        vm.automation = m.read("automation") { r.oneOf($0, $1, VMAutomation.self) }
        vm.storage = m.read("storage") { r.oneOf($0, $1, StorageMode.self) }
        if memory != nil && memory! <= 0 { r.error(at: m.field("memory"), "must be larger than 0") }
        return name == nil ? nil : vm
    }

    static func readGroup(_ node: YAMLNode, _ path: String, _ r: NodeReader) -> GroupSpec? {
        guard let m = r.mapping(node, path, allowed: SpecKeys.group.keys) else { return nil }
        let name = m.readRequired("name", r.name)
        let vms = m.readRequired("vms", r.sequence)?.enumerated().compactMap { r.name($1, "\(path).vms[\($0)]") }
        let rule = m.readRequired("rule") { r.oneOf($0, $1, GroupSpec.Rule.self) }
        let enforcement = m.read("enforcement") { r.oneOf($0, $1, GroupSpec.Enforcement.self) } ?? .must
        guard let name, let vms, let rule else { return nil }
        return GroupSpec(name: name, vms: vms, rule: rule, enforcement: enforcement)
    }

    // MARK: policy

    /// `automation: full`, or `automation: {level: full, windows: [{allow: "Mon-Fri 22:00-06:00", timezone: ...}],
    /// repairOverridesWindows: true}`.
    static func readAutomation(_ node: YAMLNode, into p: inout Policy, _ r: NodeReader) {
        if case .scalar = node.kind {
            p.automation = r.oneOf(node, "automation", Policy.Automation.self) ?? .manual
            return
        }
        guard let am = r.mapping(node, "automation", allowed: SpecKeys.automation.keys) else { return }
        p.automation = am.read("level") { r.oneOf($0, $1, Policy.Automation.self) } ?? .manual
        p.changeWindows.repairOverridesWindows = am.read("repairOverridesWindows", r.bool) ?? false
        guard let items = am.read("windows", r.sequence) else { return }
        for (i, item) in items.enumerated() {
            let path = "automation.windows[\(i)]"
            guard let wm = r.mapping(item, path, allowed: SpecKeys.changeWindow.keys) else { continue }
            let allow = wm.read("allow", r.string), deny = wm.read("deny", r.string)
            var zone = "UTC"
            if let z = wm.read("timezone", r.string) {
                if TimeZone(identifier: z) == nil {
                    r.error(at: wm.field("timezone"), "\"\(z)\" is not a time zone (an IANA name, e.g. Europe/Berlin)")
                    continue
                }
                zone = z
            }
            let effect: ChangeWindow.Effect, text: String
            switch (allow, deny) {
            case (let a?, nil): (effect, text) = (.allow, a)
            case (nil, let d?): (effect, text) = (.deny, d)
            case (.some, .some):
                r.error(at: wm.field("deny"), "a window is either allow or deny, not both"); continue
            case (nil, nil):
                if wm["allow"] == nil && wm["deny"] == nil {
                    r.error(item.mark, path, "missing required field allow or deny")
                }
                continue
            }
            switch ChangeWindow.parse(text, effect: effect, timeZone: zone) {
            case .success(let w): p.changeWindows.windows.append(w)
            case .failure(let e): r.error(at: wm.field(effect.rawValue), e.message)
            }
        }
    }

    static func readPolicy(_ root: YAMLNode, name: String, _ r: NodeReader) -> Policy? {
        guard let m = r.mapping(root, "", allowed: SpecKeys.policy.keys) else { return nil }
        readHeader(m, kind: "Policy")
        var p = Policy(name: name)
        if let t = m.read("thresholds", { readThresholds($0, $1, r) }) {
            p.thresholds = p.thresholds.overridden(by: t)
        }
        if let w = m["window"], let wm = r.mapping(w, "window", allowed: SpecKeys.window.keys) {
            p.window.k = wm.read("k") { r.int($0, $1, min: 1, max: 1000) } ?? p.window.k
            p.window.n = wm.read("n") { r.int($0, $1, min: 1, max: 1000) } ?? p.window.n
            if p.window.k > p.window.n {
                r.error(at: "window.k", "k (\(p.window.k)) must not exceed n (\(p.window.n))")
            }
        }
        if let pr = m["prediction"], let pm = r.mapping(pr, "prediction", allowed: SpecKeys.prediction.keys) {
            p.prediction.model = pm.read("model") { r.oneOf($0, $1, Policy.Prediction.Model.self) } ?? .ar
            p.prediction.order = pm.read("order") { r.int($0, $1, min: 0, max: 16) } ?? p.prediction.order
            if p.prediction.order >= p.window.n && p.prediction.model == .ar && p.prediction.order > 0 {
                r.error(at: "prediction.order",
                        "AR order \(p.prediction.order) needs more than \(p.window.n) samples (window.n)")
            }
        }
        if let pf = m["profiling"], let fm = r.mapping(pf, "profiling", allowed: SpecKeys.profiling.keys) {
            p.profiling.percentile = fm.read("percentile") { r.number($0, $1, min: 1, max: 100) } ?? p.profiling.percentile
            p.profiling.headroom = fm.read("headroom") { r.number($0, $1, min: 0, max: 10) } ?? p.profiling.headroom
            p.profiling.memoryStepMiB = fm.read("memoryStep", r.sizeMiB) ?? p.profiling.memoryStepMiB
            p.profiling.guestFreeTargetMiB = fm.read("guestFreeTarget", r.sizeMiB) ?? p.profiling.guestFreeTargetMiB
            p.profiling.mode = fm.read("mode") { r.oneOf($0, $1, Policy.Profiling.Mode.self) } ?? p.profiling.mode
        }
        if let pl = m["placement"], let lm = r.mapping(pl, "placement", allowed: SpecKeys.policyPlacement.keys) {
            p.placement.swaps = lm.read("swaps", r.bool) ?? p.placement.swaps
            p.placement.maxMigrationsPerRun = lm.read("maxMigrationsPerRun") { r.int($0, $1, min: 0, max: 100_000) }
                ?? p.placement.maxMigrationsPerRun
            p.placement.maxConcurrentPerHost = lm.read("maxConcurrentPerHost") { r.int($0, $1, min: 1, max: 64) }
                ?? p.placement.maxConcurrentPerHost
            p.placement.minResidencySeconds = lm.read("minResidency", r.durationSeconds)
                ?? p.placement.minResidencySeconds
            p.placement.minGain = lm.read("minGain") { r.number($0, $1, min: 0, max: 1) } ?? p.placement.minGain
            p.placement.migrationThreshold = lm.read("migrationThreshold") { r.int($0, $1, min: 1, max: 5) }
                ?? p.placement.migrationThreshold
        }
        if let a = m["automation"] { readAutomation(a, into: &p, r) }
        p.allocationRatio = m.read("allocationRatio") { readAllocationRatio($0, $1, r) } ?? AllocationRatio()
        if let c = m["consolidation"], let cm = r.mapping(c, "consolidation", allowed: SpecKeys.consolidation.keys) {
            var k = p.consolidation
            k.enabled = cm.read("enabled", r.bool) ?? k.enabled
            k.targetUtilization = cm.read("targetUtilization", r.fraction) ?? k.targetUtilization
            k.lowUtilization = cm.read("lowUtilization", r.fraction) ?? k.lowUtilization
            k.targetBand = cm.read("targetBand", r.fraction) ?? k.targetBand
            k.minHostsOn = cm.read("minHostsOn") { r.int($0, $1, min: 1, max: 1_000_000) } ?? k.minHostsOn
            k.spareHosts = cm.read("spareHosts") { r.int($0, $1, min: 0, max: 1_000_000) } ?? k.spareHosts
            k.powerOffAfterSeconds = cm.read("powerOffAfter", r.durationSeconds) ?? k.powerOffAfterSeconds
            k.wakeAhead = cm.read("wakeAhead", r.bool) ?? k.wakeAhead
            k.powerCommands = cm.read("powerCommands") { r.oneOf($0, $1, Policy.Consolidation.PowerCommands.self) }
                ?? k.powerCommands
            if let t = cm.read("commandTimeout", r.durationSeconds) {
                if t < 1 { r.error(at: "consolidation.commandTimeout", "must be at least 1s") }
                k.commandTimeoutSeconds = t
            }
            if let low = k.lowUtilization, low >= k.targetUtilization {
                r.error(at: cm["lowUtilization"] != nil ? "consolidation.lowUtilization" : "consolidation",
                        "lowUtilization (\(low)) must be below targetUtilization (\(k.targetUtilization))")
            } else if k.lowUtilization == nil, k.targetBand >= k.targetUtilization {
                r.error(at: cm["targetBand"] != nil ? "consolidation.targetBand" : "consolidation",
                        "targetBand (\(k.targetBand)) must be below targetUtilization (\(k.targetUtilization)): the band's low edge, targetUtilization - targetBand, is the level under which a host is low")
            }
            if k.targetUtilization > p.thresholds.cpu || k.targetUtilization > p.thresholds.mem {
                r.error(at: cm["targetUtilization"] != nil ? "consolidation.targetUtilization" : "consolidation",
                        "targetUtilization (\(k.targetUtilization)) must not exceed the cpu and mem thresholds")
            }
            p.consolidation = k
        }
        if let b = m["balance"], let bm = r.mapping(b, "balance", allowed: SpecKeys.balance.keys) {
            p.balance.enabled = bm.read("enabled", r.bool) ?? p.balance.enabled
            p.balance.maxSpread = bm.read("maxSpread", r.fraction) ?? p.balance.maxSpread
            p.balance.maxMoves = bm.read("maxMoves") { r.int($0, $1, min: 1, max: 100_000) } ?? p.balance.maxMoves
        }
        if let mg = m["migration"], let mm = r.mapping(mg, "migration", allowed: SpecKeys.migration.keys) {
            var g = p.migration
            if let b = mm.read("bandwidth", r.bandwidthMbps) {
                if b < 8 { r.error(at: "migration.bandwidth", "must be at least 8Mbit (libvirt counts whole MiB/s)") }
                g.bandwidthMbps = b
            }
            if let d = mm.read("maxDowntime", r.durationSeconds) {
                if d < 0.001 { r.error(at: "migration.maxDowntime", "must be at least 1ms") }
                g.maxDowntimeMs = d * 1000
            }
            g.autoConverge = mm.read("autoConverge", r.bool) ?? g.autoConverge
            g.postCopy = mm.read("postCopy", r.bool) ?? g.postCopy
            if let t = mm.read("timeoutPerGiB", r.durationSeconds) {
                if t < 0.001 { r.error(at: "migration.timeoutPerGiB", "must be at least 1ms") }
                g.timeoutPerGiBSeconds = t
            }
            g.compressed = mm.read("compressed", r.bool) ?? g.compressed
            g.tls = mm.read("tls", r.bool) ?? g.tls
            p.migration = g
        }
        if let items = m.read("notify", r.sequence) { p.notify = readNotify(items, r) }
        return p
    }

    /// `notify: [{url | urlFile, format: json | slack, events: [...]}]`.
    static func readNotify(_ items: [YAMLNode], _ r: NodeReader) -> [Webhook] {
        var hooks: [Webhook] = []
        for (i, item) in items.enumerated() {
            let path = "notify[\(i)]"
            guard let wm = r.mapping(item, path, allowed: SpecKeys.webhook.keys) else { continue }
            let url = wm.read("url", r.string), file = wm.read("urlFile", r.string)
            let format = wm.read("format") { r.oneOf($0, $1, Webhook.Format.self) } ?? .json
            var events = NotificationEvent.allCases
            if let list = wm.read("events", r.sequence) {
                events = list.enumerated().compactMap { r.oneOf($1, "\(path).events[\($0)]", NotificationEvent.self) }
                if list.isEmpty { r.error(at: wm.field("events"), "list at least one event (or leave events out for all)") }
            }
            let address: Webhook.Address
            switch (url, file) {
            case (let u?, nil):
                if let problem = Webhook.problem(url: u) { r.error(at: wm.field("url"), problem); continue }
                address = .url(u)
            case (nil, let f?):
                if f.isEmpty { r.error(at: wm.field("urlFile"), "the path is empty"); continue }
                address = .file(f)
            case (.some, .some):
                r.error(at: wm.field("urlFile"), "a webhook has either url or urlFile, not both"); continue
            case (nil, nil):
                if wm["url"] == nil && wm["urlFile"] == nil {
                    r.error(item.mark, path, "missing required field url or urlFile")
                }
                continue
            }
            hooks.append(Webhook(address: address, format: format, events: events))
        }
        return hooks
    }
}
