//! The environment a CLI child gets: porki's own, minus porki's settings and
//! secrets.
//!
//! A CLI agent runs what a model tells it to (under `--llm-permissions full`,
//! anything), and a `command` provider is any program: neither may learn how to
//! reach the store (its URL and password) or the dashboard (its token), or it
//! could approve its own work or rewrite the plan. So a child gets every
//! variable porki got (its API keys, `PATH`, `HOME`, proxies, locale, the
//! CLI's own settings, whatever the user exported for it) except:
//!
//! - every `PORKI_*` variable (porki's settings, among them `PORKI_REDIS_URL` and
//!   `PORKI_HTTP_TOKEN`); porki then sets `PORKI_WORKSPACE` and
//!   `PORKI_LLM_PERMISSIONS` itself;
//! - every variable whose value holds one of porki's secrets (`REDISCLI_AUTH`,
//!   a copy of the store URL under another name…): a secret shorter than
//!   [`SHORT_SECRET`] characters only when the value is exactly it, so that a
//!   short password does not strip unrelated variables.
//!
//! A variable is read by the same uid through `/proc/<pid>/environ` too, so
//! porki makes its own process non-dumpable before the first child starts
//! ([`hide_own_process`]): only root can then read porki's environment and memory.

use std::ffi::{OsStr, OsString};
use std::os::unix::ffi::OsStrExt;
use std::sync::Once;

/// A secret shorter than this is matched only as a whole value.
pub const SHORT_SECRET: usize = 8;

/// Values no child may see.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Secrets(Vec<String>);

impl Secrets {
    /// porki's secrets: the store URL when it carries a password (the URL, and
    /// its password as written and percent-decoded), and the dashboard token.
    pub fn new(store_url: &str, http_token: Option<&str>) -> Self {
        let mut secrets = Vec::new();
        if let Some(password) = crate::store::password(store_url) {
            secrets.push(store_url.to_string());
            secrets.push(percent_decoded(password));
            secrets.push(password.to_string());
        }
        secrets.extend(http_token.map(str::to_string));
        secrets.retain(|s| !s.is_empty());
        secrets.dedup();
        Self(secrets)
    }

    /// Whether `value` holds one of the secrets.
    fn hidden_in(&self, value: &OsStr) -> bool {
        let value = value.as_bytes();
        self.0.iter().any(|secret| {
            let secret = secret.as_bytes();
            if secret.len() < SHORT_SECRET {
                value == secret
            } else {
                value.windows(secret.len()).any(|w| w == secret)
            }
        })
    }
}

/// `text` with its `%XX` escapes decoded (invalid ones kept as written).
fn percent_decoded(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let escaped = (bytes[i] == b'%')
            .then(|| text.get(i + 1..i + 3))
            .flatten()
            .and_then(|hex| u8::from_str_radix(hex, 16).ok());
        match escaped {
            Some(byte) => {
                out.push(byte);
                i += 3;
            }
            None => {
                out.push(bytes[i]);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// The variables of `vars` a child may see.
pub(crate) fn child_env(
    vars: impl IntoIterator<Item = (OsString, OsString)>,
    secrets: &Secrets,
) -> Vec<(OsString, OsString)> {
    vars.into_iter()
        .filter(|(name, value)| {
            !name.as_bytes().starts_with(b"PORKI_") && !secrets.hidden_in(value)
        })
        .collect()
}

/// Makes porki's process non-dumpable, once: a child of the same uid can then
/// no longer read porki's `/proc/<pid>/environ` (where the secrets are) or its
/// memory. Children are dumpable again (execve resets it).
pub(super) fn hide_own_process() {
    static HIDE: Once = Once::new();
    HIDE.call_once(|| {
        if let Err(e) = nix::sys::prctl::set_dumpable(false) {
            tracing::warn!(error = %e, "cannot make porki non-dumpable: a CLI child running as the same user could read porki's environment from /proc");
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vars(pairs: &[(&str, &str)]) -> Vec<(OsString, OsString)> {
        pairs
            .iter()
            .map(|(k, v)| (OsString::from(k), OsString::from(v)))
            .collect()
    }

    fn names(env: Vec<(OsString, OsString)>) -> Vec<String> {
        env.into_iter()
            .map(|(k, _)| k.to_string_lossy().into_owned())
            .collect()
    }

    #[test]
    fn a_child_gets_the_users_variables_but_no_porki_setting_or_secret() {
        let secrets = Secrets::new(
            "redis://porki:s3cret%40pass@redis.internal:6379/0",
            Some("dashboard-token-123"),
        );
        let env = vars(&[
            ("PATH", "/usr/bin"),
            ("HOME", "/home/u"),
            ("ANTHROPIC_API_KEY", "sk-ant-xyz"),
            ("HTTPS_PROXY", "http://proxy:3128"),
            (
                "PORKI_REDIS_URL",
                "redis://porki:s3cret%40pass@redis.internal",
            ),
            ("PORKI_HTTP_TOKEN", "dashboard-token-123"),
            ("PORKI_LOG_LEVEL", "debug"),
            ("REDISCLI_AUTH", "s3cret@pass"),
            ("STORE", "redis://porki:s3cret%40pass@redis.internal:6379/0"),
            ("CURL_HEADER", "Authorization: Bearer dashboard-token-123"),
        ]);
        assert_eq!(
            names(child_env(env, &secrets)),
            ["PATH", "HOME", "ANTHROPIC_API_KEY", "HTTPS_PROXY"]
        );
    }

    #[test]
    fn a_short_secret_hides_only_a_variable_that_is_exactly_it() {
        let secrets = Secrets::new("redis://:pw@h:1", None);
        let env = vars(&[("A", "pw"), ("B", "/path/with/pw/in/it")]);
        assert_eq!(names(child_env(env, &secrets)), ["B"]);
    }

    #[test]
    fn a_store_url_without_a_password_is_no_secret() {
        assert_eq!(
            Secrets::new("redis://127.0.0.1:6379", None),
            Secrets::default()
        );
        assert_eq!(Secrets::new("memory://", None), Secrets::default());
        assert_eq!(
            Secrets::new("redis://user@h:1/0?x=a:b@c", None),
            Secrets(vec!["redis://user@h:1/0?x=a:b@c".into(), "user".into()])
        );
        assert_eq!(
            Secrets::new("redis+cluster://:p%2Fw@a:1,b:2", None),
            Secrets(vec![
                "redis+cluster://:p%2Fw@a:1,b:2".into(),
                "p/w".into(),
                "p%2Fw".into()
            ])
        );
    }
}
