//! `quiet_hours`: the windows of station time in which nothing may sound.
//!
//! **Invariant:** each window is `HH:MM-HH:MM` with distinct ends (it may wrap midnight); a
//! window that does not parse is reported at its own list element. Whether a slot sounds inside
//! one is checked over time ([`super::time`]).

use chrono::NaiveTime;

use super::super::QuietHours;
use super::super::file::{Ctx, RawStation};

/// Check every `quiet_hours` window.
pub(super) fn check(cx: &mut Ctx, raw: &RawStation) -> Vec<QuietHours> {
    let mut quiet_hours = Vec::new();
    for (i, q) in raw.quiet_hours.iter().enumerate() {
        match parse_quiet(q.get_ref()) {
            Some(w) => quiet_hours.push(w),
            None => cx.push(
                &q.span(),
                &format!("quiet_hours[{i}]"),
                format!("`{}` không phải khung giờ yên lặng", q.get_ref()),
                "ghi \"HH:MM-HH:MM\" theo giờ của trạm, ví dụ \"21:30-05:00\" (được phép qua nửa đêm)",
            ),
        }
    }
    quiet_hours
}

fn parse_hhmm(s: &str) -> Option<NaiveTime> {
    let (h, m) = s.trim().split_once(':')?;
    if h.len() != 2 || m.len() != 2 {
        return None;
    }
    NaiveTime::from_hms_opt(h.parse().ok()?, m.parse().ok()?, 0)
}

fn parse_quiet(s: &str) -> Option<QuietHours> {
    let (a, b) = s.split_once('-')?;
    let q = QuietHours {
        start: parse_hhmm(a)?,
        end: parse_hhmm(b)?,
    };
    (q.start != q.end).then_some(q)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quiet_windows() {
        let check = |s: &str, expected: Option<(u32, u32, u32, u32)>| {
            let got = parse_quiet(s).map(|q| {
                use chrono::Timelike;
                (
                    q.start.hour(),
                    q.start.minute(),
                    q.end.hour(),
                    q.end.minute(),
                )
            });
            assert_eq!(got, expected, "{s}");
        };
        check("21:30-05:00", Some((21, 30, 5, 0)));
        check("12:00-13:00", Some((12, 0, 13, 0)));
        check("24:00-05:00", None);
        check("9:00-10:00", None);
        check("10:00-10:00", None);
        check("10:00", None);
    }
}
