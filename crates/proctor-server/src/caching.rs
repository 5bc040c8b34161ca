//! HTTP caching of the public reads: a strong `ETag` (the body's SHA-256), a `Cache-Control`
//! that says how long the answer stays right, and `If-None-Match` answered 304 without a body.
//!
//! What may be kept for good ([`Freshness::Immutable`]) is what can never change under its
//! URL: an entry's envelope (a job's, or the log's at an index), a proof between two given
//! tree sizes, a full page of entries. The log only grows, so these stay right; the one
//! exception is an operator beginning a new log on purpose (`proctor log rotate`), after which
//! a front cache must be purged (README, operators). What changes as the log grows (the
//! checkpoint, an attestation with its proof to the current head, a proof to "the current
//! size") is [`Freshness::Revalidate`]: a cache keeps it but asks again each time, and the
//! `ETag` makes that answer a 304 while nothing changed.
//!
//! Only 200 answers carry these headers: an error (a job with no result entry *yet*) must not
//! be kept.

use axum::body::Body;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::Response;
use proctor_core::Sha256Digest;

/// `Cache-Control` of what never changes under its URL: a year, and no revalidation
/// (RFC 8246).
pub const IMMUTABLE: &str = "public, max-age=31536000, immutable";
/// `Cache-Control` of what changes as the log grows: keep it, but revalidate every time.
pub const REVALIDATE: &str = "no-cache";

/// How long an answer stays right.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Freshness {
    /// Never changes under its URL ([`IMMUTABLE`]).
    Immutable,
    /// Changes as the log grows ([`REVALIDATE`]).
    Revalidate,
}

impl Freshness {
    fn header(self) -> HeaderValue {
        HeaderValue::from_static(match self {
            Freshness::Immutable => IMMUTABLE,
            Freshness::Revalidate => REVALIDATE,
        })
    }
}

/// The strong entity tag of `body`: its SHA-256 in hex, quoted.
pub fn entity_tag(body: &[u8]) -> HeaderValue {
    let tag = format!("\"{}\"", Sha256Digest::of(body).to_hex());
    // Hex digits and quotes only: always a valid header value.
    HeaderValue::from_str(&tag).unwrap_or_else(|_| HeaderValue::from_static("\"\""))
}

/// A 200 with `body` and its caching headers, or a 304 with the headers alone when the
/// request's `If-None-Match` names the body's tag.
pub fn respond(
    request: &HeaderMap,
    body: impl Into<Vec<u8>>,
    content_type: &'static str,
    freshness: Freshness,
) -> Response {
    let body = body.into();
    let tag = entity_tag(&body);
    let not_modified = none_match(request, &tag);
    let mut response = if not_modified {
        let mut response = Response::new(Body::empty());
        *response.status_mut() = StatusCode::NOT_MODIFIED;
        response
    } else {
        let mut response = Response::new(Body::from(body));
        response
            .headers_mut()
            .insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
        response
    };
    let headers = response.headers_mut();
    headers.insert(header::ETAG, tag);
    headers.insert(header::CACHE_CONTROL, freshness.header());
    response
}

/// Whether `If-None-Match` matches `tag` (RFC 9110, 13.1.2): `*`, or a list of entity tags
/// one of which weakly equals it (the opaque parts are equal, `W/` or not). A malformed
/// header matches nothing, so the full answer goes out.
pub fn none_match(request: &HeaderMap, tag: &HeaderValue) -> bool {
    let ours = opaque(tag.as_bytes());
    request
        .get_all(header::IF_NONE_MATCH)
        .iter()
        .any(|value| match tags(value.as_bytes()) {
            Some(Listed::Any) => true,
            Some(Listed::Tags(tags)) => tags.iter().any(|t| Some(*t) == ours),
            None => false,
        })
}

/// What an `If-None-Match` value lists.
enum Listed<'a> {
    /// `*`.
    Any,
    /// The opaque parts (quotes included) of its entity tags.
    Tags(Vec<&'a [u8]>),
}

