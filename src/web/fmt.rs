//! Vietnamese number and date formats for pages, as template filters: `97,5 %`, `10.000`,
//! `04/12/2026`, `05:30`.
//!
//! **Invariant:** pure; an instant keeps the offset it carries (a station's local time), except a
//! UTC instant (`…Z`, the collector's own clock), which is shown on the reporting offset (UTC+7).

use chrono::{DateTime, FixedOffset};
use minijinja::{Environment, Error, ErrorKind};

use crate::report::report_offset;

/// Register the filters on `env`.
pub fn register(env: &mut Environment<'_>) {
    env.add_filter("pct", |v: f64| pct_vi(v));
    env.add_filter("num", |v: i64| num_vi(v));
    env.add_filter("secs", |v: f64| decimal_vi(v, 1));
    env.add_filter("lufs", |v: f64| decimal_vi(v, 1));
    env.add_filter("date", |s: &str| {
        instant(s).map(|t| t.format("%d/%m/%Y").to_string())
    });
    env.add_filter("time", |s: &str| {
        instant(s).map(|t| t.format("%H:%M").to_string())
    });
    env.add_filter("datetime", |s: &str| {
        instant(s).map(|t| t.format("%H:%M %d/%m/%Y").to_string())
    });
}

/// An RFC 3339 instant as pages show it (see the module invariant).
fn instant(s: &str) -> Result<DateTime<FixedOffset>, Error> {
    let t = DateTime::parse_from_rfc3339(s).map_err(|e| {
        Error::new(
            ErrorKind::InvalidOperation,
            format!("not an RFC 3339 instant `{s}`: {e}"),
        )
    })?;
    Ok(if s.ends_with('Z') || s.ends_with("+00:00") {
        t.with_timezone(&report_offset())
    } else {
        t
    })
}

/// A percentage the Vietnamese way, one decimal with a decimal comma: `97,5 %` (clamped to
/// 0–100; the same rounding as `loa status`).
pub fn pct_vi(pct: f64) -> String {
    let tenths = (pct.clamp(0.0, 100.0) * 10.0).round() as i64;
    format!("{},{} %", num_vi(tenths / 10), tenths % 10)
}

/// An integer with `.` between thousands: `10.000`, `-1.234`.
pub fn num_vi(v: i64) -> String {
    let digits = v.unsigned_abs().to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3 + 1);
    if v < 0 {
        out.push('-');
    }
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push('.');
        }
        out.push(c);
    }
    out
}

/// A decimal with `places` digits after a decimal comma and `.` between thousands: `1.234,5`.
pub fn decimal_vi(v: f64, places: usize) -> String {
    if !v.is_finite() {
        return "—".into();
    }
    let s = format!("{:.*}", places, v.abs());
    let (int, frac) = s.split_once('.').unwrap_or((&s, ""));
    let int: i64 = int.parse().unwrap_or(0);
    let sign = if v < 0.0 && s.bytes().any(|b| (b'1'..=b'9').contains(&b)) {
        "-"
    } else {
        ""
    };
    if frac.is_empty() {
        format!("{sign}{}", num_vi(int))
    } else {
        format!("{sign}{},{frac}", num_vi(int))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(tmpl: &str, ctx: minijinja::Value, expected: &str) {
        let mut env = Environment::new();
        register(&mut env);
        let got = env.render_str(tmpl, ctx).unwrap();
        assert_eq!(got, expected, "{tmpl}");
    }

    #[test]
    fn vietnamese_formats() {
        use minijinja::context;
        check("{{ x|pct }}", context! { x => 97.5 }, "97,5 %");
        check("{{ x|num }}", context! { x => 10000 }, "10.000");
        check("{{ x|num }}", context! { x => -1234567 }, "-1.234.567");
        check("{{ x|num }}", context! { x => 999 }, "999");
        check("{{ x|secs }}", context! { x => 1234.56 }, "1.234,6");
        check("{{ x|lufs }}", context! { x => -23.04 }, "-23,0");
        check("{{ x|lufs }}", context! { x => -0.04 }, "0,0");
        let t = "2026-12-04T05:30:00+07:00";
        check("{{ t|date }}", context! { t }, "04/12/2026");
        check("{{ t|time }}", context! { t }, "05:30");
        check("{{ t|datetime }}", context! { t }, "05:30 04/12/2026");
        // The collector's UTC clock is shown on the reporting offset.
        check(
            "{{ t|datetime }}",
            context! { t => "2026-12-03T22:30:00Z" },
            "05:30 04/12/2026",
        );
    }

    #[test]
    fn a_bad_instant_is_an_error_not_a_panic() {
        let mut env = Environment::new();
        register(&mut env);
        assert!(
            env.render_str("{{ t|date }}", minijinja::context! { t => "hôm qua" })
                .is_err()
        );
    }
}
