//! Store URLs: which backend a `--redis-url` names, and where it is.

use super::StoreError;

/// What a store URL names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum StoreUrl {
    /// `memory://`: the embedded store.
    Memory,
    /// `redis://…`, `rediss://…`, `redis+unix://…`, `unix://…`: one Redis (the URL as given).
    Redis(String),
    /// `redis+cluster://…` or `rediss+cluster://…`: a Redis Cluster, reached through
    /// these seed nodes (`redis://[USER:PASS@]HOST:PORT` or `rediss://…` each).
    Cluster(Vec<String>),
}

/// The forms a store URL may take, for error messages.
pub(crate) const URL_FORMS: &str = "use redis://[USER:PASSWORD@]HOST:PORT[/DB] (rediss:// for TLS), redis+unix:///PATH[?pass=PASSWORD], redis+cluster://HOST:PORT[,HOST:PORT…] or memory://";

impl StoreUrl {
    /// Reads a store URL. Errors name the URL with any password hidden.
    pub(crate) fn parse(url: &str) -> Result<Self, StoreError> {
        let Some((scheme, rest)) = url.split_once("://") else {
            return Err(bad(url, "it has no scheme"));
        };
        match scheme {
            "memory" => Ok(StoreUrl::Memory),
            "redis" => Ok(StoreUrl::Redis(url.to_string())),
            "rediss" => tls_url(url, rest).map(StoreUrl::Redis),
            "redis+unix" | "unix" => socket_url(url, rest).map(StoreUrl::Redis),
            "redis+cluster" => cluster_nodes(url, "redis", rest).map(StoreUrl::Cluster),
            "rediss+cluster" => cluster_nodes(url, "rediss", rest).map(StoreUrl::Cluster),
            other => Err(bad(url, &format!("unknown scheme {other:?}"))),
        }
    }
}

/// A `rediss://` URL, unless it asks to skip checking the server's certificate
/// (`#insecure`, which this build of redis-rs refuses at every connection).
fn tls_url(url: &str, rest: &str) -> Result<String, StoreError> {
    if rest.contains('#') {
        return Err(bad(
            url,
            "porki always checks the server's certificate, so a TLS URL takes no #insecure (or other fragment): set PORKI_REDIS_CA to the PEM file of the CA that signed it",
        ));
    }
    Ok(url.to_string())
}

/// A socket URL (`redis+unix:///PATH?user=USER&pass=PASSWORD&db=N`): redis-rs
/// reads credentials from its query only, and would drop a user info unread.
fn socket_url(url: &str, rest: &str) -> Result<String, StoreError> {
    let authority = rest.split(['/', '?', '#']).next().unwrap_or("");
    if authority.contains('@') {
        return Err(bad(
            url,
            "a socket URL names no host and takes its credentials in the query: redis+unix:///PATH?user=USER&pass=PASSWORD",
        ));
    }
    Ok(url.to_string())
}

/// The seed nodes of `SCHEME+cluster://[USER[:PASS]@]HOST[:PORT][,HOST[:PORT]…][/]`,
/// each as `SCHEME://[USER[:PASS]@]HOST:PORT` (port 6379 when not given).
fn cluster_nodes(url: &str, scheme: &str, rest: &str) -> Result<Vec<String>, StoreError> {
    if rest.contains('?') || rest.contains('#') {
        return Err(bad(url, "a cluster URL takes no query or fragment"));
    }
    let (authority, path) = rest.split_once('/').unwrap_or((rest, ""));
    if !path.is_empty() && path != "0" {
        return Err(bad(
            url,
            "Redis Cluster has only database 0, so a cluster URL names no other",
        ));
    }
    let (userinfo, hosts) = match authority.rsplit_once('@') {
        Some((userinfo, hosts)) => (format!("{userinfo}@"), hosts),
        None => (String::new(), authority),
    };
    let nodes: Vec<String> = hosts
        .split(',')
        .map(|node| {
            let node = node.trim();
            if node.is_empty() {
                return Err(bad(url, "a node between commas is empty"));
            }
            // `[::1]:7000`, `host:7000`, `host` (default port).
            let has_port = match node.rfind(']') {
                Some(end) => node[end..].contains(':'),
                None => node.contains(':'),
            };
            let node = if has_port {
                node.to_string()
            } else {
                format!("{node}:6379")
            };
            let port = node.rsplit(':').next().unwrap_or("");
            if port.parse::<u16>().is_err() {
                return Err(bad(url, &format!("{port:?} is not a port")));
            }
            Ok(format!("{scheme}://{userinfo}{node}"))
        })
        .collect::<Result<_, _>>()?;
    Ok(nodes)
}

