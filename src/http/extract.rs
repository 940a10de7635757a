//! Extractors whose rejections are problem+json with stable codes.

use axum::extract::rejection::JsonRejection;
use axum::extract::{FromRequest, Request};
use axum::http::StatusCode;
use serde::de::DeserializeOwned;

use super::error::ApiError;

/// `axum::Json`, but a malformed or unexpected body is answered with a
/// problem document. serde's message names the field and never echoes values
/// for the types we use, but it is cut short anyway.
#[derive(Debug, Clone, Copy, Default)]
pub struct Json<T>(pub T);

impl<T, S> FromRequest<S> for Json<T>
where
    T: DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        match axum::Json::<T>::from_request(req, state).await {
            Ok(axum::Json(value)) => Ok(Json(value)),
            Err(rejection) => Err(json_rejection(rejection)),
        }
    }
}

/// Parses a JSON body already read as bytes (routes that hash the body for
/// idempotency), with the same checks and problem codes as [`Json`].
pub fn json_from_bytes<T: DeserializeOwned>(
    headers: &axum::http::HeaderMap,
    body: &[u8],
) -> Result<T, ApiError> {
    let is_json = headers
        .get(axum::http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/json"));
    if !is_json {
        return Err(unsupported_media_type());
    }
    axum::Json::<T>::from_bytes(body)
        .map(|axum::Json(value)| value)
        .map_err(json_rejection)
}

fn unsupported_media_type() -> ApiError {
    ApiError::new(StatusCode::UNSUPPORTED_MEDIA_TYPE, "unsupported_media_type")
        .with_detail("send Content-Type: application/json")
}

fn json_rejection(rejection: JsonRejection) -> ApiError {
    match rejection {
        JsonRejection::MissingJsonContentType(_) => {
            ApiError::new(StatusCode::UNSUPPORTED_MEDIA_TYPE, "unsupported_media_type")
                .with_detail("send Content-Type: application/json")
        }
        JsonRejection::JsonSyntaxError(_) => {
            ApiError::bad_request("malformed_json", "the body is not valid JSON")
        }
        JsonRejection::JsonDataError(e) => {
            ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, "invalid_body")
                .with_detail(field_error(&e.body_text()))
        }
        JsonRejection::BytesRejection(e) if e.status() == StatusCode::PAYLOAD_TOO_LARGE => {
            ApiError::new(StatusCode::PAYLOAD_TOO_LARGE, "payload_too_large")
        }
        other => ApiError::new(other.status(), "bad_request"),
    }
}

/// Keeps serde's description of what is wrong (a missing or unknown field)
/// and drops any quoted input that could carry card data.
fn field_error(text: &str) -> String {
    let text = text
        .strip_prefix("Failed to deserialize the JSON body into the target type: ")
        .unwrap_or(text);
    let cleaned: String = text
        .split('`')
        .enumerate()
        .map(|(i, part)| {
            // Backticks quote field names in serde messages; keep short identifiers only.
            if i % 2 == 1 && !(part.len() <= 64 && part.bytes().all(is_ident)) {
                "…"
            } else {
                part
            }
        })
        .collect::<Vec<_>>()
        .join("`");
    let cleaned = crate::redact::mask_pans(&cleaned);
    cleaned.chars().take(200).collect()
}

fn is_ident(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'_' || b == b'.' || b == b'-'
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn field_errors_keep_names_and_drop_values() {
        let msg = field_error(
            "Failed to deserialize the JSON body into the target type: card.number: invalid type: string `4111 1111 1111 1111 and more`, expected u8 at line 1 column 9",
        );
        assert!(msg.contains("card.number"), "{msg}");
        assert!(!msg.contains("4111"), "{msg}");
        let msg = field_error("unknown field `pann`, expected one of `number`, `cvc`");
        assert!(msg.contains("`pann`") && msg.contains("`cvc`"), "{msg}");
    }
}
