//! The bundle's own files, read-only, beside the distribution API: `GET /ferry/v1/index.json`
//! (index.json as stored) and `GET /ferry/v1/lock` (ferry.lock as stored), so a node can learn
//! what the bundle holds (`ferry restore --from URL`) without a tar or a catalog walk.

use hyper::header::{self, HeaderValue};
use hyper::{Method, Request, Response, StatusCode};

use super::body::Body;
use crate::store::{BundleSource, MAX_INDEX_BYTES};

/// Where these routes live.
pub const PREFIX: &str = "/ferry/v1/";

/// The file a path names: `index.json` or `ferry.lock`, with its content type.
fn file_of(path: &str) -> Option<(&'static str, &'static str)> {
    match path.strip_prefix(PREFIX)? {
        "index.json" => Some(("index.json", "application/vnd.oci.image.index.v1+json")),
        "lock" => Some((crate::lock::LOCK_FILE_NAME, "application/json")),
        _ => None,
    }
}

fn answer(status: StatusCode, content_type: &str, body: Vec<u8>, head: bool) -> Response<Body> {
    let len = body.len();
    let mut resp = Response::new(if head { Body::Empty } else { Body::full(body) });
    *resp.status_mut() = status;
    let headers = resp.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_str(content_type).expect("a static content type"),
    );
    headers.insert(header::CONTENT_LENGTH, HeaderValue::from(len));
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    resp
}

/// Answers a request under [`PREFIX`]; `None` for any other path (the registry routes answer).
pub fn respond<B>(source: &dyn BundleSource, req: &Request<B>) -> Option<Response<Body>> {
    let path = req.uri().path();
    if !path.starts_with(PREFIX) {
        return None;
    }
    let problem = |status, message: &str| {
        let body = serde_json::json!({"errors": [{"code": "UNSUPPORTED", "message": message}]});
        answer(
            status,
            "application/json",
            body.to_string().into_bytes(),
            false,
        )
    };
    if req.method() != Method::GET && req.method() != Method::HEAD {
        return Some(problem(
            StatusCode::METHOD_NOT_ALLOWED,
            "read-only: the bundle's files are served with GET and HEAD",
        ));
    }
    let Some((name, content_type)) = file_of(path) else {
        return Some(problem(
            StatusCode::NOT_FOUND,
            "ferry serves /ferry/v1/index.json and /ferry/v1/lock",
        ));
    };
    let head = req.method() == Method::HEAD;
    Some(match source.root_file(name, MAX_INDEX_BYTES) {
        Ok(Some(bytes)) => answer(StatusCode::OK, content_type, bytes, head),
        Ok(None) => problem(StatusCode::NOT_FOUND, &format!("the bundle has no {name}")),
        Err(e) => problem(
            StatusCode::INTERNAL_SERVER_ERROR,
            &format!("cannot read {name}: {e}"),
        ),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_only_its_two_files() {
        assert_eq!(file_of("/ferry/v1/index.json").unwrap().0, "index.json");
        assert_eq!(file_of("/ferry/v1/lock").unwrap().0, "ferry.lock");
        assert!(file_of("/ferry/v1/../index.json").is_none());
        assert!(file_of("/ferry/v1/blobs/sha256/00").is_none());
        assert!(file_of("/v2/").is_none());
    }
}
