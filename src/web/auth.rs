//! Who may read the dashboard: every request passes [`guard`].
//!
//! - With a token (`--http-token`, required off loopback), a request must carry
//!   it: `Authorization: Bearer TOKEN`, the `porki_token` cookie, or
//!   `?token=TOKEN` (which sets the cookie, so a browser needs it once).
//! - Without one (loopback only), a request is served only if it comes straight
//!   from this machine: from a loopback address, addressed to a loopback name
//!   (so a web page elsewhere cannot read the dashboard through DNS rebinding),
//!   and with no sign of a proxy in between (a forwarding header, or HTTP/1.0,
//!   which nginx's `proxy_pass` sends by default with `Host` set to the
//!   upstream's loopback address). A proxy on this machine connects from
//!   loopback, so without those signs porki could not tell its requests from a
//!   local browser's: a dashboard behind a proxy needs a token (README).
//!
//! The decisions are pure functions; [`guard`] applies them to requests.

use actix_web::body::{EitherBody, MessageBody};
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::header;
use actix_web::middleware::Next;
use actix_web::{HttpResponse, web};

use super::server::AppState;

/// The cookie that keeps a browser's token.
pub(super) const COOKIE: &str = "porki_token";

/// Why a token given on the command line cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TokenError {
    /// Empty.
    #[error(
        "--http-token (PORKI_HTTP_TOKEN) is empty: give a long random token, e.g. from `openssl rand -hex 24`"
    )]
    Empty,
    /// Holds a character other than letters, digits and `-._~`.
    #[error(
        "--http-token (PORKI_HTTP_TOKEN) may only hold letters, digits and `-._~` (so it travels unchanged in a header, a cookie and a URL): pick another, e.g. from `openssl rand -hex 24`"
    )]
    BadCharacter,
}

/// Checks that `token` travels unchanged in a header, a cookie and a URL.
pub(super) fn check_token(token: &str) -> Result<(), TokenError> {
    if token.is_empty() {
        return Err(TokenError::Empty);
    }
    if token
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~'))
    {
        Ok(())
    } else {
        Err(TokenError::BadCharacter)
    }
}

/// What a request presented.
#[derive(Debug, Default, Clone, Copy)]
pub(super) struct Presented<'a> {
    /// The `Authorization` header.
    pub authorization: Option<&'a str>,
    /// The `porki_token` cookie.
    pub cookie: Option<&'a str>,
    /// The `token` query parameter.
    pub query: Option<&'a str>,
}

/// What to do with a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Decision {
    /// Serve it.
    Allow,
    /// Serve it and keep the query's token in a cookie.
    AllowAndSetCookie,
    /// 401: no token or a wrong one.
    Unauthorized,
}

/// Whether `presented` carries `expected`.
pub(super) fn decide(expected: &str, presented: Presented<'_>) -> Decision {
    let bearer = presented
        .authorization
        .and_then(|h| h.strip_prefix("Bearer "))
        .map(str::trim);
    if bearer.is_some_and(|t| same(t, expected))
        || presented.cookie.is_some_and(|t| same(t, expected))
    {
        return Decision::Allow;
    }
    if presented.query.is_some_and(|t| same(t, expected)) {
        return Decision::AllowAndSetCookie;
    }
    Decision::Unauthorized
}

/// Compares in time that does not depend on where the texts differ.
fn same(given: &str, expected: &str) -> bool {
    let (a, b) = (given.as_bytes(), expected.as_bytes());
    let mut diff = a.len() ^ b.len();
    for (i, &byte) in b.iter().enumerate() {
        diff |= usize::from(byte ^ a.get(i).copied().unwrap_or(0));
    }
    diff == 0
}

/// Whether a `Host` header names this machine's loopback (`localhost`,
/// `127.x.x.x`, `[::1]`, any port); a missing header passes.
pub(super) fn loopback_host(host: Option<&str>) -> bool {
    let Some(host) = host else { return true };
    let name = match host.strip_prefix('[') {
        Some(rest) => rest.split(']').next().unwrap_or(""),
        None => host.rsplit_once(':').map_or(host, |(name, _)| name),
    };
    name.eq_ignore_ascii_case("localhost")
        || name
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

/// Headers a proxy adds to say whom it forwards for.
const FORWARDING: [&str; 6] = [
    "forwarded",
    "x-forwarded-for",
    "x-forwarded-host",
    "x-forwarded-proto",
    "x-real-ip",
    "via",
];

/// What a request without a token shows of where it comes from.
#[derive(Debug, Clone, Copy)]
pub(super) struct Origin<'a> {
    /// The connection's peer address (`None`: unknown).
    pub peer: Option<std::net::IpAddr>,
    /// The `Host` header.
    pub host: Option<&'a str>,
    /// The first forwarding header it carries, if any.
    pub forwarded: Option<&'static str>,
    /// Whether it is HTTP/1.0 (browsers send 1.1 or later).
    pub http10: bool,
}

