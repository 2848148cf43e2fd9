//! What a failed call means, and the gRPC code that carries it: one table for both sides.
//! The agent answers with [`ErrorKind::status`]; the coordinator and triadctl read a
//! [`tonic::Status`] back with [`ErrorKind::of`], so a refusal is told apart from a node
//! that cannot be reached by its kind, never by parsing the message.

use std::fmt;

/// The kinds of failure a caller acts on differently.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    /// The node's own rules refuse the request in its present state (a bootstrap while a
    /// peer is Primary, a position while mysqld joins): retrying the same call is useless
    /// until the state changes. `FAILED_PRECONDITION`.
    Refused,
    /// The node, or the service the call needs, cannot be reached now (no answer, timeout,
    /// a command that could not run): retry later. `UNAVAILABLE`, `DEADLINE_EXCEEDED`.
    Unavailable,
    /// The request itself is wrong (a missing field, a bad name). `INVALID_ARGUMENT`.
    Invalid,
    /// The caller's certificate is missing or its role may not make the call.
    /// `UNAUTHENTICATED`, `PERMISSION_DENIED`.
    Denied,
    /// Anything else: the call was made and went wrong. `INTERNAL` (and every other code).
    Failed,
}

impl ErrorKind {
    /// The code this kind is sent with.
    pub fn code(self) -> tonic::Code {
        match self {
            ErrorKind::Refused => tonic::Code::FailedPrecondition,
            ErrorKind::Unavailable => tonic::Code::Unavailable,
            ErrorKind::Invalid => tonic::Code::InvalidArgument,
            ErrorKind::Denied => tonic::Code::PermissionDenied,
            ErrorKind::Failed => tonic::Code::Internal,
        }
    }

    /// The kind a received code means (codes outside the table are [`ErrorKind::Failed`]).
    pub fn of(code: tonic::Code) -> ErrorKind {
        match code {
            tonic::Code::FailedPrecondition => ErrorKind::Refused,
            tonic::Code::Unavailable | tonic::Code::DeadlineExceeded => ErrorKind::Unavailable,
            tonic::Code::InvalidArgument => ErrorKind::Invalid,
            tonic::Code::Unauthenticated | tonic::Code::PermissionDenied => ErrorKind::Denied,
            _ => ErrorKind::Failed,
        }
    }

    /// A status of this kind with `message` (one line for the operator).
    pub fn status(self, message: impl Into<String>) -> tonic::Status {
        tonic::Status::new(self.code(), message)
    }

    pub fn as_str(self) -> &'static str {
        match self {
            ErrorKind::Refused => "refused",
            ErrorKind::Unavailable => "unavailable",
            ErrorKind::Invalid => "invalid",
            ErrorKind::Denied => "denied",
            ErrorKind::Failed => "failed",
        }
    }
}

impl fmt::Display for ErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_kind_survives_the_wire() {
        for kind in [
            ErrorKind::Refused,
            ErrorKind::Unavailable,
            ErrorKind::Invalid,
            ErrorKind::Denied,
            ErrorKind::Failed,
        ] {
            assert_eq!(ErrorKind::of(kind.status("x").code()), kind, "{kind}");
        }
        assert_eq!(
            ErrorKind::of(tonic::Code::Unauthenticated),
            ErrorKind::Denied
        );
        assert_eq!(
            ErrorKind::of(tonic::Code::DeadlineExceeded),
            ErrorKind::Unavailable
        );
        assert_eq!(ErrorKind::of(tonic::Code::Unimplemented), ErrorKind::Failed);
    }
}
