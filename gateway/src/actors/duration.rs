//! Time strings of Dapr's actor API: Go (`"1h2m3.5s"`) and ISO 8601 (`"PT1H2M3.5S"`)
//! durations, ISO 8601 repeating intervals (`"R5/PT1S"`) for periods, and RFC 3339
//! timestamps for due times and TTLs. As in Dapr, durations are limited to the range of
//! Go's `time.Duration` (`i64::MAX` nanoseconds, about 292 years).

use std::time::Duration;

use chrono::{DateTime, TimeDelta, Utc};

const SEC: u128 = 1_000_000_000;
const MAX_NANOS: u128 = i64::MAX as u128;
/// Numbers are read in units of 10^-18, which keeps 18 fraction digits exactly.
const FIXED: u128 = SEC * SEC;
const EXPECTED: &str = r#"(Go "1h2m3s" or ISO 8601 "PT1H2M3S")"#;
const TIMESTAMP: &str = r#"an RFC 3339 timestamp ("2024-01-02T03:04:05Z")"#;
const TOO_LONG: &str = "longer than the maximum of 2562047h47m16.854775807s";
const GO_UNITS: &str = "use ns, us, µs, ms, s, m or h";
const NO_YEARS: &str = r#"years and months have no fixed length; use days ("P30D")"#;

/// Parses a Go duration (units ns, us, µs, μs, ms, s, m, h; fractions allowed; `"0"`
/// needs no unit) or an ISO 8601 duration (`P[nW][nD][T[nH][nM][nS]]`, fraction on the
/// last component only). Negative durations, years and months are rejected.
pub(crate) fn parse_duration(s: &str) -> Result<Duration, String> {
    parse(s).map_err(|why| fail(s, "", &why))
}

/// A reminder or timer period: `period: None` fires once, `repetitions: None` is unbounded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Schedule {
    pub(crate) period: Option<Duration>,
    pub(crate) repetitions: Option<u32>,
}