/// `BadUrl` for `url`, its password hidden.
pub(crate) fn bad(url: &str, reason: &str) -> StoreError {
    StoreError::BadUrl {
        url: redact(url),
        reason: reason.to_string(),
    }
}

/// A URL cut around its user info: scheme, user info (before the authority's
/// last `@`), hosts, then the path, query and fragment.
struct Parts<'a> {
    scheme: &'a str,
    userinfo: Option<&'a str>,
    hosts: &'a str,
    tail: &'a str,
}

fn parts(url: &str) -> Option<Parts<'_>> {
    let (scheme, rest) = url.split_once("://")?;
    let (authority, tail) = rest.split_at(rest.find(['/', '?', '#']).unwrap_or(rest.len()));
    let (userinfo, hosts) = match authority.rsplit_once('@') {
        Some((userinfo, hosts)) => (Some(userinfo), hosts),
        None => (None, authority),
    };
    Some(Parts {
        scheme,
        userinfo,
        hosts,
        tail,
    })
}

/// The query of a URL tail (`PATH?QUERY#FRAGMENT`), and its fragment with its `#`.
fn query_of(tail: &str) -> Option<(&str, &str)> {
    let (_, query) = tail.split_once('?')?;
    Some(match query.find('#') {
        Some(at) => query.split_at(at),
        None => (query, ""),
    })
}

/// Whether a query parameter holds a password (a socket URL's `pass=`).
fn is_password_parameter(name: &str) -> bool {
    matches!(name, "pass" | "password")
}

/// The password a store URL carries, as written: its user info's
/// (`redis://[USER]:PASS@…`, or a lone `redis://PASS@…`, which redis-rs takes
/// as the password), or a socket URL's `pass=`.
pub fn password(url: &str) -> Option<&str> {
    let parts = parts(url)?;
    let from_userinfo = parts
        .userinfo
        .map(|info| info.split_once(':').map_or(info, |(_, p)| p));
    let from_query = || {
        let (query, _) = query_of(parts.tail)?;
        query.split('&').find_map(|pair| {
            let (name, value) = pair.split_once('=')?;
            is_password_parameter(name).then_some(value)
        })
    };
    from_userinfo.or_else(from_query).filter(|p| !p.is_empty())
}

/// `url` with its password replaced by `***`, for logs and errors: the one of
/// its user info (`redis://:secret@host:6379` → `redis://:***@host:6379`) and a
/// socket URL's `pass=` (`redis+unix:///run/redis.sock?pass=***`).
pub fn redact(url: &str) -> String {
    let Some(Parts {
        scheme,
        userinfo,
        hosts,
        tail,
    }) = parts(url)
    else {
        return url.to_string();
    };
    let tail = redact_query(tail);
    match userinfo {
        Some(userinfo) => {
            let user = userinfo.split_once(':').map_or(userinfo, |(user, _)| user);
            let hidden = if userinfo.contains(':') {
                format!("{user}:***")
            } else {
                // `redis://secret@host`: a lone user info is the password to redis-rs.
                "***".to_string()
            };
            format!("{scheme}://{hidden}@{hosts}{tail}")
        }
        None => format!("{scheme}://{hosts}{tail}"),
    }
}

