//! The hub's one error type, [`HubError`]: a failure said the way HTTP says it, as a status,
//! an OCI error code and a message for the client, with the underlying cause (sqlx, I/O,
//! the runner library) kept as [`std::error::Error::source`] for logs.
//!
//! The hub answers HTTP, so it does not use the CLI's [`ebpf_package::Error`], whose kinds
//! decide process exit codes. Two boundaries convert between them, each in one place:
//!
//! - **runner library → hub** (`From<ebpf_package::Error>`): package parsing and object
//!   checks are the only runner calls on a request path, so bad input there means the
//!   pushed manifest (or what it references) failed validation: 400 `MANIFEST_INVALID`.
//! - **hub → CLI** (`From<HubError> for ebpf_package::Error`): the admin commands
//!   (`hub user add`, `hub token create`) and `hub serve` startup are CLI code and report
//!   with exit codes; [`crate::open`], [`crate::db::Db::open`] and [`crate::blobs::Location`]
//!   parsing return the CLI error directly, with help text for the operator.
//!
//! One error, three renderings: the OCI body for `/v2/` ([`IntoResponse`]), `{"error": …}`
//! for `/api/v1` ([`HubError::json_response`]) and plain text for web pages
//! ([`HubError::text_response`]; pages with a template use `web::error_page`).

use std::fmt;

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use ebpf_package::ErrorKind;

/// The challenge a 401 carries; registry clients answer it with credentials.
pub const CHALLENGE: &str = "Basic realm=\"cargo-ebpf hub\"";

/// The OCI Distribution error codes the hub answers with (plus the distribution API's
/// `UNKNOWN`, `PAGINATION_NUMBER_INVALID`, `RANGE_INVALID` and our `NOT_FOUND` for paths
/// that are no endpoint).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Code {
    BlobUnknown,
    BlobUploadInvalid,
    BlobUploadUnknown,
    DigestInvalid,
    ManifestBlobUnknown,
    ManifestInvalid,
    ManifestUnknown,
    NameInvalid,
    NameUnknown,
    SizeInvalid,
    Unauthorized,
    Denied,
    Unsupported,
    TooManyRequests,
    PaginationNumberInvalid,
    RangeInvalid,
    NotFound,
    Unknown,
}

impl Code {
    pub fn as_str(self) -> &'static str {
        match self {
            Code::BlobUnknown => "BLOB_UNKNOWN",
            Code::BlobUploadInvalid => "BLOB_UPLOAD_INVALID",
            Code::BlobUploadUnknown => "BLOB_UPLOAD_UNKNOWN",
            Code::DigestInvalid => "DIGEST_INVALID",
            Code::ManifestBlobUnknown => "MANIFEST_BLOB_UNKNOWN",
            Code::ManifestInvalid => "MANIFEST_INVALID",
            Code::ManifestUnknown => "MANIFEST_UNKNOWN",
            Code::NameInvalid => "NAME_INVALID",
            Code::NameUnknown => "NAME_UNKNOWN",
            Code::SizeInvalid => "SIZE_INVALID",
            Code::Unauthorized => "UNAUTHORIZED",
            Code::Denied => "DENIED",
            Code::Unsupported => "UNSUPPORTED",
            Code::TooManyRequests => "TOOMANYREQUESTS",
            Code::PaginationNumberInvalid => "PAGINATION_NUMBER_INVALID",
            Code::RangeInvalid => "RANGE_INVALID",
            Code::NotFound => "NOT_FOUND",
            Code::Unknown => "UNKNOWN",
        }
    }
}

type Cause = Box<dyn std::error::Error + Send + Sync + 'static>;

/// What went wrong while answering a request.
#[derive(Debug)]
pub struct HubError {
    pub status: StatusCode,
    /// The OCI code; None for refusals only the web pages and the JSON API make (a weak
    /// password, a taken name), which show just the message.
    pub code: Option<Code>,
    /// For the client: one sentence, never the cause's internals beyond its text.
    pub message: String,
    source: Option<Cause>,
}

pub type HubResult<T> = std::result::Result<T, HubError>;

impl HubError {
    pub fn new(status: StatusCode, code: Code, message: impl Into<String>) -> HubError {
        HubError {
            status,
            code: Some(code),
            message: message.into(),
            source: None,
        }
    }

    /// Keeps `cause` as this error's [`source`](std::error::Error::source).
    pub fn with_source(mut self, cause: impl Into<Cause>) -> HubError {
        self.source = Some(cause.into());
        self
    }

    /// A request the web pages or the JSON API refuse (400), in words for the user.
    pub fn refused(message: impl Into<String>) -> HubError {
        HubError {
            status: StatusCode::BAD_REQUEST,
            code: None,
            message: message.into(),
            source: None,
        }
    }