/// Parses `#entity-tag` or `*`; `None` when malformed.
fn tags(value: &[u8]) -> Option<Listed<'_>> {
    let trimmed = value.trim_ascii();
    if trimmed == b"*" {
        return Some(Listed::Any);
    }
    let mut found = Vec::new();
    let mut rest = trimmed;
    loop {
        rest = rest.trim_ascii_start();
        while let Some(after) = rest.strip_prefix(b",") {
            rest = after.trim_ascii_start();
        }
        if rest.is_empty() {
            return Some(Listed::Tags(found));
        }
        let unweak = rest.strip_prefix(b"W/").unwrap_or(rest);
        let body = unweak.strip_prefix(b"\"")?;
        let close = body.iter().position(|&b| b == b'"')?;
        let tag = &unweak[..close + 2];
        if !tag[1..tag.len() - 1].iter().all(|&b| is_etagc(b)) {
            return None;
        }
        found.push(tag);
        rest = &unweak[close + 2..];
        let next = rest.trim_ascii_start();
        if !(next.is_empty() || next.starts_with(b",")) {
            return None;
        }
    }
}

/// The opaque part (quotes included) of one entity tag.
fn opaque(tag: &[u8]) -> Option<&[u8]> {
    let tag = tag.strip_prefix(b"W/").unwrap_or(tag);
    (tag.len() >= 2 && tag.starts_with(b"\"") && tag.ends_with(b"\"")).then_some(tag)
}

/// `etagc = %x21 / %x23-7E / obs-text`.
fn is_etagc(b: u8) -> bool {
    b == 0x21 || (0x23..=0x7e).contains(&b) || b >= 0x80
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(values: &[&str]) -> HeaderMap {
        let mut headers = HeaderMap::new();
        for v in values {
            headers.append(
                header::IF_NONE_MATCH,
                HeaderValue::from_str(v).expect("a header value"),
            );
        }
        headers
    }

    fn tag() -> HeaderValue {
        entity_tag(b"an envelope")
    }

    #[test]
    fn the_tag_is_the_quoted_hex_sha256_of_the_body() {
        let expected = format!("\"{}\"", Sha256Digest::of(b"an envelope").to_hex());
        assert_eq!(tag().to_str().expect("ascii"), expected);
    }

    #[test]
    fn a_listed_tag_matches_strong_or_weak_among_others() {
        let ours = tag().to_str().expect("ascii").to_owned();
        assert!(none_match(&request(&[&ours]), &tag()));
        assert!(none_match(&request(&[&format!("W/{ours}")]), &tag()));
        assert!(none_match(
            &request(&[&format!("\"x\", {ours} ,\"y\"")]),
            &tag()
        ));
        assert!(none_match(&request(&["\"x\"", &ours]), &tag()));
        assert!(none_match(&request(&[" * "]), &tag()));
    }

    #[test]
    fn another_tag_a_malformed_list_or_no_header_matches_nothing() {
        let ours = tag().to_str().expect("ascii").to_owned();
        assert!(!none_match(&request(&[]), &tag()));
        assert!(!none_match(&request(&["\"x\""]), &tag()));
        assert!(!none_match(&request(&[&ours[1..ours.len() - 1]]), &tag()));
        assert!(!none_match(&request(&[&format!("{ours} junk")]), &tag()));
        assert!(!none_match(
            &request(&[&format!("\"unclosed, {ours}")]),
            &tag()
        ));
        assert!(!none_match(&request(&["*, \"x\""]), &tag()));
    }

    #[test]
    fn a_match_is_a_304_without_a_body_and_with_the_same_headers() {
        let ours = tag();
        let full = respond(
            &request(&[]),
            "an envelope",
            "application/json",
            Freshness::Immutable,
        );
        assert_eq!(full.status(), StatusCode::OK);
        assert_eq!(full.headers()[header::ETAG], ours);
        assert_eq!(full.headers()[header::CACHE_CONTROL], IMMUTABLE);
        let again = respond(
            &request(&[ours.to_str().expect("ascii")]),
            "an envelope",
            "application/json",
            Freshness::Revalidate,
        );
        assert_eq!(again.status(), StatusCode::NOT_MODIFIED);
        assert_eq!(again.headers()[header::ETAG], ours);
        assert_eq!(again.headers()[header::CACHE_CONTROL], REVALIDATE);
        assert!(again.headers().get(header::CONTENT_TYPE).is_none());
    }
}
