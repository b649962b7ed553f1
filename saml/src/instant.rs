//! `xs:dateTime` values as SAML uses them (SAML core §1.3.3: UTC, no time-zone offset other than
//! `Z`; fractional seconds allowed).

use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

/// Parses an `xs:dateTime` into Unix seconds (fractions truncated). A value without any zone
/// designator is read as UTC, as SAML core §1.3.3 requires all times to be UTC.
pub(crate) fn parse_instant(s: &str) -> Option<i64> {
    let s = s.trim();
    if s.is_empty() || s.len() > 64 {
        return None;
    }
    let parsed = OffsetDateTime::parse(s, &Rfc3339).or_else(|_| {
        let with_z = format!("{s}Z");
        OffsetDateTime::parse(&with_z, &Rfc3339)
    });
    parsed.ok().map(|t| t.unix_timestamp())
}

/// Formats Unix seconds as `YYYY-MM-DDTHH:MM:SSZ`.
pub(crate) fn format_instant(unix: i64) -> String {
    let t = OffsetDateTime::from_unix_timestamp(unix).unwrap_or(OffsetDateTime::UNIX_EPOCH);
    format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}Z",
        t.year(),
        u8::from(t.month()),
        t.day(),
        t.hour(),
        t.minute(),
        t.second()
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_variants() {
        assert_eq!(format_instant(0), "1970-01-01T00:00:00Z");
        assert_eq!(format_instant(1_700_000_000), "2023-11-14T22:13:20Z");
        assert_eq!(parse_instant("2023-11-14T22:13:20Z"), Some(1_700_000_000));
        assert_eq!(
            parse_instant("2023-11-14T22:13:20.123Z"),
            Some(1_700_000_000)
        );
        assert_eq!(parse_instant("2023-11-14T22:13:20"), Some(1_700_000_000));
        assert_eq!(
            parse_instant("2023-11-14T23:13:20+01:00"),
            Some(1_700_000_000)
        );
        assert_eq!(parse_instant("yesterday"), None);
        assert_eq!(parse_instant(""), None);
    }
}
