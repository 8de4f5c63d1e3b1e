//! Exit codes, as a type, and how errors map onto them.

use std::process::ExitCode;

use crate::transport::error::TransportError;

/// What `gsp` tells the shell. Documented in docs/scripting.md; stable.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExitStatus {
    /// 0: success.
    Success,
    /// 1: a negative result: nothing matched, not converged, regression found.
    Negative,
    /// 2: usage or configuration error, or any other failure.
    Error,
    /// 3: the node cannot be reached, or refused the credentials.
    Unavailable,
    /// 130: interrupted by SIGINT.
    Interrupted,
    /// A job's own exit code (`gsp run`, `gsp logs --follow`), as ssh passes
    /// the remote command's on.
    Job(u8),
}

impl ExitStatus {
    /// The numeric code.
    pub fn code(self) -> u8 {
        match self {
            Self::Success => 0,
            Self::Negative => 1,
            Self::Error => 2,
            Self::Unavailable => 3,
            Self::Interrupted => 130,
            Self::Job(code) => code,
        }
    }
}

impl From<ExitStatus> for ExitCode {
    fn from(s: ExitStatus) -> Self {
        ExitCode::from(s.code())
    }
}

/// Marks an error as a negative result (exit 1) rather than a failure.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct NegativeOutcome(pub String);

/// Marks an error as bad usage or configuration (exit 2).
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct UsageError(pub String);

/// Marks an error as "the target cannot be reached or refused" (exit 3) when
/// no transport error says so.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct Unreachable(pub String);

/// The exit status for an error: the first cause in the chain that has a meaning
/// decides; anything else is 2.
pub fn status_for(err: &anyhow::Error) -> ExitStatus {
    for cause in err.chain() {
        if cause.is::<NegativeOutcome>() {
            return ExitStatus::Negative;
        }
        if cause.is::<UsageError>() {
            return ExitStatus::Error;
        }
        if cause.is::<Unreachable>() {
            return ExitStatus::Unavailable;
        }
        if let Some(t) = cause.downcast_ref::<TransportError>() {
            match t {
                TransportError::Unreachable { .. } | TransportError::ConnectTimeout { .. } => {
                    return ExitStatus::Unavailable;
                }
                TransportError::BadAddress { .. } => return ExitStatus::Error,
                TransportError::Handshake { .. } | TransportError::Serve(_) => {}
            }
        }
        if let Some(status) = cause.downcast_ref::<tonic::Status>() {
            use tonic::Code;
            if matches!(
                status.code(),
                Code::Unavailable | Code::Unauthenticated | Code::PermissionDenied
            ) {
                return ExitStatus::Unavailable;
            }
        }
    }
    ExitStatus::Error
}

/// The `code` of a `gsp.error.v1` object: what kind of failure, from the
/// first cause in the chain that says: `negative` (exit 1), `usage` (exit
/// 2), `unreachable` (exit 3), a gRPC status's code in snake case
/// (`unauthenticated`, `not_found`, `resource_exhausted`, ...), else `error`.
pub fn error_code(err: &anyhow::Error) -> &'static str {
    for cause in err.chain() {
        if cause.is::<NegativeOutcome>() {
            return "negative";
        }
        if cause.is::<UsageError>() {
            return "usage";
        }
        if cause.is::<Unreachable>() {
            return "unreachable";
        }
        if let Some(t) = cause.downcast_ref::<TransportError>() {
            match t {
                TransportError::Unreachable { .. } | TransportError::ConnectTimeout { .. } => {
                    return "unreachable";
                }
                TransportError::BadAddress { .. } => return "usage",
                TransportError::Handshake { .. } | TransportError::Serve(_) => {}
            }
        }
        if let Some(status) = cause.downcast_ref::<tonic::Status>() {
            return grpc_code(status.code());
        }
    }
    "error"
}

fn grpc_code(code: tonic::Code) -> &'static str {
    use tonic::Code;
    match code {
        Code::Ok => "ok",
        Code::Cancelled => "cancelled",
        Code::Unknown => "unknown",
        Code::InvalidArgument => "invalid_argument",
        Code::DeadlineExceeded => "deadline_exceeded",
        Code::NotFound => "not_found",
        Code::AlreadyExists => "already_exists",
        Code::PermissionDenied => "permission_denied",
        Code::ResourceExhausted => "resource_exhausted",
        Code::FailedPrecondition => "failed_precondition",
        Code::Aborted => "aborted",
        Code::OutOfRange => "out_of_range",
        Code::Unimplemented => "unimplemented",
        Code::Internal => "internal",
        Code::Unavailable => "unavailable",
        Code::DataLoss => "data_loss",
        Code::Unauthenticated => "unauthenticated",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_first_meaningful_cause_decides() {
        let e = anyhow::Error::new(NegativeOutcome("no match".into())).context("query");
        assert_eq!(status_for(&e), ExitStatus::Negative);
        let e = anyhow::Error::new(tonic::Status::unavailable("down"));
        assert_eq!(status_for(&e), ExitStatus::Unavailable);
        let e = anyhow::anyhow!("disk full");
        assert_eq!(status_for(&e), ExitStatus::Error);
        assert_eq!(ExitStatus::Interrupted.code(), 130);
    }

    #[test]
    fn error_codes_name_the_deciding_cause() {
        let e = anyhow::Error::new(NegativeOutcome("no match".into())).context("query");
        assert_eq!(error_code(&e), "negative");
        let e = anyhow::Error::new(tonic::Status::not_found("no job")).context("cancel");
        assert_eq!(error_code(&e), "not_found");
        assert_eq!(error_code(&anyhow::anyhow!("disk full")), "error");
    }
}
