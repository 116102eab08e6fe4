import Foundation
import SandpiperLibvirt
import SandpiperModel
import SandpiperPlanner

/// A power command that failed: the message, what it printed and the host's power state as confirmed by its
/// status command (nil when unknown: the state file then keeps what it recorded before).
struct PowerFailure: Error, CustomStringConvertible {
    var message: String
    var output: String?
    var powered: (host: String, on: Bool)?
    var description: String { message }
}

struct HostActionResult {
    var detail: String?
    var output: String?
    var powered: (host: String, on: Bool)?
}

/// Host actions of consolidation: drain (check the host is empty), power-off and power-on through the commands
/// declared in `hosts[].power`, only when the policy says `consolidation.powerCommands: allow`.
extension Applier {
    func hostAction(_ action: PlanDocument.Action) throws -> HostActionResult {
        guard let host = action.host, let spec = cluster.spec.host(named: host) else {
            throw ApplyError("\(action.kind.rawValue): the action names no host of the spec")
        }
        switch action.kind {
        case .drain:
            let left = try residents(host)
            guard left.isEmpty else {
                throw ApplyError("\(host) still holds \(left.joined(separator: ", ")); it is not powered off")
            }
            return HostActionResult(detail: "\(host) holds no VM")
        case .powerOff, .powerOn:
            let on = action.kind == .powerOn
            guard let power = spec.power else {
                throw ApplyError("\(host) declares no power commands (hosts[].power in cluster.yaml)")
            }
            let policy = cluster.policy
            guard policy.consolidation.powerCommands == .allow else {
                throw ApplyError("refusing to run \(host)'s power-\(on ? "on" : "off") command: policy \(policy.name) "
                    + "does not allow power commands (consolidation.powerCommands: deny). They run on this machine "
                    + "with Sandpiper's privileges and anyone who can commit to the repository can change them; "
                    + "set consolidation.powerCommands: allow where that is acceptable")
            }
            if !on {
                let left = try residents(host)
                guard left.isEmpty else {
                    throw ApplyError("\(host) still holds \(left.joined(separator: ", ")); refusing to power it off")
                }
            }
            guard options.runsPowerCommands else {
                // `simulate`: the power state changes as apply would leave it, and no command runs — a copied
                // production spec must never reach real BMCs from a simulation.
                return HostActionResult(detail: "\(host) powered \(on ? "on" : "off") (simulated: no command run)",
                                        powered: (host, on))
            }
            let timeout = policy.consolidation.commandTimeoutSeconds
            let command = PowerCommand(argv: on ? power.on : power.off, timeoutSeconds: timeout)
            let result: PowerCommand.Result
            do { result = try command.run() } catch {
                let actual = confirm(power, host: host, want: nil, timeout: timeout)
                throw PowerFailure(message: "\(error)" + stateNote(actual), output: nil,
                                   powered: actual.map { (host, $0) })
            }
            guard result.succeeded else {
                let actual = confirm(power, host: host, want: nil, timeout: timeout)
                let how = result.timedOut ? "timed out after \(Units.formatSeconds(timeout))"
                    : "exited with status \(result.exitCode.map(String.init) ?? "?")"
                throw PowerFailure(message: "\(command.display) \(how)" + stateNote(actual), output: result.output,
                                   powered: actual.map { (host, $0) })
            }
            if power.status != nil {
                let actual = confirm(power, host: host, want: on, timeout: timeout)
                guard actual == on else {
                    throw PowerFailure(
                        message: "\(command.display) succeeded but the status command "
                            + (actual.map { "still reports \($0 ? "on" : "off")" } ?? "gave no answer")
                            + stateNote(actual),
                        output: result.output, powered: actual.map { (host, $0) })
                }
            }
            var detail = "\(host) powered \(on ? "on" : "off") (\(command.display))"
            if on && connections.connection(host) == nil {
                // Booting: wait (up to the command timeout) for libvirt to answer, so the migrations onto the host
                // that depend on this action find it. Still not answering: the host is on; they fail, state true.
                let deadline = Date().addingTimeInterval(timeout)
                connections.reopen(host)
                while connections.connection(host) == nil && Date() < deadline {
                    Thread.sleep(forTimeInterval: min(5, max(0, deadline.timeIntervalSinceNow)))
                    connections.reopen(host)
                }
                if connections.connection(host) == nil {
                    detail += "; libvirt on \(host) does not answer yet (\(connections.failure(host) ?? "not connected"))"
                }
            }
            return HostActionResult(detail: detail,
                                    output: result.output.isEmpty ? nil : result.output, powered: (host, on))
        case .define, .start, .tune, .resize, .migrate, .stop, .undefine:
            throw ApplyError("\(action.kind.rawValue) is not a host action")
        }
    }