/// Parses a period: `""` (fire once), a duration (repeat forever), or `"R<n>/<duration>"`
/// (`"R/<duration>"` repeats forever). A zero period fires once (as daprd); `R/<zero>` is an error.
pub(crate) fn parse_period(s: &str) -> Result<Schedule, String> {
    let bad = |why: &str| format!(r#"{s:?} is not a repeating interval (ISO 8601 "R5/PT1S"){why}"#);
    let (repetitions, duration) = match s.strip_prefix('R').map(|r| r.split_once('/')) {
        None => (None, s),
        Some(None) => return Err(bad("")),
        Some(Some(("", duration))) => (None, duration),
        Some(Some((n, duration))) if n.bytes().all(|b| b.is_ascii_digit()) => {
            let n = n.parse().map_err(|_| bad(": too many repetitions"))?;
            (Some(n), duration)
        }
        Some(Some((n, _))) => return Err(bad(&format!(": bad repetition count {n:?}"))),
    };
    let period = (!s.is_empty())
        .then(|| parse_duration(duration))
        .transpose()?;
    if period.is_some_and(|p| p.is_zero()) && repetitions.is_none() {
        if !s.starts_with('R') {
            // As daprd: a zero period has no repeats, so it fires once.
            return Ok(Schedule {
                period: None,
                repetitions: None,
            });
        }
        return Err(format!(r#"period {s:?} must be positive ("" fires once)"#));
    }
    Ok(Schedule {
        period,
        repetitions,
    })
}

/// Parses a due time: `""` is `now`, a duration is `now + d`, RFC 3339 is that instant.
pub(crate) fn parse_due_time(s: &str, now: DateTime<Utc>) -> Result<DateTime<Utc>, String> {
    parse_ttl(s, now).map(|due| due.unwrap_or(now))
}

/// Parses a TTL: `""` is none, a duration is `start + d`, RFC 3339 is that instant.
pub(crate) fn parse_ttl(s: &str, start: DateTime<Utc>) -> Result<Option<DateTime<Utc>>, String> {
    (!s.is_empty()).then(|| instant(s, start)).transpose()
}

/// Formats like Go's `Duration.String()`: `"1h0m0s"`, `"1.5s"`, `"500ms"`, `"0s"`.
#[cfg(test)]
pub(crate) fn go_string(d: Duration) -> String {
    let n = d.as_nanos();
    let (secs, s) = (n / SEC, decimal(n % (60 * SEC), SEC));
    match (secs / 3600, secs / 60 % 60) {
        _ if n == 0 => "0s".into(),
        _ if n < 1_000 => format!("{n}ns"),
        _ if n < 1_000_000 => format!("{}\u{b5}s", decimal(n, 1_000)),
        _ if n < SEC => format!("{}ms", decimal(n, 1_000_000)),
        (0, 0) => format!("{s}s"),
        (0, m) => format!("{m}m{s}s"),
        (h, m) => format!("{h}h{m}m{s}s"),
    }
}

/// `n / unit` (`unit` a power of ten) as a decimal without trailing fractional zeros.
#[cfg(test)]
fn decimal(n: u128, unit: u128) -> String {
    let (whole, rem, width) = (n / unit, n % unit, unit.ilog10() as usize);
    let frac = format!("{rem:0width$}");
    match frac.trim_end_matches('0') {
        "" => whole.to_string(),
        frac => format!("{whole}.{frac}"),
    }
}

/// Error text for `s`; `why` is empty when `s` simply is not a duration.
fn fail(s: &str, alternatives: &str, why: &str) -> String {
    let sep = if why.is_empty() { "" } else { ": " };
    format!("{s:?} is not a duration {EXPECTED}{alternatives}{sep}{why}")
}

/// A duration after `base`, or an RFC 3339 timestamp (anything starting `dddd-`).
fn instant(s: &str, base: DateTime<Utc>) -> Result<DateTime<Utc>, String> {
    if let [a, b, c, d, b'-', ..] = s.as_bytes()
        && [a, b, c, d].iter().all(|x| x.is_ascii_digit())
    {
        return DateTime::parse_from_rfc3339(s)
            .map(|t| t.with_timezone(&Utc))
            .map_err(|e| format!("{s:?} is not {TIMESTAMP}: {e}"));
    }
    let d = parse(s).map_err(|why| fail(s, &format!(" or {TIMESTAMP}"), &why))?;
    TimeDelta::from_std(d)
        .ok()
        .and_then(|d| base.checked_add_signed(d))
        .ok_or_else(|| format!("{s:?} after {base} is beyond the latest representable time"))
}

/// Parses either syntax; errors carry only the reason (empty for plain syntax errors).
fn parse(s: &str) -> Result<Duration, String> {
    let nanos = if s.starts_with('P') { iso(s)? } else { go(s)? };
    match u64::try_from(nanos) {
        Ok(n) if nanos <= MAX_NANOS => Ok(Duration::from_nanos(n)),
        _ => Err(TOO_LONG.into()),
    }
}

/// Reads a decimal `[0-9]*([.,][0-9]*)?` (`,` only if `comma`) with at least one digit,
/// in units of 10^-18 (digits past the 18th decimal are dropped; overflow saturates, far
/// above any valid value). Returns it, whether it had a decimal point, and the rest of `s`.
fn number(s: &str, comma: bool) -> Result<(u128, bool, &str), String> {
    let numeric = |c: char| c.is_ascii_digit() || c == '.' || (comma && c == ',');
    let (num, rest) = s.split_at(s.find(|c: char| !numeric(c)).unwrap_or(s.len()));
    let (int, frac) = num.split_once(['.', ',']).unwrap_or((num, ""));
    if !num.bytes().any(|b| b.is_ascii_digit()) || !frac.bytes().all(|b| b.is_ascii_digit()) {
        return Err(String::new());
    }
    let padded = frac.bytes().chain(std::iter::repeat(b'0')).take(18);
    let push = |v: u128, b: u8| v.saturating_mul(10).saturating_add((b - b'0').into());
    let value = int.bytes().chain(padded).fold(0, push);
    Ok((value, num != int, rest))
}

/// Go's `time.ParseDuration` grammar: `[-+]?([0-9]*(\.[0-9]*)?unit)+` or `[-+]?0`.
fn go(s: &str) -> Result<u128, String> {
    let (negative, mut rest) = match s.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, s.strip_prefix('+').unwrap_or(s)),
    };
    match rest {
        "0" => return Ok(0),
        "" => return Err(String::new()),
        _ => {}
    }
    let mut total = 0u128;
    while !rest.is_empty() {
        let (value, _, after) = number(rest, false)?;
        let len = after.find(|c: char| c == '.' || c.is_ascii_digit());
        let (unit, tail) = after.split_at(len.unwrap_or(after.len()));
        let unit = match unit {
            "ns" => 1,
            "us" | "\u{b5}s" | "\u{3bc}s" => 1_000,
            "ms" => 1_000_000,
            "s" => SEC,
            "m" => 60 * SEC,
            "h" => 3600 * SEC,
            "" => return Err(format!("missing unit ({GO_UNITS})")),
            other => return Err(format!("unknown unit {other:?} ({GO_UNITS})")),
        };
        total = total.saturating_add(value.saturating_mul(unit) / FIXED);
        rest = tail;
    }
    if negative && total > 0 {
        return Err("negative durations are not allowed".into());
    }
    Ok(total)
}

/// ISO 8601 `P[nW][nD][T[nH][nM][nS]]`: components in that order, at least one.
fn iso(s: &str) -> Result<u128, String> {
    let mut rest = s.strip_prefix('P').unwrap_or(s);
    let (mut total, mut time, mut rank, mut point, mut empty) = (0u128, false, 0, false, true);
    while !rest.is_empty() {
        if let Some(after) = rest.strip_prefix('T').filter(|_| !time) {
            (time, empty, rest) = (true, true, after);
            continue;
        }
        if point {
            return Err("only the last component may have a fraction".into());
        }
        let (value, frac, after) = number(rest, true)?;
        let mut chars = after.chars();
        let (r, unit) = match (time, chars.next()) {
            (false, Some('Y' | 'M')) => return Err(NO_YEARS.into()),
            (false, Some('W')) => (1, 7 * 86_400 * SEC),
            (false, Some('D')) => (2, 86_400 * SEC),
            (true, Some('H')) => (3, 3600 * SEC),
            (true, Some('M')) => (4, 60 * SEC),
            (true, Some('S')) => (5, SEC),
            _ => return Err(String::new()),
        };
        if r <= rank {
            return Err("components out of order or repeated".into());
        }
        total = total.saturating_add(value.saturating_mul(unit) / FIXED);
        (rank, point, empty, rest) = (r, frac, false, chars.as_str());
    }
    if empty { Err(String::new()) } else { Ok(total) }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    /// `cases` holds `input=want` pairs: each input parses to what Go prints as `want`.
    fn parses(cases: &str) {
        for case in cases.split_whitespace() {
            let (s, want) = case.split_once('=').unwrap();
            assert_eq!(parse_duration(s).map(go_string).as_deref(), Ok(want), "{s}");
        }
    }

    /// Each `|`-separated input is rejected with an error that quotes it and says `why`.
    fn fails(inputs: &str, why: &str) {
        for s in inputs.split('|') {
            let err = parse_duration(s).unwrap_err();
            let quoted = format!("{s:?} is not a duration {EXPECTED}");
            assert!(err.starts_with(&quoted) && err.contains(why), "{s}: {err}");
        }
    }

    fn at(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
    }

    #[test]
    fn go_durations() {
        parses("0=0s +0=0s -0=0s -0s=0s 1h2m3.5s=1h2m3.5s 500ms=500ms 1.5h=1h30m0s .5s=500ms");
        parses("1.s=1s +2m=2m0s 1s2s=3s 7ns=7ns 3us=3\u{b5}s 3\u{b5}s=3\u{b5}s 3\u{3bc}s=3\u{b5}s");
        parses("1.0000000019s=1.000000001s 9223372036854775807ns=2562047h47m16.854775807s");
    }

    #[test]
    fn go_errors() {
        let abc = r#""abc" is not a duration (Go "1h2m3s" or ISO 8601 "PT1H2M3S")"#;
        assert_eq!(parse_duration("abc").unwrap_err(), abc);
        fails("|-|+|.s|.|1.5.5s| 1s|1-s", "");
        fails("1|1h2", "missing unit");
        fails("1d", r#"unknown unit "d""#);
        fails("1s ", r#"unknown unit "s ""#);
        fails("-1s|-1h2m", "negative durations are not allowed");
        fails("9223372036854775808ns|2562048h", TOO_LONG);
        fails("2562047h47m16.854775808s", TOO_LONG);
        fails("99999999999999999999999999999999999999999h", TOO_LONG);
    }

    #[test]
    fn iso_durations() {
        parses("PT10S=10s P1DT2H=26h0m0s PT0.5S=500ms PT0,5S=500ms P2W=336h0m0s P1W1D=192h0m0s");
        parses("PT1M30S=1m30s PT1.5M=1m30s PT0S=0s PT0.000000001S=1ns P1DT0.5H=24h30m0s");
    }

    #[test]
    fn iso_errors() {
        fails("P|PT|P1DT|P1|pt1s|P1H|PT1D|PTT1S|PT1ST|-PT1S", "");
        fails("P1Y|P2M|P1Y2M3D", "years and months have no fixed");
        fails("PT1.5M30S|P1.5DT1H", "only the last component may");
        fails("PT1S1M|PT1H1H|P1D1W", "out of order");
        fails("P106752D|P15251W", TOO_LONG);
    }

    /// Strings from the Python SDK's `convert_to_dapr_duration` (dapr 1.19.0), as sent for
    /// reminder and timer times, failure-policy intervals and `/dapr/config` timeouts.
    #[test]
    fn python_sdk_strings() {
        parses("0h0m0s0ms0μs=0s 0h0m1s0ms0μs=1s 0h0m1s500ms0μs=1.5s 1h0m0s0ms0μs=1h0m0s");
        parses("0h0m0s0ms1μs=1\u{b5}s 0h1m30s0ms0μs=1m30s 0h0m30s0ms0μs=30s 24h0m0s0ms0μs=24h0m0s");
        parses("51h4m5s678ms901μs=51h4m5.678901s 0h0m59s999ms999μs=59.999999s");
        parses("8760h0m0s0ms0μs=8760h0m0s");
        // timedelta(seconds=-1) and timedelta.max: out of range for Dapr too.
        fails("-1h59m59s0ms0μs", "negative");
        fails("24000000000h0m0s999ms999μs", TOO_LONG);
    }

    #[test]
    fn periods() {
        let parts = |s| parse_period(s).map(|p| (p.period.map(go_string), p.repetitions));
        let every = |period: &str, repetitions| Ok((Some(period.to_string()), repetitions));
        assert_eq!(parts(""), Ok((None, None)));
        assert_eq!(parts("1s"), every("1s", None));
        assert_eq!(parts("PT1M"), every("1m0s", None));
        assert_eq!(parts("0h0m5s0ms0μs"), every("5s", None));
        assert_eq!(parts("R5/PT1S"), every("1s", Some(5)));
        assert_eq!(parts("R/PT1S"), every("1s", None));
        assert_eq!(parts("R0/PT1S"), every("1s", Some(0)));
        assert_eq!(parts("R3/1m"), every("1m0s", Some(3)));
        assert_eq!(parts("R2/PT0S"), every("0s", Some(2)));
    }

    #[test]
    fn period_errors() {
        let err = |s| parse_period(s).unwrap_err();
        assert_eq!(
            err("R/PT0S"),
            r#"period "R/PT0S" must be positive ("" fires once)"#
        );
        for s in ["0s", "PT0S", "0h0m0s0ms0μs"] {
            let once = Schedule {
                period: None,
                repetitions: None,
            };
            assert_eq!(parse_period(s).unwrap(), once, "{s}");
        }
        let r5 = r#""R5" is not a repeating interval (ISO 8601 "R5/PT1S")"#;
        assert_eq!(err("R5"), r5);
        assert!(err("Rx/PT1S").ends_with(r#": bad repetition count "x""#));
        assert!(err("R-1/PT1S").ends_with(r#": bad repetition count "-1""#));
        assert!(err("R4294967296/PT1S").ends_with(": too many repetitions"));
        assert!(err("R5/").starts_with(r#""" is not a duration"#));
        assert!(err("R5/abc").starts_with(r#""abc" is not a duration"#));
    }

    #[test]
    fn due_times_and_ttls() {
        let now = at("2024-01-02T03:04:05Z");
        let due = |s| parse_due_time(s, now);
        assert_eq!(due(""), Ok(now));
        assert_eq!(due("1s"), Ok(at("2024-01-02T03:04:06Z")));
        assert_eq!(due("PT1M"), Ok(at("2024-01-02T03:05:05Z")));
        assert_eq!(due("0h0m0s0ms0μs"), Ok(now));
        let then = at("2025-06-07T08:09:10.5Z");
        assert_eq!(due("2025-06-07T08:09:10.5Z"), Ok(then));
        assert_eq!(due("2025-06-07T10:09:10.5+02:00"), Ok(then));
        let ttl = |s| parse_ttl(s, now);
        assert_eq!(ttl(""), Ok(None));
        assert_eq!(ttl("P1D"), Ok(Some(at("2024-01-03T03:04:05Z"))));
        assert_eq!(ttl("2025-06-07T08:09:10.5Z"), Ok(Some(then)));
    }

    #[test]
    fn due_time_and_ttl_errors() {
        let err = |s| parse_due_time(s, at("2024-01-02T03:04:05Z")).unwrap_err();
        let abc = format!(r#""abc" is not a duration {EXPECTED} or {TIMESTAMP}"#);
        assert_eq!(err("abc"), abc);
        assert!(err("1d").contains("unknown unit"));
        assert!(err("-1s").contains("negative"));
        for s in ["2024-13-01T00:00:00Z", "2024-01-02", "2024-01-02 03:04:05"] {
            let want = format!("{s:?} is not {TIMESTAMP}: ");
            assert!(err(s).starts_with(&want), "{s}");
        }
        let late = parse_ttl("1s", DateTime::<Utc>::MAX_UTC).unwrap_err();
        assert!(late.contains("beyond the latest"), "{late}");
    }

    #[test]
    fn go_strings() {
        let cases = "0=0s 7=7ns 1500=1.5\u{b5}s 500000000=500ms 1250000=1.25ms 1000000000=1s \
            1500000000=1.5s 30000000000=30s 90000000000=1m30s 3600000000000=1h0m0s \
            3600500000000=1h0m0.5s 9223372036854775807=2562047h47m16.854775807s";
        for case in cases.split_whitespace() {
            let (nanos, want) = case.split_once('=').unwrap();
            let d = Duration::from_nanos(nanos.parse().unwrap());
            assert_eq!(go_string(d), want, "{nanos}");
        }
        assert_eq!(go_string(Duration::MAX), "5124095576030431h0m15.999999999s");
    }
}
