//! The same-origin check for state-changing forms that are reached through a link (manage,
//! unsubscribe): a browser sends `Origin` (and `Sec-Fetch-Site`) with every form POST, so a
//! form on another site that posts to us is told apart and refused. Clients that send neither
//! (mail clients, scripts) are not browsers and cannot be tricked into posting.
//! The RFC 8058 one-click POST is exempt: it must work from any origin.

use axum::http::{header, HeaderMap};

/// Whether a POST with `headers` comes from our own pages (or from no browser at all):
/// - `Sec-Fetch-Site` (sent by current browsers whatever the referrer policy) must say
///   `same-origin` or `none` (typed or bookmarked);
/// - without it, an `Origin` must be `own_origin` (`server.base_url`'s) or name the host the
///   request was sent to (`Host`), as when the service is reached under another name;
///   `Origin: null` is what browsers send under our `Referrer-Policy: no-referrer`, so it is
///   let through, like a request with neither header: the page's URL holds an unguessable
///   token, which a foreign page cannot know either.
pub fn allowed(headers: &HeaderMap, own_origin: &str) -> bool {
    if let Some(site) = headers.get("sec-fetch-site") {
        return matches!(site.to_str(), Ok("same-origin" | "none"));
    }
    let Some(origin) = headers.get(header::ORIGIN) else {
        return true;
    };
    let Ok(origin) = origin.to_str() else {
        return false;
    };
    if origin == "null" {
        return true;
    }
    let host = headers.get(header::HOST).and_then(|h| h.to_str().ok());
    let authority = origin.split_once("://").map(|(_, a)| a);
    origin.eq_ignore_ascii_case(own_origin)
        || authority.is_some_and(|a| host.is_some_and(|h| a.eq_ignore_ascii_case(h)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        pairs
            .iter()
            .map(|(k, v)| (header::HeaderName::from_static(k), v.parse().unwrap()))
            .collect()
    }

    #[test]
    fn our_origin_passes_and_others_do_not() {
        let own = "https://news.example.org";
        assert!(allowed(
            &headers(&[("origin", "https://news.example.org")]),
            own
        ));
        assert!(!allowed(
            &headers(&[("origin", "https://evil.example")]),
            own
        ));
        let sandboxed = headers(&[("origin", "null"), ("sec-fetch-site", "cross-site")]);
        assert!(!allowed(&sandboxed, own));
        let no_referrer = headers(&[("origin", "null"), ("sec-fetch-site", "same-origin")]);
        assert!(allowed(&no_referrer, own));
        assert!(!allowed(&headers(&[("sec-fetch-site", "cross-site")]), own));
        assert!(allowed(&headers(&[("sec-fetch-site", "same-origin")]), own));
        assert!(allowed(&headers(&[]), own));
        let proxied = headers(&[
            ("origin", "http://127.0.0.1:3000"),
            ("host", "127.0.0.1:3000"),
        ]);
        assert!(allowed(&proxied, own));
        let forged = headers(&[
            ("origin", "https://evil.example"),
            ("host", "127.0.0.1:3000"),
        ]);
        assert!(!allowed(&forged, own));
    }
}
