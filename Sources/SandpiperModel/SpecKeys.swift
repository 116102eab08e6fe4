/// The decoder's key tables: for each mapping of cluster.yaml and policy files, the keys it accepts (in the order
/// "expected one of" lists them), what each holds, and which are required. `SpecDecoder` takes its allowed keys
/// from here and `SpecSchema` generates the JSON Schema from the same tables, so the two cannot drift apart.
public indirect enum FieldType: Sendable {
    case name
    case string
    case int(min: Int, max: Int)
    case number(min: Double?, max: Double?)
    /// `512MiB`, `2GiB`, `1TiB` (`M G T` too).
    case size
    /// `100Mbit`, `1Gbit`.
    case bandwidth
    /// `500ms`, `10s`, `5m`, `1h`.
    case duration
    /// `0.75` or `75%`, in (0, 1].
    case fraction
    case bool
    case oneOf([String])
    /// A mapping of names to strings (labels).
    case stringMap
    /// A list of strings (a command's argv).
    case argv
    /// low | normal | high | a whole number 1-1000000.
    case shares
    case object(KeyTable)
    case list(FieldType)
    /// A mapping whose keys are names and whose values all have one type (`slas:`).
    case namedMap(FieldType)
    /// Any one of several forms (`automation: full` or `automation: {level: full, windows: [...]}`).
    case either([FieldType])
}

public struct KeyTable: Sendable {
    public var fields: [(key: String, type: FieldType)] { didSet { keys = fields.map(\.key) } }
    public var required: [String]
    /// Stored, not computed: the decoder asks for a mapping's keys once per mapping (20,000 VMs, 20,000 times).
    public private(set) var keys: [String]
    public init(_ fields: [(String, FieldType)], required: [String] = []) {
        self.fields = fields.map { (key: $0.0, type: $0.1) }; self.required = required
        keys = self.fields.map(\.key)
    }
}

public enum SpecKeys {
    static func values<T: RawRepresentable & CaseIterable>(_ t: T.Type) -> [String] where T.RawValue == String {
        T.allCases.map(\.rawValue)
    }

    static let header: [(String, FieldType)] = [("apiVersion", .oneOf([SpecDecoder.apiVersion]))]

    public static let thresholds = KeyTable([("cpu", .fraction), ("net", .fraction), ("mem", .fraction)])
    /// `telemetry.queries`: PromQL per resource for `source: prometheus`.
    public static let prometheusQueries = KeyTable([("cpu", .string), ("memory", .string), ("network", .string)])
    public static let telemetry = KeyTable([("source", .oneOf(values(Telemetry.Source.self))), ("trace", .string),
                                            ("interval", .duration), ("hostLoad", .bool), ("url", .string),
                                            ("credentialsFile", .string), ("queries", .object(prometheusQueries)),
                                            ("timeout", .duration)])
    public static let sla = KeyTable([("thresholds", .object(thresholds)),
                                      ("migration", .oneOf(values(MigrationMode.self)))])
    public static let reserved = KeyTable([("cpus", .number(min: 0, max: nil)), ("memory", .size)])
    public static let capacity = KeyTable([("cpus", .number(min: 0.01, max: nil)), ("memory", .size),
                                           ("network", .bandwidth), ("reserved", .object(reserved))])
    public static let allocationRatio = KeyTable([("cpu", .number(min: 0.01, max: 1000)),
                                                  ("memory", .number(min: 0.01, max: 1000))])
    public static let power = KeyTable([("on", .argv), ("off", .argv), ("status", .argv)], required: ["on", "off"])
    public static let host = KeyTable([
        ("name", .name), ("uri", .string), ("capacity", .object(capacity)), ("maintenance", .bool),
        ("labels", .stringMap), ("power", .object(power)), ("allocationRatio", .object(allocationRatio)),
        ("schedulable", .bool), ("storage", .oneOf(values(StorageMode.self))), ("sharedPools", .list(.string)),
    ], required: ["name", "uri"])
    public static let control = KeyTable([("reservation", .number(min: 0, max: nil)), ("limit", .number(min: 0, max: nil)),
                                          ("shares", .shares)])
    /// Memory controls take sizes where CPU controls take cores.
    public static let memoryControl = KeyTable([("reservation", .size), ("limit", .size), ("shares", .shares)])
    public static let resources = KeyTable([("cpu", .object(control)), ("memory", .object(memoryControl))])
    public static let placement = KeyTable([("host", .name), ("labels", .stringMap)])
    public static let vm = KeyTable([
        ("name", .name), ("vcpus", .int(min: 1, max: 4096)), ("memory", .size), ("sla", .name), ("template", .string),
        ("resources", .object(resources)), ("placement", .object(placement)),
        ("automation", .oneOf(values(VMAutomation.self))), ("storage", .oneOf(values(StorageMode.self))),
    ], required: ["name", "vcpus", "memory"])
    public static let group = KeyTable([
        ("name", .name), ("vms", .list(.name)), ("rule", .oneOf(values(GroupSpec.Rule.self))),
        ("enforcement", .oneOf(values(GroupSpec.Enforcement.self))),
    ], required: ["name", "vms", "rule"])
    public static let cluster = KeyTable(header + [
        ("kind", .oneOf(["Cluster"])), ("name", .name), ("policy", .name), ("telemetry", .object(telemetry)),
        ("slas", .namedMap(.object(sla))), ("hosts", .list(.object(host))), ("vms", .list(.object(vm))),
        ("groups", .list(.object(group))),
    ], required: ["apiVersion", "kind", "name", "hosts"])

