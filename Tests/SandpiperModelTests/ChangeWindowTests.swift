import Foundation
import SandpiperModel
import XCTest

/// `automation.windows`: parsing, evaluation (across midnight, days, time zones, DST) and strict decoding.
final class ChangeWindowTests: XCTestCase {
    /// An instant given in UTC (ISO 8601, independent oracle for the local times below).
    func utc(_ text: String) -> Date { ISO8601DateFormatter().date(from: text)! }

    func window(_ text: String, _ effect: ChangeWindow.Effect = .allow, zone: String = "UTC") throws -> ChangeWindow {
        try ChangeWindow.parse(text, effect: effect, timeZone: zone).get()
    }

    func testRangePastMidnightStartsOnTheListedDays() throws {
        let w = try window("Mon-Fri 22:00-06:00")
        // 2026-12-04 is a Friday, 2026-12-05 a Saturday, 2026-12-07 a Monday.
        XCTAssertTrue(w.contains(utc("2026-12-04T22:00:00Z")), "Friday evening: start is inside")
        XCTAssertTrue(w.contains(utc("2026-12-05T05:59:00Z")), "Saturday morning continues Friday's window")
        XCTAssertFalse(w.contains(utc("2026-12-05T06:00:00Z")), "end is outside")
        XCTAssertFalse(w.contains(utc("2026-12-05T22:30:00Z")), "Saturday evening: not a listed day")
        XCTAssertFalse(w.contains(utc("2026-12-07T03:00:00Z")), "Monday morning follows Sunday, not listed")
        XCTAssertTrue(w.contains(utc("2026-12-08T03:00:00Z")), "Tuesday morning follows Monday")
        XCTAssertFalse(w.contains(utc("2026-12-04T21:59:00Z")))
        XCTAssertFalse(w.contains(utc("2026-12-04T12:00:00Z")))
    }

    func testDayListsWrappingRangesAndWholeDays() throws {
        let weekend = try window("Sat,Sun 00:00-24:00", .deny)
        XCTAssertTrue(weekend.contains(utc("2026-12-05T00:00:00Z")))
        XCTAssertTrue(weekend.contains(utc("2026-12-06T23:59:00Z")))
        XCTAssertFalse(weekend.contains(utc("2026-12-07T00:00:00Z")), "Monday 00:00")
        XCTAssertEqual(try window("Fri-Mon 08:00-09:00").days, [5, 6, 7, 1], "a range may wrap past Sunday")
        XCTAssertEqual(try window("09:00-17:00").days, Set(1...7), "no days: every day")
        XCTAssertEqual(try window("sat 09:00-17:00").days, [6], "day names are case-insensitive")
    }

    func testTimeZonesAndDaylightSavingTime() throws {
        let berlin = try window("Mon-Fri 08:00-18:00", zone: "Europe/Berlin")
        // Friday 2026-03-27: CET (UTC+1). 07:30Z = 08:30 local.
        XCTAssertTrue(berlin.contains(utc("2026-03-27T07:30:00Z")))
        XCTAssertFalse(berlin.contains(utc("2026-03-27T06:30:00Z")), "07:30 local")
        // Monday 2026-03-30, after the switch to CEST (UTC+2) on Sunday 29th: 06:30Z = 08:30 local (a fixed
        // +1 offset would say 07:30, outside).
        XCTAssertTrue(berlin.contains(utc("2026-03-30T06:30:00Z")))
        XCTAssertFalse(berlin.contains(utc("2026-03-30T05:30:00Z")))
        XCTAssertTrue(berlin.contains(utc("2026-03-30T15:59:00Z")), "17:59 CEST")
        XCTAssertFalse(berlin.contains(utc("2026-03-30T16:00:00Z")), "18:00 CEST")
        // The night of the switch back (Sunday 2026-10-25, 03:00 CEST -> 02:00 CET): a night window holds
        // both 02:30s and ends at 04:00 local = 03:00Z.
        let night = try window("Sat 23:00-04:00", zone: "Europe/Berlin")
        XCTAssertTrue(night.contains(utc("2026-10-25T00:30:00Z")), "02:30 CEST")
        XCTAssertTrue(night.contains(utc("2026-10-25T01:30:00Z")), "02:30 CET")
        XCTAssertTrue(night.contains(utc("2026-10-25T02:59:00Z")), "03:59 CET")
        XCTAssertFalse(night.contains(utc("2026-10-25T03:00:00Z")), "04:00 CET")
        // Another zone, another day: Tuesday 2026-12-01 23:30Z is Wednesday 08:30 in Tokyo.
        let tokyo = try window("Wed 08:00-09:00", zone: "Asia/Tokyo")
        XCTAssertTrue(tokyo.contains(utc("2026-12-01T23:30:00Z")))
        XCTAssertFalse(try window("Wed 08:00-09:00").contains(utc("2026-12-01T23:30:00Z")))
    }

