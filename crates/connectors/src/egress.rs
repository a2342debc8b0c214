//! The egress policy and the HTTP client that enforces it.
//!
//! Name resolution goes through our own resolver, which drops addresses the policy forbids, so
//! the address reqwest connects to is always one that was checked (a name that resolves to a
//! public address once and to 127.0.0.1 the next time cannot slip through). URLs with a literal
//! IP skip resolution and are checked before sending; every redirect hop is checked again.

use std::net::{IpAddr, SocketAddr, ToSocketAddrs};
use std::sync::Arc;
use std::time::Duration;

use ipnet::IpNet;
use reqwest::dns::{Addrs, Name, Resolve, Resolving};
use url::Url;

/// Every outbound call gives up after this long unless the caller sets a shorter timeout.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(30);
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
const MAX_REDIRECTS: usize = 5;

#[derive(Debug, thiserror::Error)]
pub enum EgressError {
    #[error("{0} is not an http(s) URL")]
    BadUrl(String),
    #[error("outbound calls to {0} are not allowed (private, loopback, link-local or metadata)")]
    Forbidden(String),
    #[error("invalid egress allow-list entry {0:?}")]
    BadAllowEntry(String),
}

/// What outbound calls may reach.
#[derive(Clone, Debug, Default)]
pub struct EgressPolicy {
    allowed_nets: Vec<IpNet>,
    allowed_hosts: Vec<String>,
}

impl EgressPolicy {
    /// From `PMAP_EGRESS_ALLOW` entries: CIDRs (`10.0.0.0/8`), addresses, or host names.
    pub fn new(entries: &[String]) -> Result<Self, EgressError> {
        let mut policy = EgressPolicy::default();
        for entry in entries.iter().map(|e| e.trim()).filter(|e| !e.is_empty()) {
            if let Ok(net) = entry.parse::<IpNet>() {
                policy.allowed_nets.push(net);
            } else if let Ok(ip) = entry.parse::<IpAddr>() {
                policy.allowed_nets.push(IpNet::from(ip));
            } else if entry
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '.' || c == '-')
            {
                policy.allowed_hosts.push(entry.to_ascii_lowercase());
            } else {
                return Err(EgressError::BadAllowEntry(entry.to_owned()));
            }
        }
        Ok(policy)
    }

    /// The same policy, also allowing the host of an integration's explicit `api_base_url`
    /// (a self-hosted GitLab on a private network is a deliberate choice of the admin).
    pub fn with_base_url(&self, base_url: Option<&str>) -> Self {
        let mut policy = self.clone();
        let host = base_url
            .and_then(|u| Url::parse(u).ok())
            .and_then(|u| host_of(&u));
        if let Some(host) = host {
            match host.parse::<IpAddr>() {
                Ok(ip) => policy.allowed_nets.push(IpNet::from(ip)),
                Err(_) => policy.allowed_hosts.push(host),
            }
        }
        policy
    }

    fn host_allowed(&self, host: &str) -> bool {
        self.allowed_hosts.iter().any(|h| h == host)
    }

    /// True when an address may be connected to.
    pub fn ip_allowed(&self, ip: IpAddr) -> bool {
        is_public(ip) || self.allowed_nets.iter().any(|net| net.contains(&ip))
    }

    /// Checks a URL before a request (or a redirect) is sent.
    pub fn check_url(&self, url: &Url) -> Result<(), EgressError> {
        if !matches!(url.scheme(), "http" | "https") {
            return Err(EgressError::BadUrl(url.to_string()));
        }
        let host = host_of(url).ok_or_else(|| EgressError::BadUrl(url.to_string()))?;
        if let Ok(ip) = host.parse::<IpAddr>()
            && !self.ip_allowed(ip)
            && !self.host_allowed(&host)
        {
            return Err(EgressError::Forbidden(host));
        }
        Ok(())
    }

    /// An HTTP client that enforces this policy on every connection and redirect.
    pub fn client(&self) -> reqwest::Client {
        let for_redirects = self.clone();
        let redirect = reqwest::redirect::Policy::custom(move |attempt| {
            if attempt.previous().len() >= MAX_REDIRECTS {
                attempt.error("too many redirects")
            } else if let Err(err) = for_redirects.check_url(attempt.url()) {
                attempt.error(err)
            } else {
                attempt.follow()
            }
        });
        reqwest::Client::builder()
            .dns_resolver(Arc::new(CheckedResolver {
                policy: self.clone(),
            }))
            .redirect(redirect)
            .timeout(DEFAULT_TIMEOUT)
            .connect_timeout(CONNECT_TIMEOUT)
            .user_agent(concat!("pmap/", env!("CARGO_PKG_VERSION")))
            .build()
            .expect("the HTTP client configuration is static")
    }
}

