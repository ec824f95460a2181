//! Errors in the OCI Distribution shape: `{"errors":[{"code","message","detail"}]}`.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};

#[derive(Debug)]
pub struct OciError {
    pub status: StatusCode,
    pub code: &'static str,
    pub message: String,
}

pub type OciResult<T> = std::result::Result<T, OciError>;

impl OciError {
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> OciError {
        OciError {
            status,
            code,
            message: message.into(),
        }
    }
    pub fn blob_unknown(digest: &str) -> OciError {
        Self::new(
            StatusCode::NOT_FOUND,
            "BLOB_UNKNOWN",
            format!("blob {digest} is not in this repository"),
        )
    }
    pub fn manifest_unknown(reference: &str) -> OciError {
        Self::new(
            StatusCode::NOT_FOUND,
            "MANIFEST_UNKNOWN",
            format!("manifest {reference} is not in this repository"),
        )
    }
    pub fn name_unknown(name: &str) -> OciError {
        Self::new(
            StatusCode::NOT_FOUND,
            "NAME_UNKNOWN",
            format!("repository {name} is not known to this hub"),
        )
    }
    pub fn upload_unknown(id: &str) -> OciError {
        Self::new(
            StatusCode::NOT_FOUND,
            "BLOB_UPLOAD_UNKNOWN",
            format!("upload {id} is not in progress"),
        )
    }
    pub fn digest_invalid(message: impl Into<String>) -> OciError {
        Self::new(StatusCode::BAD_REQUEST, "DIGEST_INVALID", message)
    }
    pub fn manifest_invalid(message: impl Into<String>) -> OciError {
        Self::new(StatusCode::BAD_REQUEST, "MANIFEST_INVALID", message)
    }
    pub fn name_invalid(name: &str) -> OciError {
        Self::new(
            StatusCode::BAD_REQUEST,
            "NAME_INVALID",
            format!("{name:?} is not a valid repository name (lowercase path components of a-z, 0-9, '.', '_', '-')"),
        )
    }
    pub fn unsupported(message: impl Into<String>) -> OciError {
        Self::new(StatusCode::METHOD_NOT_ALLOWED, "UNSUPPORTED", message)
    }
    pub fn unauthorized(message: &str) -> OciError {
        Self::new(StatusCode::UNAUTHORIZED, "UNAUTHORIZED", message)
    }
    pub fn denied(message: String) -> OciError {
        Self::new(StatusCode::FORBIDDEN, "DENIED", message)
    }
    pub fn internal(message: impl std::fmt::Display) -> OciError {
        Self::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "UNKNOWN",
            message.to_string(),
        )
    }
}

impl From<ebpf_package::Error> for OciError {
    fn from(e: ebpf_package::Error) -> Self {
        OciError::internal(e)
    }
}

impl From<std::io::Error> for OciError {
    fn from(e: std::io::Error) -> Self {
        OciError::internal(format!("storage: {e}"))
    }
}

impl IntoResponse for OciError {
    fn into_response(self) -> Response {
        let body = serde_json::json!({
            "errors": [{ "code": self.code, "message": self.message }]
        });
        let mut response = (
            self.status,
            [(axum::http::header::CONTENT_TYPE, "application/json")],
            body.to_string(),
        )
            .into_response();
        if self.status == StatusCode::UNAUTHORIZED {
            response.headers_mut().insert(
                axum::http::header::WWW_AUTHENTICATE,
                axum::http::HeaderValue::from_static(crate::auth::CHALLENGE),
            );
        }
        response
    }
}
