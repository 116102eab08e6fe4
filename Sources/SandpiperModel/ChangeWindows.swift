import Foundation

/// `automation: {windows: [...]}`: when moves may be applied. Outside every allow window (or inside a deny window)
/// migrations and host power actions are proposed, not applied, as with `partial`; allocations still apply.
/// Windows are evaluated on the wall clock (the reconciler's clock), also for trace clusters.
public struct ChangeWindows: Sendable, Equatable, Codable {
    public var windows: [ChangeWindow]
    /// Constraint-repair moves (pins, must-rules, maintenance evacuation) apply even when moves are closed.
    public var repairOverridesWindows: Bool

    public init(windows: [ChangeWindow] = [], repairOverridesWindows: Bool = false) {
        self.windows = windows; self.repairOverridesWindows = repairOverridesWindows
    }

    /// Moves are open at `date` when no allow window is declared or one contains it, and no deny window does.
    public func movesOpen(at date: Date) -> Bool {
        let allows = windows.filter { $0.effect == .allow }
        if !allows.isEmpty && !allows.contains(where: { $0.contains(date) }) { return false }
        return !windows.contains { $0.effect == .deny && $0.contains(date) }
    }
}

/// One window: `allow: "Mon-Fri 22:00-06:00"` or `deny: "Sat,Sun 00:00-24:00"`, with an optional `timezone`
/// (IANA name, default UTC). A range whose end is not after its start runs past midnight into the next day: it
/// starts on the listed days.
public struct ChangeWindow: Sendable, Equatable, Codable {
    public enum Effect: String, Sendable, Codable, CaseIterable { case allow, deny }
    public var effect: Effect
    /// ISO weekdays, 1 = Monday ... 7 = Sunday.
    public var days: Set<Int>
    /// Minutes after local midnight: start in 0..<1440, end in 1...1440.
    public var startMinute: Int
    public var endMinute: Int
    public var timeZone: String

    public static let dayNames = ["Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"]

    public init(effect: Effect, days: Set<Int>, startMinute: Int, endMinute: Int, timeZone: String = "UTC") {
        self.effect = effect; self.days = days; self.startMinute = startMinute; self.endMinute = endMinute
        self.timeZone = timeZone
    }

    /// Parses `[DAYS ]HH:MM-HH:MM`; DAYS is a comma list of days or day ranges (`Mon-Fri`, `Fri-Mon`, `Sat,Sun`),
    /// every day when omitted. Returns the error message on failure.
    public static func parse(_ text: String, effect: Effect, timeZone: String) -> Result<ChangeWindow, ParseError> {
        let parts = text.split(separator: " ", omittingEmptySubsequences: true).map(String.init)
        guard parts.count == 1 || parts.count == 2 else {
            return .failure(ParseError("\"\(text)\" is not a window (expected e.g. \"Mon-Fri 22:00-06:00\")"))
        }
        var days = Set(1...7)
        if parts.count == 2 {
            days = []
            for item in parts[0].split(separator: ",", omittingEmptySubsequences: false) {
                let ends = item.split(separator: "-", omittingEmptySubsequences: false).map(String.init)
                let numbers = ends.map { d in dayNames.firstIndex { $0.lowercased() == d.lowercased() }.map { $0 + 1 } }
                guard ends.count <= 2, let first = numbers.first ?? nil, let last = numbers.last ?? nil else {
                    return .failure(ParseError("\"\(item)\" is not a day or day range (Mon..Sun, e.g. Mon-Fri)"))
                }
                var d = first
                while true { days.insert(d); if d == last { break }; d = d % 7 + 1 }
            }
        }
        let times = parts[parts.count - 1].split(separator: "-", omittingEmptySubsequences: false).map(String.init)
        guard times.count == 2, let start = minutes(times[0]), let end = minutes(times[1]), start < 1440, end > 0
        else {
            return .failure(ParseError("\"\(parts[parts.count - 1])\" is not a time range (HH:MM-HH:MM, end up to 24:00)"))
        }
        guard start != end else { return .failure(ParseError("the window \"\(text)\" is empty (start equals end)")) }
        return .success(ChangeWindow(effect: effect, days: days, startMinute: start, endMinute: end, timeZone: timeZone))
    }

    public struct ParseError: Error, Sendable { public var message: String; init(_ m: String) { message = m } }

    static func minutes(_ text: String) -> Int? {
        let hm = text.split(separator: ":", omittingEmptySubsequences: false)
        guard hm.count == 2, hm[0].count == 2, hm[1].count == 2, let h = Int(hm[0]), let m = Int(hm[1]),
              (0...24).contains(h), (0..<60).contains(m), h * 60 + m <= 1440 else { return nil }
        return h * 60 + m
    }

    /// True when `date`, in the window's time zone (local wall time, so DST shifts it), falls inside.
    public func contains(_ date: Date) -> Bool {
        var calendar = Calendar(identifier: .gregorian)
        calendar.timeZone = TimeZone(identifier: timeZone) ?? TimeZone(identifier: "UTC")!
        let c = calendar.dateComponents([.weekday, .hour, .minute], from: date)
        let day = (c.weekday! + 5) % 7 + 1  // Gregorian weekday 1 = Sunday -> ISO 7
        let minute = c.hour! * 60 + c.minute!
        if startMinute < endMinute { return days.contains(day) && minute >= startMinute && minute < endMinute }
        // Past midnight: the evening part on a listed day, the morning part on the day after one.
        let previous = (day + 5) % 7 + 1
        return (days.contains(day) && minute >= startMinute) || (days.contains(previous) && minute < endMinute)
    }
}