    func testAllowAndDenyCombine() throws {
        let w = ChangeWindows(windows: [try window("Mon-Fri 22:00-06:00"), try window("Fri 23:00-24:00", .deny)])
        XCTAssertTrue(w.movesOpen(at: utc("2026-12-01T23:00:00Z")), "Tuesday night")
        XCTAssertFalse(w.movesOpen(at: utc("2026-12-04T23:30:00Z")), "Friday 23:30 is denied")
        XCTAssertFalse(w.movesOpen(at: utc("2026-12-01T12:00:00Z")), "outside every allow window")
        XCTAssertTrue(ChangeWindows().movesOpen(at: utc("2026-12-01T12:00:00Z")), "no windows: always open")
        let denyOnly = ChangeWindows(windows: [try window("Sat,Sun 00:00-24:00", .deny)])
        XCTAssertTrue(denyOnly.movesOpen(at: utc("2026-12-01T12:00:00Z")), "only deny windows: open elsewhere")
        XCTAssertFalse(denyOnly.movesOpen(at: utc("2026-12-05T12:00:00Z")))
    }

    func testMalformedWindowsAreRejected() {
        for bad in ["Mon-Fri", "Mon-Fri 22:00", "Mon-Fri 25:00-06:00", "Mon-Fri 22:00-06:60", "Mo 22:00-06:00",
                    "Mon-Fri-Sat 22:00-06:00", "Mon, 22:00-06:00", "10:00-10:00", "Mon 24:00-06:00", "Mon 8:00-9:00",
                    "Mon Tue 08:00-09:00"] {
            XCTAssertThrowsError(try window(bad), bad)
        }
    }

    let head = "apiVersion: sandpiper/v1\nkind: Policy\n"

    func testScalarAndMappingFormsDecode() throws {
        let scalar = try SpecDecoder.decodePolicy(head + "automation: partial\n", file: "p.yaml", name: "p")
        XCTAssertEqual(scalar.automation, .partial)
        XCTAssertEqual(scalar.changeWindows, ChangeWindows())
        let p = try SpecDecoder.decodePolicy(head + """
            automation:
              level: full
              windows:
                - {allow: "Mon-Fri 22:00-06:00", timezone: Europe/Berlin}
                - deny: "Sat-Sun 00:00-24:00"
              repairOverridesWindows: true

            """, file: "p.yaml", name: "p")
        XCTAssertEqual(p.automation, .full)
        XCTAssertTrue(p.changeWindows.repairOverridesWindows)
        XCTAssertEqual(p.changeWindows.windows, [
            ChangeWindow(effect: .allow, days: [1, 2, 3, 4, 5], startMinute: 1320, endMinute: 360, timeZone: "Europe/Berlin"),
            ChangeWindow(effect: .deny, days: [6, 7], startMinute: 0, endMinute: 1440, timeZone: "UTC"),
        ])
    }

    func testBadWindowsNameFileLineColumnAndField() {
        func diagnostics(_ body: String) -> [SpecDiagnostic] {
            do { _ = try SpecDecoder.decodePolicy(head + body, file: "p.yaml", name: "p"); return [] } catch {
                return (error as? SpecErrors)?.diagnostics ?? []
            }
        }
        let zone = diagnostics("automation:\n  level: full\n  windows:\n    - {allow: \"22:00-06:00\", timezone: Mars/Olympus}\n")
        XCTAssertEqual(zone.count, 1)
        XCTAssertEqual(zone.first?.field, "automation.windows[0].timezone")
        XCTAssertEqual(zone.first?.line, 6)
        XCTAssertEqual(zone.first?.column, 40)
        XCTAssertTrue(zone.first?.message.contains("Mars/Olympus") == true, "\(zone)")
        let text = diagnostics("automation:\n  windows:\n    - allow: \"Mon-Fri 22:00\"\n")
        XCTAssertEqual(text.map(\.field), ["automation.windows[0].allow"])
        XCTAssertEqual(text.first?.line, 5)
        XCTAssertEqual(diagnostics("automation:\n  windows:\n    - {allow: \"22:00-06:00\", deny: \"Sat 00:00-24:00\"}\n")
            .map(\.field), ["automation.windows[0].deny"])
        XCTAssertEqual(diagnostics("automation:\n  windows:\n    - {timezone: UTC}\n").map(\.field),
                       ["automation.windows[0]"])
        XCTAssertEqual(diagnostics("automation: {level: fast}\n").map(\.field), ["automation.level"])
        XCTAssertEqual(diagnostics("automation: {levle: full}\n").map(\.field), ["automation.levle"])
        XCTAssertEqual(diagnostics("automation: sometimes\n").map(\.field), ["automation"])
        XCTAssertEqual(diagnostics("automation: {repairOverridesWindows: yes}\n").map(\.field),
                       ["automation.repairOverridesWindows"])
    }
}
