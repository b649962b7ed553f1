//! Value helpers shared by validation, filters and PATCH.

use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

/// The canonical form of an xsd:dateTime (RFC 7643 §2.3.5): UTC with exactly three
/// fractional digits, `YYYY-MM-DDTHH:MM:SS.mmmZ`. Stored dateTimes use this form so that
/// comparing them as strings (as the database does) orders them by time.
pub fn canonical_datetime(s: &str) -> Option<String> {
    let t = OffsetDateTime::parse(s.trim(), &Rfc3339).ok()?;
    let utc = t.to_offset(time::UtcOffset::UTC);
    utc.format(time::macros::format_description!(
        "[year]-[month]-[day]T[hour]:[minute]:[second].[subsecond digits:3]Z"
    ))
    .ok()
}

/// The instant of an xsd:dateTime in microseconds since the Unix epoch.
pub fn datetime_micros(s: &str) -> Option<i64> {
    let t = OffsetDateTime::parse(s.trim(), &Rfc3339).ok()?;
    i64::try_from(t.unix_timestamp_nanos() / 1_000).ok()
}

/// RFC 7643 §2.3.5 rendering of microseconds since the epoch.
pub fn micros_to_datetime(micros: i64) -> String {
    let nanos = i128::from(micros) * 1_000;
    OffsetDateTime::from_unix_timestamp_nanos(nanos)
        .ok()
        .and_then(|t| {
            t.format(time::macros::format_description!(
                "[year]-[month]-[day]T[hour]:[minute]:[second].[subsecond digits:3]Z"
            ))
            .ok()
        })
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn datetimes_canonicalise_to_sortable_utc() {
        assert_eq!(
            canonical_datetime("2011-05-13T04:42:34+02:00").as_deref(),
            Some("2011-05-13T02:42:34.000Z")
        );
        assert_eq!(
            canonical_datetime("2011-05-13T04:42:34.5Z").as_deref(),
            Some("2011-05-13T04:42:34.500Z")
        );
        assert!(canonical_datetime("yesterday").is_none());
        assert_eq!(datetime_micros("1970-01-01T00:00:01Z"), Some(1_000_000));
        assert_eq!(micros_to_datetime(1_500_000), "1970-01-01T00:00:01.500Z");
    }
}