/// Why a request without a token is refused: it may not come straight from this machine.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum NotLocal {
    /// From another machine (or an address porki could not learn).
    Peer(String),
    /// Addressed to a name that is not loopback.
    Host,
    /// Through a proxy, which shows by this.
    Proxied(String),
}

impl NotLocal {
    /// The 403 answer's text: why, and what to do.
    fn message(&self) -> String {
        match self {
            NotLocal::Peer(peer) => format!(
                "porki serves requests without a token only from this machine, and this one came from {peer}: start it with --http-token to serve others\n"
            ),
            NotLocal::Host => "porki serves loopback names only without a token: open it as http://127.0.0.1:PORT/ \
or http://localhost:PORT/, or start it with --http-token to serve other names\n"
                .to_string(),
            NotLocal::Proxied(sign) => format!(
                "this request came through a proxy ({sign}), and porki serves requests without a token only \
straight from this machine: start it with --http-token, and have the proxy send Authorization: Bearer TOKEN \
or open the dashboard once with ?token=TOKEN (README: the dashboard behind a proxy)\n"
            ),
        }
    }
}

/// Whether a request may be served without a token: it comes straight from
/// this machine (loopback peer, loopback name, no proxy sign).
pub(super) fn local(origin: Origin<'_>) -> Result<(), NotLocal> {
    // An IPv4 peer of a dual-stack socket shows as ::ffff:127.0.0.1.
    match origin.peer.map(|ip| ip.to_canonical()) {
        Some(ip) if ip.is_loopback() => {}
        Some(ip) => return Err(NotLocal::Peer(ip.to_string())),
        None => return Err(NotLocal::Peer("an unknown address".into())),
    }
    if !loopback_host(origin.host) {
        return Err(NotLocal::Host);
    }
    if let Some(header) = origin.forwarded {
        return Err(NotLocal::Proxied(format!("it carries {header}")));
    }
    if origin.http10 {
        return Err(NotLocal::Proxied(
            "it is HTTP/1.0, what nginx's proxy_pass sends by default".into(),
        ));
    }
    Ok(())
}

/// The value of `name` in a `Cookie` header.
fn cookie_value<'a>(header: &'a str, name: &str) -> Option<&'a str> {
    header.split(';').find_map(|pair| {
        let (key, value) = pair.trim().split_once('=')?;
        (key == name).then_some(value)
    })
}

/// The value of `name` in a query string (tokens hold no escapes, see [`check_token`]).
fn query_value<'a>(query: &'a str, name: &str) -> Option<&'a str> {
    query.split('&').find_map(|pair| {
        let (key, value) = pair.split_once('=')?;
        (key == name).then_some(value)
    })
}

