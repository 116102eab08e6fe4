import Foundation
import Logging
import SandpiperEngine
import SandpiperGitOps
import SandpiperModel

/// Turns a cluster's rounds into notifications about what changed since the previous round: a hotspot that stays
/// open, a proposal left unchanged or a spec that stays broken is told once, not every round.
struct RoundNotifications {
    let cluster: String
    private var open: Set<String> = []
    private var unresolved: Set<String> = []
    private var pending: [String] = []
    private var invalidSpec: String?
    private var failed: Set<String> = []

    init(cluster: String) { self.cluster = cluster }

    /// The key a hotspot is followed by from round to round (the metrics count with the same one).
    static func key(_ h: PlanDocument.HotspotEntry) -> String { "\(h.host)/\(h.vm ?? "")/\(h.resource)" }

    static func describe(_ h: PlanDocument.HotspotEntry) -> String {
        let subject = h.vm.map { "\($0) on \(h.host)" } ?? h.host
        return "\(subject): \(h.resource) over \(Units.trim(h.threshold)) in \(h.over) samples"
            + (h.predicted.map { ", predicted \(String(format: "%.2f", $0))" } ?? "")
    }

    static func describe(_ a: PlanDocument.Action) -> String {
        var s = "\(a.kind.rawValue) \(a.vm)"
        if let from = a.from, let to = a.to { s += " \(from) -> \(to)" } else if let h = a.host ?? a.to { s += " on \(h)" }
        return s
    }

    /// The notifications of a round that planned (and maybe applied).
    mutating func events(_ outcome: ReconcileOutcome, at time: Date) -> [WebhookMessage] {
        var out: [WebhookMessage] = []
        if let plan = outcome.plan {
            let hot = plan.hotspots.filter(\.counts)
            let now = Set(hot.map(Self.key))
            var seen = open
            let new = hot.filter { seen.insert(Self.key($0)).inserted }
            if !new.isEmpty {
                let unique = new, keys = new
                out.append(WebhookMessage(event: .hotspotDetected, cluster: cluster, time: time, plan: plan.id,
                                        hosts: Self.sorted(unique.map(\.host)), vms: Self.sorted(unique.compactMap(\.vm)),
                                        summary: "\(keys.count) hotspot\(keys.count == 1 ? "" : "s") detected",
                                        details: unique.map(Self.describe)))
            }
            let gone = open.subtracting(now).sorted()
            if !gone.isEmpty {
                let parts = gone.map { $0.split(separator: "/", omittingEmptySubsequences: false).map(String.init) }
                out.append(WebhookMessage(event: .hotspotResolved, cluster: cluster, time: time, plan: plan.id,
                                        hosts: Self.sorted(parts.map { $0[0] }),
                                        vms: Self.sorted(parts.map { $0[1] }.filter { !$0.isEmpty }),
                                        summary: "\(gone.count) hotspot\(gone.count == 1 ? "" : "s") resolved",
                                        details: parts.map { p in (p[1].isEmpty ? p[0] : "\(p[1]) on \(p[0])") + ": \(p[2]) no longer over its threshold" }))
            }
            open = now
            let unresolvedNow = Dictionary(plan.unresolved.map { (Self.key($0), $0) }) { a, _ in a }
            let newUnresolved = plan.unresolved.filter { !unresolved.contains(Self.key($0)) }
            if !newUnresolved.isEmpty {
                out.append(WebhookMessage(event: .hotspotUnresolved, cluster: cluster, time: time, plan: plan.id,
                                        hosts: Self.sorted(newUnresolved.compactMap(\.host)),
                                        vms: Self.sorted(newUnresolved.compactMap(\.vm)),
                                        summary: "\(newUnresolved.count) hotspot\(newUnresolved.count == 1 ? "" : "s") the plan cannot relieve",
                                        details: newUnresolved.map { u in
                                            "\(u.vm.map { "\($0) on " } ?? "")\(u.host ?? "?") (\(u.resources.joined(separator: ", "))): \(u.reason)"
                                        }))
            }
            unresolved = Set(unresolvedNow.keys)
        }
        // A proposal is told when its actions change (a new plan), not again each round it waits.
        let proposed = (outcome.proposal?.actions ?? []).map(Self.describe)
        if !proposed.isEmpty && proposed != pending {
            let actions = outcome.proposal?.actions ?? []
            var details = proposed
            if let file = outcome.proposalFile { details.append("saved as \(file)") }
            if let branch = outcome.proposalBranch { details.append("proposed on branch \(branch)") }
            let why = outcome.outsideChangeWindow ? "outside the change windows" : "automation \(outcome.automation.rawValue)"
            out.append(WebhookMessage(event: .planPendingReview, cluster: cluster, time: time, plan: outcome.proposal?.id,
                                    hosts: Self.sorted(actions.flatMap { [$0.host, $0.from, $0.to].compactMap { $0 } }),
                                    vms: Self.sorted(actions.map(\.vm)),
                                    summary: "\(actions.count) action\(actions.count == 1 ? "" : "s") pending review (\(why))",
                                    details: details))
        }
        pending = proposed
        // The same action failing the same way round after round (a broken template) is told once.
        var failedNow: Set<String> = []
        for (document, report) in zip(outcome.applied, outcome.reports) {
            let failed = report.outcomes.filter { $0.status == .failed }.filter {
                let key = $0.summary + ($0.detail ?? "")
                failedNow.insert(key)
                return !self.failed.contains(key)
            }
            guard !failed.isEmpty else { continue }
            let actions = Dictionary(document.actions.map { ($0.id, $0) }) { a, _ in a }
            let involved = failed.compactMap { actions[$0.actionID] }
            out.append(WebhookMessage(event: .applyFailed, cluster: cluster, time: time, plan: report.planID,
                                    hosts: Self.sorted(involved.flatMap { [$0.host, $0.from, $0.to].compactMap { $0 } }),
                                    vms: Self.sorted(involved.map(\.vm)),
                                    summary: "\(failed.count) action\(failed.count == 1 ? "" : "s") failed",
                                    details: failed.map { "\($0.summary)" + ($0.detail.map { ": \($0)" } ?? "") }))
        }
        failed = failedNow
        return out
    }