fn host_of(url: &Url) -> Option<String> {
    let host = url
        .host_str()?
        .trim_start_matches('[')
        .trim_end_matches(']');
    Some(host.to_ascii_lowercase())
}

/// Resolves names and keeps only addresses the policy allows.
struct CheckedResolver {
    policy: EgressPolicy,
}

impl Resolve for CheckedResolver {
    fn resolve(&self, name: Name) -> Resolving {
        let policy = self.policy.clone();
        Box::pin(async move {
            let host = name.as_str().to_ascii_lowercase();
            let lookup = host.clone();
            let addrs: Vec<SocketAddr> =
                tokio::task::spawn_blocking(move || (lookup.as_str(), 0).to_socket_addrs())
                    .await
                    .map_err(|e| Box::new(e) as Box<dyn std::error::Error + Send + Sync>)??
                    .collect();
            let named = policy.host_allowed(&host);
            let allowed: Vec<SocketAddr> = addrs
                .into_iter()
                .filter(|a| named || policy.ip_allowed(a.ip()))
                .collect();
            if allowed.is_empty() {
                return Err(Box::new(EgressError::Forbidden(host))
                    as Box<dyn std::error::Error + Send + Sync>);
            }
            Ok(Box::new(allowed.into_iter()) as Addrs)
        })
    }
}

/// Globally routable unicast: not loopback, private, link-local (incl. cloud metadata
/// 169.254.169.254), shared, documentation, multicast or unspecified.
pub fn is_public(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => {
            let [a, b, ..] = v4.octets();
            !(v4.is_loopback()
                || v4.is_private()
                || v4.is_link_local()
                || v4.is_broadcast()
                || v4.is_documentation()
                || v4.is_unspecified()
                || v4.is_multicast()
                || a == 0
                || (a == 100 && (64..128).contains(&b))
                || (a == 192 && b == 0)
                || (a == 198 && (b == 18 || b == 19))
                || a >= 240)
        }
        IpAddr::V6(v6) => {
            if let Some(v4) = v6.to_ipv4_mapped() {
                return is_public(IpAddr::V4(v4));
            }
            let first = v6.segments()[0];
            !(v6.is_loopback()
                || v6.is_unspecified()
                || v6.is_multicast()
                || (first & 0xfe00) == 0xfc00
                || (first & 0xffc0) == 0xfe80
                || first == 0x2001 && v6.segments()[1] == 0x0db8)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(ip: &str, public: bool) {
        assert_eq!(is_public(ip.parse().unwrap()), public, "{ip}");
    }

    #[test]
    fn address_classes() {
        check("8.8.8.8", true);
        check("140.82.112.3", true);
        check("127.0.0.1", false);
        check("10.1.2.3", false);
        check("172.16.0.1", false);
        check("192.168.1.1", false);
        check("169.254.169.254", false);
        check("100.64.0.1", false);
        check("0.0.0.0", false);
        check("::1", false);
        check("fd00::1", false);
        check("fe80::1", false);
        check("::ffff:127.0.0.1", false);
        check("2606:4700::1111", true);
    }

    #[test]
    fn urls_are_checked_with_the_allow_list_and_base_url() {
        let policy = EgressPolicy::new(&["10.0.0.0/8".into(), "ci.internal".into()]).unwrap();
        let url = |s: &str| Url::parse(s).unwrap();
        assert!(policy.check_url(&url("https://10.2.3.4/x")).is_ok());
        assert!(policy.check_url(&url("http://127.0.0.1:8080/")).is_err());
        assert!(policy.check_url(&url("http://[::1]/")).is_err());
        assert!(
            policy
                .check_url(&url("http://169.254.169.254/latest/meta-data"))
                .is_err()
        );
        assert!(policy.check_url(&url("file:///etc/passwd")).is_err());
        let with_base = policy.with_base_url(Some("http://127.0.0.1:9999/api"));
        assert!(with_base.check_url(&url("http://127.0.0.1:8080/")).is_ok());
        assert!(EgressPolicy::new(&["not a host!".into()]).is_err());
    }

    #[tokio::test]
    async fn names_resolving_to_forbidden_addresses_are_refused_at_connect() {
        let policy = EgressPolicy::new(&[]).unwrap();
        let err = policy
            .client()
            .get("http://localhost:9/")
            .send()
            .await
            .unwrap_err();
        let chain = format!("{err:?}");
        assert!(chain.contains("Forbidden"), "{chain}");
    }
}