/// The middleware: answers 401 or 403 itself, else passes the request on.
pub(super) async fn guard(
    request: ServiceRequest,
    next: Next<impl MessageBody>,
) -> Result<ServiceResponse<EitherBody<impl MessageBody>>, actix_web::Error> {
    let state = request
        .app_data::<web::Data<AppState>>()
        .expect("the app has its state")
        .clone();
    let headers = request.headers();
    let text = |name| headers.get(name).and_then(|v| v.to_str().ok());
    let decision = match &state.token {
        None => {
            let origin = Origin {
                peer: request.peer_addr().map(|a| a.ip()),
                host: text(header::HOST),
                forwarded: FORWARDING.into_iter().find(|h| headers.contains_key(*h)),
                http10: request.version() <= actix_web::http::Version::HTTP_10,
            };
            match local(origin) {
                Ok(()) => Decision::Allow,
                Err(why) => {
                    let response = HttpResponse::Forbidden()
                        .content_type("text/plain; charset=utf-8")
                        .body(why.message());
                    return Ok(request.into_response(response).map_into_right_body());
                }
            }
        }
        Some(expected) => decide(
            expected,
            Presented {
                authorization: text(header::AUTHORIZATION),
                cookie: text(header::COOKIE).and_then(|c| cookie_value(c, COOKIE)),
                query: query_value(request.query_string(), "token"),
            },
        ),
    };
    match decision {
        Decision::Allow => Ok(next.call(request).await?.map_into_left_body()),
        Decision::AllowAndSetCookie => {
            let token = state.token.clone().unwrap_or_default();
            let mut response = next.call(request).await?;
            let cookie = format!("{COOKIE}={token}; Path=/; HttpOnly; SameSite=Strict");
            if let Ok(value) = header::HeaderValue::from_str(&cookie) {
                response.headers_mut().append(header::SET_COOKIE, value);
            }
            Ok(response.map_into_left_body())
        }
        Decision::Unauthorized => {
            let response = HttpResponse::Unauthorized()
                .insert_header((header::WWW_AUTHENTICATE, "Bearer realm=\"porki\""))
                .content_type("text/plain; charset=utf-8")
                .body(
                    "this porki dashboard needs its token: open it once with ?token=TOKEN \
(a cookie keeps it), or send the header Authorization: Bearer TOKEN\n",
                );
            Ok(request.into_response(response).map_into_right_body())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_token_is_taken_from_the_header_the_cookie_or_the_query() {
        let with = |authorization, cookie, query| {
            decide(
                "s3cret",
                Presented {
                    authorization,
                    cookie,
                    query,
                },
            )
        };
        assert_eq!(with(Some("Bearer s3cret"), None, None), Decision::Allow);
        assert_eq!(with(None, Some("s3cret"), None), Decision::Allow);
        assert_eq!(
            with(None, None, Some("s3cret")),
            Decision::AllowAndSetCookie
        );
        assert_eq!(with(None, None, None), Decision::Unauthorized);
        assert_eq!(
            with(Some("Bearer s3cre"), Some("x"), Some("s3cret2")),
            Decision::Unauthorized
        );
        assert_eq!(with(Some("s3cret"), None, None), Decision::Unauthorized);
    }

    #[test]
    fn only_loopback_host_names_pass_without_a_token() {
        for host in [
            "localhost:7878",
            "127.0.0.1:7878",
            "127.1.2.3",
            "[::1]:80",
            "LOCALHOST",
        ] {
            assert!(loopback_host(Some(host)), "{host}");
        }
        for host in [
            "evil.example:7878",
            "10.0.0.1:7878",
            "[fe80::1]:80",
            "localhost.evil.example",
        ] {
            assert!(!loopback_host(Some(host)), "{host}");
        }
        assert!(loopback_host(None));
    }

    #[test]
    fn without_a_token_only_requests_straight_from_this_machine_pass() {
        let loopback = Origin {
            peer: Some("127.0.0.1".parse().unwrap()),
            host: Some("127.0.0.1:7878"),
            forwarded: None,
            http10: false,
        };
        assert_eq!(local(loopback), Ok(()));
        let mapped = Origin {
            peer: Some("::ffff:127.0.0.1".parse().unwrap()),
            ..loopback
        };
        assert_eq!(local(mapped), Ok(()));
        let ipv6 = Origin {
            peer: Some("::1".parse().unwrap()),
            host: Some("[::1]:7878"),
            ..loopback
        };
        assert_eq!(local(ipv6), Ok(()));
        // Another machine, even one that names this one's loopback.
        for peer in ["10.0.0.7", "::ffff:10.0.0.7", "fe80::1"] {
            let remote = Origin {
                peer: Some(peer.parse().unwrap()),
                ..loopback
            };
            assert!(matches!(local(remote), Err(NotLocal::Peer(_))), "{peer}");
        }
        assert!(matches!(
            local(Origin {
                peer: None,
                ..loopback
            }),
            Err(NotLocal::Peer(_))
        ));
        // A loopback peer asking for another name (DNS rebinding, a proxy keeping Host).
        let rebound = Origin {
            host: Some("porki.example.com"),
            ..loopback
        };
        assert_eq!(local(rebound), Err(NotLocal::Host));
        // A proxy on this machine that sets Host to its upstream.
        let forwarded = Origin {
            forwarded: Some("x-forwarded-for"),
            ..loopback
        };
        assert!(matches!(local(forwarded), Err(NotLocal::Proxied(_))));
        let nginx = Origin {
            http10: true,
            ..loopback
        };
        let refused = local(nginx).unwrap_err();
        assert!(refused.message().contains("--http-token"), "{refused:?}");
    }

    #[test]
    fn tokens_must_travel_in_headers_and_cookies() {
        assert_eq!(check_token(""), Err(TokenError::Empty));
        assert_eq!(check_token("a b"), Err(TokenError::BadCharacter));
        assert_eq!(check_token("a;b"), Err(TokenError::BadCharacter));
        assert_eq!(check_token("a+b="), Err(TokenError::BadCharacter));
        assert!(check_token("0123abcd-_.~").is_ok());
        assert_eq!(
            cookie_value("a=1; porki_token=xyz; b=2", COOKIE),
            Some("xyz")
        );
        assert_eq!(query_value("fragment=1&token=abc", "token"), Some("abc"));
    }
}