    /// Domains still defined on `host` (none when it is already in standby).
    private func residents(_ host: String) throws -> [String] {
        guard let c = connections.connection(host) else {
            throw ApplyError("host \(host) is unreachable: \(connections.failure(host) ?? "not connected")")
        }
        return try c.domains().map(\.name).sorted()
    }

    /// The host's power state per its status command: polled until it reports `want` (when given) or the
    /// timeout passes; nil without a status command or an answer.
    private func confirm(_ power: HostPower, host: String, want: Bool?, timeout: Double) -> Bool? {
        guard let status = power.status else { return nil }
        let deadline = Date().addingTimeInterval(timeout)
        var last: Bool?
        repeat {
            if let r = try? PowerCommand(argv: status, timeoutSeconds: min(timeout, 30)).run(), r.succeeded {
                last = PowerCommand.poweredOn(statusOutput: r.output)
            }
            if want == nil || last == want { return last }
            Thread.sleep(forTimeInterval: 1)
        } while Date() < deadline
        return last
    }

    private func stateNote(_ actual: Bool?) -> String {
        actual.map { "; the status command reports the host \($0 ? "on" : "off"), recorded so" }
            ?? "; the host's recorded power state is unchanged"
    }
}

extension Engine {
    /// Sustained-low bookkeeping for consolidation, done before planning: each up host that is low now
    /// (`policy.consolidation.isLow` on its profiled utilization) keeps the `lowSince` the state recorded, or gets
    /// `now`; any other host loses it. Updates the snapshot's observation (the planner's input) and the state's
    /// inventory alike; returns true when the state changed. A no-op unless consolidation is enabled.
    @discardableResult
    public static func recordLowSince(_ cluster: LoadedCluster, snapshot: inout FleetSnapshot,
                                      state: inout StateDocument) -> Bool {
        guard cluster.policy.consolidation.enabled else { return false }
        let policy = cluster.policy
        let hosts = Planner.hostsBefore(spec: cluster.spec, observation: snapshot.observation, policy: policy)
        let low = Dictionary(hosts.map { h in
            (h.name, h.status == .up && policy.consolidation.isLow(cpu: h.cpu, net: h.net, mem: h.mem))
        }, uniquingKeysWith: { a, _ in a })
        let now = snapshot.observation.now
        let recorded = Dictionary((state.inventory?.hosts ?? []).map { ($0.name, $0.lowSince) },
                                  uniquingKeysWith: { a, _ in a })
        var observation = snapshot.observation
        for i in observation.hosts.indices {
            let name = observation.hosts[i].name
            observation.hosts[i].lowSince = low[name] == true ? ((recorded[name] ?? nil) ?? now) : nil
        }
        snapshot.observation = observation
        var inv = state.inventory ?? observation.withoutSamples
        let since = Dictionary(observation.hosts.map { ($0.name, $0.lowSince) }, uniquingKeysWith: { a, _ in a })
        var changed = state.inventory == nil
        for i in inv.hosts.indices {
            let new = since[inv.hosts[i].name] ?? nil
            if inv.hosts[i].lowSince != new { inv.hosts[i].lowSince = new; changed = true }
        }
        state.inventory = inv
        return changed
    }
}
