//! Which browser origins may call the API: the CORS allow-list, also applied to WebSocket
//! upgrades (browsers do not preflight those, so the server checks `Origin` itself).

use axum::http::HeaderValue;

/// The allowed origins: exact ones (`https://crm.example.com`) and any-port patterns
/// (`http://localhost:*`). Empty by default: same-origin only.
#[derive(Clone, Debug, Default)]
pub struct Origins {
    exact: Vec<String>,
    /// `scheme://host:` prefixes of `...:*` patterns.
    any_port: Vec<String>,
}

/// Why an origin was not accepted in the configuration.
#[derive(Debug, thiserror::Error)]
#[error("{0:?} is not an origin: give scheme://host[:port] (or scheme://host:* for any port), with no path")]
pub struct BadOrigin(String);

impl Origins {
    /// Same-origin only.
    pub fn none() -> Self {
        Self::default()
    }

    /// Parses configured origins such as `http://localhost:5173` or `http://localhost:*`.
    pub fn parse<S: AsRef<str>>(origins: impl IntoIterator<Item = S>) -> Result<Self, BadOrigin> {
        let mut parsed = Self::default();
        for raw in origins {
            let raw = raw.as_ref().trim().trim_end_matches('/');
            let bad = || BadOrigin(raw.to_owned());
            let (scheme, rest) = raw.split_once("://").ok_or_else(bad)?;
            if !matches!(scheme, "http" | "https") || rest.is_empty() || rest.contains('/') {
                return Err(bad());
            }
            match rest.strip_suffix(":*") {
                Some(host) if !host.is_empty() => {
                    parsed.any_port.push(format!("{scheme}://{host}:"));
                }
                Some(_) => return Err(bad()),
                None => parsed.exact.push(raw.to_owned()),
            }
        }
        Ok(parsed)
    }

    /// Adds every port of `http://localhost` and `http://127.0.0.1` (the demo's dev servers).
    pub fn with_local_dev_servers(mut self) -> Self {
        for host in ["http://localhost:", "http://127.0.0.1:"] {
            self.any_port.push(host.to_owned());
        }
        self
    }

    /// Whether a request from `origin` may be served.
    pub fn allows(&self, origin: &HeaderValue) -> bool {
        let Ok(origin) = origin.to_str() else {
            return false;
        };
        self.exact.iter().any(|o| o.eq_ignore_ascii_case(origin))
            || self.any_port.iter().any(|prefix| {
                origin.len() > prefix.len()
                    && origin[..prefix.len()].eq_ignore_ascii_case(prefix)
                    && origin[prefix.len()..].bytes().all(|b| b.is_ascii_digit())
            })
    }

    /// Whether a WebSocket upgrade may be served: no `Origin` (not a browser), the server's own
    /// origin (`Origin`'s host and port are the `Host` the request was sent to), or an allowed
    /// one.
    pub fn allows_socket(&self, origin: Option<&HeaderValue>, host: Option<&HeaderValue>) -> bool {
        let Some(origin) = origin else {
            return true;
        };
        let same = match (origin.to_str(), host.and_then(|h| h.to_str().ok())) {
            (Ok(origin), Some(host)) => origin
                .split_once("://")
                .is_some_and(|(_, authority)| authority.eq_ignore_ascii_case(host)),
            _ => false,
        };
        same || self.allows(origin)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn h(s: &str) -> HeaderValue {
        HeaderValue::from_str(s).unwrap()
    }

    #[test]
    fn exact_and_any_port_origins() {
        let o = Origins::parse(["https://crm.example.com", "http://localhost:*"]).unwrap();
        assert!(o.allows(&h("https://crm.example.com")));
        assert!(!o.allows(&h("https://crm.example.com.evil.io")));
        assert!(!o.allows(&h("http://crm.example.com")));
        assert!(o.allows(&h("http://localhost:5173")));
        assert!(!o.allows(&h("http://localhost:5173.evil.io")));
        assert!(!o.allows(&h("http://localhost")));
        assert!(!o.allows(&h("http://localhostx:80")));
    }

    #[test]
    fn none_allows_no_cross_origin() {
        assert!(!Origins::none().allows(&h("http://localhost:5173")));
        assert!(Origins::none()
            .with_local_dev_servers()
            .allows(&h("http://127.0.0.1:3000")));
    }

    #[test]
    fn bad_configuration_is_refused() {
        for bad in [
            "localhost:5173",
            "ftp://x",
            "http://x/path",
            "http://:*",
            "http://",
        ] {
            assert!(Origins::parse([bad]).is_err(), "{bad}");
        }
    }

    #[test]
    fn sockets_from_non_browsers_and_the_same_origin_are_served() {
        let o = Origins::none();
        assert!(o.allows_socket(None, Some(&h("127.0.0.1:8080"))));
        assert!(o.allows_socket(
            Some(&h("http://127.0.0.1:8080")),
            Some(&h("127.0.0.1:8080"))
        ));
        assert!(!o.allows_socket(Some(&h("http://evil.io")), Some(&h("127.0.0.1:8080"))));
        assert!(!o.allows_socket(Some(&h("null")), Some(&h("127.0.0.1:8080"))));
    }
}
