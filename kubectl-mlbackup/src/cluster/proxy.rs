//! Which proxy the API server is reached through, by kubectl's rules: the kubeconfig cluster's
//! `proxy-url` (http, https or socks5) whatever the environment says; else `HTTPS_PROXY` (for an
//! `https://` server) or `HTTP_PROXY` (`http://`), unless the server is `localhost`, a loopback
//! address, or matched by `NO_PROXY` (Go's `httpproxy` rules, which kubectl uses).

use std::net::IpAddr;
use std::str::FromStr;

use crate::env::ProxyVars;

/// Where the proxy setting came from, to name it in messages.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProxySource {
    /// The `proxy-url` of the kubeconfig's cluster.
    Kubeconfig,
    /// `HTTPS_PROXY` (or `https_proxy`).
    HttpsProxy,
    /// `HTTP_PROXY` (or `http_proxy`).
    HttpProxy,
}

impl std::fmt::Display for ProxySource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            ProxySource::Kubeconfig => "the proxy-url of the kubeconfig's cluster",
            ProxySource::HttpsProxy => "HTTPS_PROXY",
            ProxySource::HttpProxy => "HTTP_PROXY",
        })
    }
}

/// A proxy setting that cannot be used. The URL is shown without its user and password.
#[derive(Debug, thiserror::Error)]
pub enum ProxyError {
    #[error("{source_of} `{url}` is not a URL")]
    NotAUrl { source_of: ProxySource, url: String },

    #[error(
        "{source_of} `{url}` uses the scheme `{scheme}`; the proxy must be http, https or socks5"
    )]
    UnsupportedScheme {
        source_of: ProxySource,
        url: String,
        scheme: String,
    },
}

/// The schemes kubectl (and kube-rs) can reach a proxy with.
const SCHEMES: [&str; 3] = ["http", "https", "socks5"];

/// The proxy to reach `server` through, if any: `kubeconfig_proxy` (the cluster's `proxy-url`)
/// when set, else the environment's.
pub fn choose(
    kubeconfig_proxy: Option<&str>,
    server: &http::Uri,
    env: &ProxyVars,
) -> Result<Option<(http::Uri, ProxySource)>, ProxyError> {
    if let Some(url) = kubeconfig_proxy.filter(|u| !u.is_empty()) {
        let source_of = ProxySource::Kubeconfig;
        let uri = http::Uri::from_str(url).map_err(|_| ProxyError::NotAUrl {
            source_of,
            url: redacted(url),
        })?;
        return supported(uri, url, source_of).map(|uri| Some((uri, source_of)));
    }
    let (value, source_of) = if server.scheme_str() == Some("http") {
        (&env.http_proxy, ProxySource::HttpProxy)
    } else {
        (&env.https_proxy, ProxySource::HttpsProxy)
    };
    let Some(value) = value.as_deref().filter(|v| !v.is_empty()) else {
        return Ok(None);
    };
    if !use_proxy(server, env.no_proxy.as_deref().unwrap_or_default()) {
        return Ok(None);
    }
    // Go's `parseProxy`: a value without a scheme it knows is tried as `http://VALUE`.
    let parsed = http::Uri::from_str(value)
        .ok()
        .filter(|uri| uri.scheme_str().is_some_and(|s| SCHEMES.contains(&s)))
        .or_else(|| http::Uri::from_str(&format!("http://{value}")).ok())
        .ok_or_else(|| ProxyError::NotAUrl {
            source_of,
            url: redacted(value),
        })?;
    supported(parsed, value, source_of).map(|uri| Some((uri, source_of)))
}

fn supported(uri: http::Uri, text: &str, source_of: ProxySource) -> Result<http::Uri, ProxyError> {
    match uri.scheme_str() {
        Some(scheme) if SCHEMES.contains(&scheme) && uri.host().is_some() => Ok(uri),
        Some(scheme) if !SCHEMES.contains(&scheme) => Err(ProxyError::UnsupportedScheme {
            source_of,
            url: redacted(text),
            scheme: scheme.to_string(),
        }),
        _ => Err(ProxyError::NotAUrl {
            source_of,
            url: redacted(text),
        }),
    }
}

/// A proxy URL without the user and password it may carry.
pub fn redacted(url: &str) -> String {
    let (scheme, rest) = match url.split_once("://") {
        Some((scheme, rest)) => (format!("{scheme}://"), rest),
        None => (String::new(), url),
    };
    let authority_end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    match rest[..authority_end].rfind('@') {
        Some(at) => format!("{scheme}***@{}", &rest[at + 1..]),
        None => url.to_string(),
    }
}

/// Whether a request to `server` goes through the environment's proxy (Go's
/// `httpproxy.config.useProxy`): never for `localhost` or a loopback address; not for a server
/// `no_proxy` matches (`*`, IP addresses and CIDR ranges, domains with their subdomains,
/// `.domain` for subdomains only, each optionally with a port).
fn use_proxy(server: &http::Uri, no_proxy: &str) -> bool {
    let Some(host) = server.host() else {
        return true;
    };
    let host = host
        .trim_start_matches('[')
        .trim_end_matches(']')
        .to_ascii_lowercase();
    let port = server
        .port_u16()
        .unwrap_or(if server.scheme_str() == Some("http") {
            80
        } else {
            443
        })
        .to_string();
    let ip = IpAddr::from_str(&host).ok();
    if host == "localhost" || ip.is_some_and(|ip| ip.is_loopback()) {
        return false;
    }
    for entry in no_proxy.split(',') {
        let entry = entry.trim().to_ascii_lowercase();
        if entry.is_empty() {
            continue;
        }
        if entry == "*" {
            return false;
        }
        if let Ok(range) = ipnet::IpNet::from_str(&entry) {
            if ip.is_some_and(|ip| range.contains(&ip)) {
                return false;
            }
            continue;
        }
        let (entry_host, entry_port) = split_host_port(&entry);
        if entry_host.is_empty() {
            continue;
        }
        let port_matches = entry_port.is_none_or(|p| p == port);
        if let Ok(entry_ip) = IpAddr::from_str(entry_host) {
            if ip == Some(entry_ip) && port_matches {
                return false;
            }
            continue;
        }
        // `*.domain` is `.domain`: subdomains only; `domain`: itself and its subdomains.
        let domain = match entry_host.strip_prefix("*.") {
            Some(rest) => &entry_host[entry_host.len() - rest.len() - 1..],
            None => entry_host,
        };
        let matched = match domain.strip_prefix('.') {
            Some(bare) => !bare.is_empty() && host.ends_with(domain),
            None => host == domain || host.ends_with(&format!(".{domain}")),
        };
        if matched && port_matches {
            return false;
        }
    }
    true
}