    /// The spec (or policy) read this round is invalid: told once per distinct error.
    mutating func specInvalid(_ error: String, at time: Date) -> WebhookMessage? {
        guard error != invalidSpec else { return nil }
        invalidSpec = error
        return WebhookMessage(event: .specInvalid, cluster: cluster, time: time,
                            summary: "the spec is invalid; running on the last good spec",
                            details: error.split(separator: "\n").map(String.init))
    }

    /// The spec read is valid again.
    mutating func specValid() { invalidSpec = nil }

    static func key(_ u: PlanDocument.Unresolved) -> String {
        "\(u.host ?? "")/\(u.vm ?? "")/\(u.resources.joined(separator: ","))"
    }

    private static func sorted(_ names: [String]) -> [String] { Array(Set(names)).sorted() }
}

/// Notifications of a one-shot `reconcile`: what this run saw, with no previous round to compare with (every
/// open hotspot is "detected", nothing is "resolved"), delivered before the command exits within `flushSeconds`.
public enum OneShotNotifications {
    /// Sends the run's events to the policy's webhooks; returns the delivery outcomes (for the metrics file).
    @discardableResult
    public static func deliver(_ outcome: ReconcileOutcome?, loadError: String? = nil, webhooks: [Webhook],
                               policiesDirectory: URL, cluster: String, options: Notifier.Options = Notifier.Options(),
                               flushSeconds: Double = 5, logger: Logger) -> [Notifier.Result] {
        guard !webhooks.isEmpty else { return [] }
        let (targets, problems) = Notifier.targets(webhooks, relativeTo: policiesDirectory)
        for p in problems { logger.error("webhook left out", metadata: ["error": "\(p)"]) }
        final class Results: @unchecked Sendable {
            let lock = NSLock()
            var list: [Notifier.Result] = []
        }
        let results = Results()
        let notifier = Notifier(targets: targets, options: options, logger: logger) { r in
            results.lock.lock(); results.list.append(r); results.lock.unlock()
        }
        var tracker = RoundNotifications(cluster: cluster)
        var events: [WebhookMessage] = []
        if let outcome { events = tracker.events(outcome, at: Date()) }
        if let loadError, let n = tracker.specInvalid(loadError, at: Date()) { events.append(n) }
        for n in events { notifier.send(n) }
        let left = notifier.flush(timeout: flushSeconds)
        notifier.close()
        if left > 0 { logger.warning("notifications not delivered before exit", metadata: ["count": .stringConvertible(left)]) }
        results.lock.lock(); defer { results.lock.unlock() }
        return results.list
    }
}