    public static let window = KeyTable([("k", .int(min: 1, max: 1000)), ("n", .int(min: 1, max: 1000))])
    public static let prediction = KeyTable([("model", .oneOf(values(Policy.Prediction.Model.self))),
                                             ("order", .int(min: 0, max: 16))])
    public static let profiling = KeyTable([
        ("percentile", .number(min: 1, max: 100)), ("headroom", .number(min: 0, max: 10)), ("memoryStep", .size),
        ("guestFreeTarget", .size), ("mode", .oneOf(values(Policy.Profiling.Mode.self))),
    ])
    public static let policyPlacement = KeyTable([
        ("swaps", .bool), ("maxMigrationsPerRun", .int(min: 0, max: 100_000)),
        ("maxConcurrentPerHost", .int(min: 1, max: 64)), ("minResidency", .duration),
        ("minGain", .number(min: 0, max: 1)), ("migrationThreshold", .int(min: 1, max: 5)),
    ])
    /// `balance:` in the policy: load balancing under the thresholds.
    public static let balance = KeyTable([
        ("enabled", .bool), ("maxSpread", .fraction), ("maxMoves", .int(min: 1, max: 100_000)),
    ])
    public static let consolidation = KeyTable([
        ("enabled", .bool), ("targetUtilization", .fraction), ("lowUtilization", .fraction),
        ("targetBand", .fraction), ("minHostsOn", .int(min: 1, max: 1_000_000)), ("spareHosts", .int(min: 0, max: 1_000_000)),
        ("powerOffAfter", .duration), ("wakeAhead", .bool),
        ("powerCommands", .oneOf(values(Policy.Consolidation.PowerCommands.self))), ("commandTimeout", .duration),
    ])
    /// `migration:` in the policy: what libvirt is told for every live migration.
    public static let migration = KeyTable([
        ("bandwidth", .bandwidth), ("maxDowntime", .duration), ("autoConverge", .bool), ("postCopy", .bool),
        ("timeoutPerGiB", .duration), ("compressed", .bool), ("tls", .bool),
    ])
    /// `automation.windows[]`: exactly one of allow / deny (the decoder checks), optional time zone.
    public static let changeWindow = KeyTable([("allow", .string), ("deny", .string), ("timezone", .string)])
    public static let automation = KeyTable([
        ("level", .oneOf(values(Policy.Automation.self))), ("windows", .list(.object(changeWindow))),
        ("repairOverridesWindows", .bool),
    ])
    /// `notify[]`: exactly one of url / urlFile (the decoder checks).
    public static let webhook = KeyTable([
        ("url", .string), ("urlFile", .string), ("format", .oneOf(values(Webhook.Format.self))),
        ("events", .list(.oneOf(values(NotificationEvent.self)))),
    ])
    public static let policy = KeyTable(header + [
        ("kind", .oneOf(["Policy"])), ("thresholds", .object(thresholds)), ("window", .object(window)),
        ("prediction", .object(prediction)), ("profiling", .object(profiling)),
        ("placement", .object(policyPlacement)), ("automation", .either([.oneOf(values(Policy.Automation.self)), .object(automation)])),
        ("consolidation", .object(consolidation)), ("allocationRatio", .object(allocationRatio)),
        ("migration", .object(migration)), ("balance", .object(balance)), ("notify", .list(.object(webhook))),
    ], required: ["apiVersion", "kind"])
}
