//! Numeric ETags, for stores that keep a version number beside each row
//! (`state.sqlite` and `state.postgresql` do): a fresh random one for every
//! write, and the parse of one an app sends back.

use crate::ComponentError;

/// A new random, non-negative ETag.
pub fn fresh() -> i64 {
    let bytes = uuid::Uuid::new_v4().into_bytes();
    let mut n = [0u8; 8];
    n.copy_from_slice(&bytes[..8]);
    i64::from_le_bytes(n) & i64::MAX
}

/// The number in `etag`, or Dapr's invalid-ETag error (400 on HTTP) naming it.
///
/// # Errors
/// When `etag` is not a decimal `i64`, so this store cannot have issued it.
pub fn parse(etag: &str) -> Result<i64, ComponentError> {
    etag.parse::<i64>().map_err(|_| {
        ComponentError::etag_invalid(format!("{etag:?} is not an ETag issued by this store"))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fresh_etags_are_non_negative_and_round_trip() {
        let a = fresh();
        let b = fresh();
        assert!(a >= 0 && b >= 0);
        assert_ne!(a, b, "two fresh ETags differ");
        assert_eq!(parse(&a.to_string()).unwrap(), a);
    }

    #[test]
    fn a_foreign_etag_is_invalid_and_named() {
        let err = parse("W/\"abc\"").unwrap_err();
        assert!(matches!(err.kind(), crate::ErrorKind::EtagInvalid));
        assert!(err.to_string().contains("W/\\\"abc\\\""), "{err}");
    }
}
