//! `[loudness]`: the programme loudness target the station normalises to.
//!
//! **Invariant:** a given level lies in its accepted range (NaN never does); otherwise it is
//! reported and the EBU R128 default is used.

use std::ops::RangeInclusive;

use super::super::LoudnessTarget;
use super::super::file::{Ctx, RawStation};
use super::in_range;

/// Accepted `loudness.integrated_lufs` targets, in LUFS (EBU R128 broadcast is -23, loud
/// streaming about -14; below -70 is near silence, above -5 is not a programme level).
pub const INTEGRATED_LUFS_RANGE: RangeInclusive<f64> = -70.0..=-5.0;
/// Accepted `loudness.max_true_peak_dbtp` ceilings, in dBTP (0 is full scale).
pub const MAX_TRUE_PEAK_DBTP_RANGE: RangeInclusive<f64> = -20.0..=0.0;

/// Check `[loudness]` (absent: the defaults).
pub(super) fn check(cx: &mut Ctx, raw: &RawStation) -> LoudnessTarget {
    raw.loudness
        .as_ref()
        .map_or_else(LoudnessTarget::default, |l| {
            let d = LoudnessTarget::default();
            let l = l.get_ref();
            LoudnessTarget {
                integrated_lufs: in_range(
                    cx,
                    l.integrated_lufs.as_ref(),
                    "loudness.integrated_lufs",
                    "LUFS",
                    INTEGRATED_LUFS_RANGE,
                    d.integrated_lufs,
                ),
                max_true_peak_dbtp: in_range(
                    cx,
                    l.max_true_peak_dbtp.as_ref(),
                    "loudness.max_true_peak_dbtp",
                    "dBTP",
                    MAX_TRUE_PEAK_DBTP_RANGE,
                    d.max_true_peak_dbtp,
                ),
            }
        })
}