/// `host:port`, `[v6]:port` or a bare host; the port only when it is one.
fn split_host_port(entry: &str) -> (&str, Option<&str>) {
    if let Some(rest) = entry.strip_prefix('[') {
        return match rest.split_once(']') {
            Some((host, tail)) => (host, tail.strip_prefix(':').filter(|p| !p.is_empty())),
            None => (entry, None),
        };
    }
    match entry.rsplit_once(':') {
        // A bare IPv6 address has several colons and no port.
        Some((host, port)) if !host.contains(':') && port.bytes().all(|b| b.is_ascii_digit()) => {
            (host, Some(port).filter(|p| !p.is_empty()))
        }
        _ => (entry, None),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vars(https: Option<&str>, http: Option<&str>, no_proxy: Option<&str>) -> ProxyVars {
        ProxyVars {
            https_proxy: https.map(str::to_string),
            http_proxy: http.map(str::to_string),
            no_proxy: no_proxy.map(str::to_string),
        }
    }

    fn chosen(kubeconfig: Option<&str>, server: &str, env: &ProxyVars) -> Option<String> {
        choose(kubeconfig, &server.parse().unwrap(), env)
            .unwrap()
            .map(|(uri, _)| uri.to_string())
    }

    #[test]
    fn the_kubeconfigs_proxy_url_wins_and_ignores_no_proxy() {
        let env = vars(Some("http://env-proxy:3128"), None, Some("*"));
        assert_eq!(
            chosen(
                Some("socks5://127.0.0.1:1080"),
                "https://cluster.invalid:6443",
                &env
            ),
            Some("socks5://127.0.0.1:1080/".to_string())
        );
        assert_eq!(
            chosen(None, "https://cluster.invalid:6443", &env),
            None,
            "NO_PROXY=* turns the environment's proxy off"
        );
        let err = choose(
            Some("ftp://user:secret@proxy:21"),
            &"https://c:6443".parse().unwrap(),
            &env,
        )
        .unwrap_err();
        assert_eq!(
            err.to_string(),
            "the proxy-url of the kubeconfig's cluster `ftp://***@proxy:21` uses the scheme \
             `ftp`; the proxy must be http, https or socks5"
        );
    }

    #[test]
    fn the_environment_proxy_follows_the_servers_scheme_and_defaults_to_http() {
        let env = vars(Some("proxy.corp:3128"), Some("http://plain:80"), None);
        assert_eq!(
            chosen(None, "https://api.example.com", &env),
            Some("http://proxy.corp:3128/".to_string())
        );
        assert_eq!(
            chosen(None, "http://api.example.com", &env),
            Some("http://plain:80/".to_string())
        );
        assert_eq!(
            chosen(None, "https://api.example.com", &vars(None, None, None)),
            None
        );
    }

    #[test]
    fn loopback_servers_and_no_proxy_matches_go_direct() {
        let env = |no_proxy: &str| vars(Some("http://proxy:3128"), None, Some(no_proxy));
        let direct = |server: &str, no_proxy: &str| chosen(None, server, &env(no_proxy)).is_none();
        assert!(direct("https://127.0.0.1:6443", ""));
        assert!(direct("https://[::1]:6443", ""));
        assert!(direct("https://localhost:6443", ""));
        assert!(!direct("https://10.1.2.3:6443", ""));
        assert!(direct("https://10.1.2.3:6443", "10.0.0.0/8"));
        assert!(direct("https://10.1.2.3:6443", "10.1.2.3"));
        assert!(direct("https://10.1.2.3:6443", "10.1.2.3:6443"));
        assert!(!direct("https://10.1.2.3:6443", "10.1.2.3:443"));
        assert!(direct("https://api.example.com", "example.com"));
        assert!(direct("https://example.com", "example.com"));
        assert!(direct("https://api.example.com", ".example.com"));
        assert!(!direct("https://example.com", ".example.com"));
        assert!(direct("https://api.example.com", "*.example.com"));
        assert!(!direct("https://notexample.com", "example.com"));
        assert!(direct("https://api.example.com:6443", "example.com:6443"));
        assert!(!direct("https://api.example.com:6443", "example.com:443"));
        assert!(direct("https://API.Example.com", ",, .svc , EXAMPLE.COM,"));
        assert!(direct("https://cluster.invalid:6443", "*"));
    }

    #[test]
    fn proxy_urls_are_shown_without_credentials() {
        assert_eq!(
            redacted("http://user:p%40ss@proxy:3128/x@y"),
            "http://***@proxy:3128/x@y"
        );
        assert_eq!(redacted("user:pw@proxy:3128"), "***@proxy:3128");
        assert_eq!(redacted("http://proxy:3128"), "http://proxy:3128");
    }
}