    /// A failure on our side (500): storage, database, a task that died.
    pub fn internal(message: impl fmt::Display) -> HubError {
        Self::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            Code::Unknown,
            message.to_string(),
        )
    }

    pub fn blob_unknown(digest: &str) -> HubError {
        Self::new(
            StatusCode::NOT_FOUND,
            Code::BlobUnknown,
            format!("blob {digest} is not in this repository"),
        )
    }

    pub fn manifest_unknown(reference: &str) -> HubError {
        Self::new(
            StatusCode::NOT_FOUND,
            Code::ManifestUnknown,
            format!("manifest {reference} is not in this repository"),
        )
    }

    pub fn name_unknown(name: &str) -> HubError {
        Self::new(
            StatusCode::NOT_FOUND,
            Code::NameUnknown,
            format!("repository {name} is not known to this hub"),
        )
    }

    pub fn upload_unknown(id: &str) -> HubError {
        Self::new(
            StatusCode::NOT_FOUND,
            Code::BlobUploadUnknown,
            format!("upload {id} is not in progress"),
        )
    }

    pub fn digest_invalid(message: impl Into<String>) -> HubError {
        Self::new(StatusCode::BAD_REQUEST, Code::DigestInvalid, message)
    }

    pub fn manifest_invalid(message: impl Into<String>) -> HubError {
        Self::new(StatusCode::BAD_REQUEST, Code::ManifestInvalid, message)
    }

    pub fn name_invalid(name: &str) -> HubError {
        Self::new(
            StatusCode::BAD_REQUEST,
            Code::NameInvalid,
            format!("{name:?} is not a valid repository name (lowercase path components of a-z, 0-9, '.', '_', '-')"),
        )
    }

    pub fn size_invalid(message: impl Into<String>) -> HubError {
        Self::new(StatusCode::PAYLOAD_TOO_LARGE, Code::SizeInvalid, message)
    }

    pub fn unsupported(message: impl Into<String>) -> HubError {
        Self::new(StatusCode::METHOD_NOT_ALLOWED, Code::Unsupported, message)
    }

    pub fn unauthorized(message: impl Into<String>) -> HubError {
        Self::new(StatusCode::UNAUTHORIZED, Code::Unauthorized, message)
    }

    pub fn denied(message: impl Into<String>) -> HubError {
        Self::new(StatusCode::FORBIDDEN, Code::Denied, message)
    }

    pub fn too_many_requests(message: impl Into<String>) -> HubError {
        Self::new(
            StatusCode::TOO_MANY_REQUESTS,
            Code::TooManyRequests,
            message,
        )
    }

    /// `{"error": message}`, the JSON API's shape.
    pub fn json_response(self) -> Response {
        let body = serde_json::json!({ "error": self.message });
        (self.status, axum::Json(body)).into_response()
    }

    /// The message as plain text.
    pub fn text_response(self) -> Response {
        (self.status, self.message).into_response()
    }
}

impl fmt::Display for HubError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for HubError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.source
            .as_deref()
            .map(|e| e as &(dyn std::error::Error + 'static))
    }
}

impl From<sqlx::Error> for HubError {
    fn from(e: sqlx::Error) -> Self {
        HubError::internal(format!("hub database: {e}")).with_source(e)
    }
}

impl From<std::io::Error> for HubError {
    fn from(e: std::io::Error) -> Self {
        HubError::internal(format!("storage: {e}")).with_source(e)
    }
}

/// The runner → hub boundary (see the module docs): what a runner failure means in HTTP.
impl From<ebpf_package::Error> for HubError {
    fn from(e: ebpf_package::Error) -> Self {
        let meaning = match e.kind {
            // What the client sent is wrong: the package fails validation. (Integrity is a
            // hostile or damaged layer, e.g. a path escaping the archive, not a digest
            // mismatch: the hub checks digests itself and says DIGEST_INVALID there.)
            ErrorKind::Input | ErrorKind::Integrity | ErrorKind::Usage => {
                HubError::manifest_invalid(e.full_message())
            }
            ErrorKind::Auth => HubError::unauthorized(e.full_message()),
            _ => HubError::internal(e.full_message()),
        };
        meaning.with_source(e)
    }
}

/// The hub → CLI boundary (see the module docs): admin commands report hub failures with
/// the CLI's exit codes: our side failing is the environment, a refusal is bad input.
impl From<HubError> for ebpf_package::Error {
    fn from(e: HubError) -> Self {
        if e.status.is_server_error() {
            ebpf_package::Error::environment(e.message)
        } else {
            ebpf_package::Error::input(e.message)
        }
    }
}

/// The OCI Distribution shape, `{"errors":[{"code","message"}]}`; a 401 carries the
/// challenge clients answer with credentials.
impl IntoResponse for HubError {
    fn into_response(self) -> Response {
        let code = self.code.unwrap_or(Code::Unknown).as_str();
        let body = serde_json::json!({
            "errors": [{ "code": code, "message": self.message }]
        });
        let mut response = (
            self.status,
            [(header::CONTENT_TYPE, "application/json")],
            body.to_string(),
        )
            .into_response();
        if self.status == StatusCode::UNAUTHORIZED {
            response.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static(CHALLENGE),
            );
        }
        response
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::error::Error as _;

    #[test]
    fn causes_stay_reachable_and_runner_kinds_pick_the_http_meaning() {
        let io = std::io::Error::other("disk on fire");
        let e = HubError::from(io);
        assert_eq!(e.status, StatusCode::INTERNAL_SERVER_ERROR);
        assert_eq!(e.source().unwrap().to_string(), "disk on fire");

        let e = HubError::from(ebpf_package::Error::input("not an ELF file"));
        assert_eq!(
            (e.status, e.code),
            (StatusCode::BAD_REQUEST, Some(Code::ManifestInvalid))
        );
        assert!(e.source().is_some());
        let e = HubError::from(ebpf_package::Error::environment("no runtime"));
        assert_eq!(e.status, StatusCode::INTERNAL_SERVER_ERROR);

        let cli = ebpf_package::Error::from(HubError::refused("name taken"));
        assert_eq!(cli.kind, ErrorKind::Input);
    }
}