/// `PATH?QUERY#FRAGMENT` with the values of `pass` and `password` in the query
/// replaced by `***`.
fn redact_query(tail: &str) -> String {
    let Some((query, fragment)) = query_of(tail) else {
        return tail.to_string();
    };
    let path = &tail[..tail.find('?').unwrap_or(tail.len())];
    let pairs: Vec<String> = query
        .split('&')
        .map(|pair| match pair.split_once('=') {
            Some((name, _)) if is_password_parameter(name) => format!("{name}=***"),
            _ => pair.to_string(),
        })
        .collect();
    format!("{path}?{}{fragment}", pairs.join("&"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cluster_urls_name_their_seed_nodes() {
        assert_eq!(
            StoreUrl::parse("redis+cluster://127.0.0.1:7000,127.0.0.1:7001").unwrap(),
            StoreUrl::Cluster(vec![
                "redis://127.0.0.1:7000".into(),
                "redis://127.0.0.1:7001".into()
            ])
        );
        assert_eq!(
            StoreUrl::parse("rediss+cluster://u:p%40ss@a,[::1]:7002/").unwrap(),
            StoreUrl::Cluster(vec![
                "rediss://u:p%40ss@a:6379".into(),
                "rediss://u:p%40ss@[::1]:7002".into()
            ])
        );
        assert_eq!(StoreUrl::parse("memory://").unwrap(), StoreUrl::Memory);
        assert_eq!(
            StoreUrl::parse("redis://h:1/2").unwrap(),
            StoreUrl::Redis("redis://h:1/2".into())
        );
    }

    #[test]
    fn bad_urls_say_why_and_never_show_the_password() {
        for (url, reason) in [
            ("redis+cluster://:hunter2@h:7000/3", "only database 0"),
            ("redis+cluster://:hunter2@h:port", "\"port\" is not a port"),
            ("redis+cluster://:hunter2@h:7000,,h:7001", "empty"),
            ("redis+cluster://:hunter2@h:7000?protocol=3", "no query"),
            ("mysql://root:hunter2@h", "unknown scheme \"mysql\""),
            ("hunter2", "no scheme"),
        ] {
            let message = StoreUrl::parse(url).unwrap_err().to_string();
            assert!(message.contains(reason), "{message} should say {reason:?}");
            assert!(
                !message.contains("hunter2") || url == "hunter2",
                "{message}"
            );
            assert!(message.contains("redis+cluster://HOST:PORT"), "{message}");
        }
        assert_eq!(
            redact("redis://user:hunter2@h:6379/0"),
            "redis://user:***@h:6379/0"
        );
        assert_eq!(redact("redis://hunter2@h"), "redis://***@h");
        assert_eq!(redact("redis://h:6379"), "redis://h:6379");
    }

    #[test]
    fn the_password_is_found_wherever_the_url_carries_it() {
        assert_eq!(password("redis://:s3cret@h:6379/0"), Some("s3cret"));
        assert_eq!(password("rediss://user:p%40ss@h:6380"), Some("p%40ss"));
        assert_eq!(password("redis://lone@h"), Some("lone"));
        assert_eq!(
            password("redis+unix:///run/r.sock?db=1&pass=sock#x"),
            Some("sock")
        );
        assert_eq!(password("redis+cluster://:pw@a:1,b:2"), Some("pw"));
        assert_eq!(password("redis://h:6379"), None);
        assert_eq!(password("redis://user:@h"), None);
        assert_eq!(password("memory://"), None);
    }

    #[test]
    fn a_socket_urls_password_is_hidden() {
        assert_eq!(
            redact("redis+unix:///run/r.sock?user=porki&pass=hunter2&db=1"),
            "redis+unix:///run/r.sock?user=porki&pass=***&db=1"
        );
        assert_eq!(
            redact("unix:///run/r.sock?password=hunter2#x"),
            "unix:///run/r.sock?password=***#x"
        );
        assert_eq!(redact("unix:///run/r.sock?db=2"), "unix:///run/r.sock?db=2");
        let message = StoreUrl::parse("redis+unix://:hunter2@/run/r.sock")
            .unwrap_err()
            .to_string();
        assert!(message.contains("?user=USER&pass=PASSWORD"), "{message}");
        assert!(!message.contains("hunter2"), "{message}");
        assert_eq!(
            StoreUrl::parse("redis+unix:///run/r.sock?pass=x").unwrap(),
            StoreUrl::Redis("redis+unix:///run/r.sock?pass=x".into())
        );
    }

    #[test]
    fn a_tls_url_cannot_turn_off_the_certificate_check() {
        let message = StoreUrl::parse("rediss://:hunter2@h:6380/#insecure")
            .unwrap_err()
            .to_string();
        assert!(message.contains("PORKI_REDIS_CA"), "{message}");
        assert!(!message.contains("hunter2"), "{message}");
        assert_eq!(
            StoreUrl::parse("rediss://u:p@h:6380/0").unwrap(),
            StoreUrl::Redis("rediss://u:p@h:6380/0".into())
        );
    }
}
