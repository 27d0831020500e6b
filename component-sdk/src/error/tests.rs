#![allow(clippy::unwrap_used, clippy::expect_used)]

use tonic::Code;
use tonic_types::{ErrorDetail, StatusExt};

use super::*;

/// Reads a status the way daprd's pluggable state client does: exactly one
/// detail, and for ETag errors exactly one violation on `etag`.
fn single_detail(status: &Status) -> ErrorDetail {
    let details = status.check_error_details_vec().expect("details decode");
    assert_eq!(
        details.len(),
        1,
        "daprd needs exactly one detail: {details:?}"
    );
    details.into_iter().next().unwrap()
}

#[test]
fn etag_errors_carry_one_bad_request_on_etag() {
    for (err, code) in [
        (
            ComponentError::etag_mismatch("stale"),
            Code::FailedPrecondition,
        ),
        (
            ComponentError::etag_invalid("not a number"),
            Code::InvalidArgument,
        ),
    ] {
        let status = Status::from(err);
        assert_eq!(status.code(), code);
        let ErrorDetail::BadRequest(bad) = single_detail(&status) else {
            panic!("expected BadRequest");
        };
        assert_eq!(bad.field_violations.len(), 1);
        assert_eq!(bad.field_violations[0].field, "etag");
        assert!(!bad.field_violations[0].description.is_empty());
    }
}

#[test]
fn bulk_delete_mismatch_carries_counts() {
    let status = Status::from(ComponentError::bulk_delete_mismatch(3, 1));
    assert_eq!(status.code(), Code::Internal);
    let ErrorDetail::ErrorInfo(info) = single_detail(&status) else {
        panic!("expected ErrorInfo");
    };
    assert_eq!(info.metadata["expected"], "3");
    assert_eq!(info.metadata["affected"], "1");
}

#[test]
fn kit_errors_carry_http_code_and_tag() {
    let err = ComponentError::kit(
        Code::InvalidArgument,
        400,
        "ERR_STATE_QUERY",
        "DAPR_STATE_QUERY_FAILED",
        "bad filter",
    );
    let status = Status::from(err);
    assert_eq!(status.code(), Code::InvalidArgument);
    let ErrorDetail::ErrorInfo(info) = single_detail(&status) else {
        panic!("expected ErrorInfo");
    };
    assert_eq!(info.reason, "DAPR_STATE_QUERY_FAILED");
    assert_eq!(info.metadata["kit_error"], "true");
    assert_eq!(info.metadata["http_code"], "400");
    assert_eq!(info.metadata["tag"], "ERR_STATE_QUERY");
}

#[test]
fn plain_kinds_map_to_their_codes() {
    let cases = [
        (ComponentError::not_found("x"), Code::NotFound),
        (ComponentError::unimplemented("query"), Code::Unimplemented),
        (
            ComponentError::failed_precondition("x"),
            Code::FailedPrecondition,
        ),
        (ComponentError::unavailable("x"), Code::Unavailable),
        (ComponentError::internal("x"), Code::Internal),
    ];
    for (err, code) in cases {
        assert_eq!(Status::from(err).code(), code);
    }
}

#[test]
fn invalid_argument_names_the_field() {
    let status = Status::from(ComponentError::invalid_argument("key", "must not be empty"));
    assert_eq!(status.code(), Code::InvalidArgument);
    assert!(status.message().contains("key"));
    let ErrorDetail::BadRequest(bad) = single_detail(&status) else {
        panic!("expected BadRequest");
    };
    assert_eq!(bad.field_violations[0].field, "key");
}
