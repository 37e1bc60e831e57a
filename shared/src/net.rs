//! The outbound address policy for URLs and hosts an admin supplies (chatbot webhooks, Infobip base URLs,
//! mail servers, OAuth token endpoints): https only, and never an address inside our own network.
//!
//! Checked twice: when the admin saves the URL (`check_url` plus `check_url_resolves`, a 422 in English and
//! Russian), and at every call against the addresses actually resolved (`resolve`, `GuardedClient`), so a
//! name that resolves to a public address when saved and to 169.254.169.254 later (DNS rebinding) is still
//! refused: the connection goes only to an address that passed the check.
//!
//! The development setting `OMNICHAT_ALLOW_LOOPBACK_PROVIDERS=1` (or `OutboundPolicy::allowing_loopback`
//! in tests) lets these URLs and hosts point at this machine (127.0.0.0/8, ::1, `localhost`), also over
//! plain http; every other range stays refused.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use reqwest::Url;

/// Set to `1` to let admin-supplied URLs and hosts point at this machine (local runner, tests).
pub const ALLOW_LOOPBACK_ENV: &str = "OMNICHAT_ALLOW_LOOPBACK_PROVIDERS";

/// How long a save-time DNS check may take; a name that does not resolve by then is checked at call time.
const SAVE_TIME_LOOKUP: Duration = Duration::from_secs(3);

/// Which addresses admin-supplied URLs may reach.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct OutboundPolicy {
    allow_loopback: bool,
}

/// Why a URL, host or address is refused. `message` is the text an admin sees.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    #[error("not an absolute https URL")]
    NotHttps,
    #[error("the URL carries credentials")]
    Credentials,
    #[error("no host")]
    NoHost,
    /// The address (or one the name resolves to) is in a range that is never called.
    #[error("resolves to a {range} address")]
    Forbidden { range: &'static str },
    /// The name does not resolve (at call time: nothing to connect to).
    #[error("the host name does not resolve")]
    Unresolvable,
}

impl Refusal {
    /// English, then Russian, like every rule message an admin sees.
    pub fn message(&self) -> String {
        match self {
            Refusal::NotHttps => {
                "must be an absolute https:// URL / укажите полный адрес, начинающийся с https://".into()
            }
            Refusal::Credentials => {
                "must not carry a user name or password / адрес не должен содержать логин или пароль".into()
            }
            Refusal::NoHost => "must name a host / укажите имя сервера".into(),
            Refusal::Forbidden { range } => format!(
                "must be a public internet address; this one is {range} / \
                 адрес должен быть публичным адресом в интернете, а этот — {}",
                russian_range(range)
            ),
            Refusal::Unresolvable => "the host name does not resolve / имя сервера не находится в DNS".into(),
        }
    }
}

fn russian_range(range: &str) -> &'static str {
    match range {
        "loopback" => "адрес этой же машины (loopback)",
        "private" => "адрес частной сети",
        "link-local" => "link-local-адрес (в том числе адрес метаданных облака)",
        "shared (CGNAT)" => "адрес операторской NAT (100.64.0.0/10)",
        "unspecified" => "неуказанный адрес",
        "multicast" => "групповой (multicast) адрес",
        "broadcast" => "широковещательный адрес",
        "unique-local" => "уникальный локальный адрес IPv6",
        _ => "зарезервированный адрес",
    }
}

/// The range `ip` belongs to when it is one admin-supplied URLs must never reach, else `None`. IPv4 inside
/// IPv6 (mapped `::ffff:a.b.c.d`, compatible `::a.b.c.d`, NAT64 `64:ff9b::/96`, 6to4 `2002::/16`) is judged
/// by the IPv4 address it carries.
pub fn forbidden_range(ip: IpAddr) -> Option<&'static str> {
    match ip {
        IpAddr::V4(v4) => forbidden_v4(v4),
        IpAddr::V6(v6) => forbidden_v6(v6),
    }
}

fn forbidden_v4(ip: Ipv4Addr) -> Option<&'static str> {
    let [a, b, c, _] = ip.octets();
    Some(match (a, b, c) {
        _ if ip.is_unspecified() => "unspecified",
        _ if ip.is_broadcast() => "broadcast",
        (0, _, _) => "reserved (this network)",
        (127, _, _) => "loopback",
        (10, _, _) | (192, 168, _) => "private",
        (172, 16..=31, _) => "private",
        (169, 254, _) => "link-local",
        (100, 64..=127, _) => "shared (CGNAT)",
        (192, 0, 0) => "reserved (IETF protocol assignments)",
        (192, 0, 2) | (198, 51, 100) | (203, 0, 113) => "reserved (documentation)",
        (198, 18..=19, _) => "reserved (benchmarking)",
        (224..=239, _, _) => "multicast",
        (240..=255, _, _) => "reserved",
        _ => return None,
    })
}

fn forbidden_v6(ip: Ipv6Addr) -> Option<&'static str> {
    if let Some(v4) = embedded_v4(ip) {
        return forbidden_v4(v4);
    }
    let segments = ip.segments();
    Some(match segments[0] {
        _ if ip.is_unspecified() => "unspecified",
        _ if ip.is_loopback() => "loopback",
        // ::/96 without an IPv4 address in it (::2 ... ::ffff), and the discard prefix 100::/64.
        0 => "reserved",
        0x100 if segments[1..4] == [0, 0, 0] => "reserved (discard)",
        s if s & 0xffc0 == 0xfe80 => "link-local",
        s if s & 0xffc0 == 0xfec0 => "private",
        s if s & 0xfe00 == 0xfc00 => "unique-local",
        s if s & 0xff00 == 0xff00 => "multicast",
        0x2001 if segments[1] == 0x0db8 => "reserved (documentation)",
        // Teredo: the IPv4 server and client inside are obfuscated; nothing we call lives there.
        0x2001 if segments[1] == 0 => "reserved (Teredo)",
        _ => return None,
    })
}

/// The IPv4 address an IPv6 address carries: mapped `::ffff:0:0/96`, compatible `::/96` (past `::1`),
/// NAT64 `64:ff9b::/96`, 6to4 `2002::/16`.
fn embedded_v4(ip: Ipv6Addr) -> Option<Ipv4Addr> {
    let s = ip.segments();
    let low = |hi: u16, lo: u16| Ipv4Addr::new((hi >> 8) as u8, hi as u8, (lo >> 8) as u8, lo as u8);
    match s {
        [0, 0, 0, 0, 0, 0xffff, hi, lo] => Some(low(hi, lo)),
        [0, 0, 0, 0, 0, 0, hi, lo] if (hi, lo) > (0, 1) && hi != 0 => Some(low(hi, lo)),
        [0x64, 0xff9b, 0, 0, 0, 0, hi, lo] => Some(low(hi, lo)),
        [0x2002, hi, lo, ..] => Some(low(hi, lo)),
        _ => None,
    }
}

fn is_loopback(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => v4.is_loopback(),
        IpAddr::V6(v6) => v6.is_loopback() || v6.to_ipv4_mapped().is_some_and(|v4| v4.is_loopback()),
    }
}

/// A host as written in a URL or a setting: `[::1]` and `::1` alike.
fn bare_host(host: &str) -> &str {
    host.trim_start_matches('[').trim_end_matches(']')
}

impl OutboundPolicy {
    /// Public addresses only, https only: what production runs with.
    pub const fn strict() -> Self {
        Self { allow_loopback: false }
    }

    /// Also this machine (127.0.0.0/8, ::1, `localhost`), also over plain http: tests and the local runner
    /// against local fakes.
    pub const fn allowing_loopback() -> Self {
        Self { allow_loopback: true }
    }

    /// `OMNICHAT_ALLOW_LOOPBACK_PROVIDERS=1` allows loopback; anything else is strict.
    pub fn from_env() -> Self {
        if std::env::var(ALLOW_LOOPBACK_ENV).is_ok_and(|v| v.trim() == "1") {
            Self::allowing_loopback()
        } else {
            Self::strict()
        }
    }

    pub fn allows_loopback(self) -> bool {
        self.allow_loopback
    }

    /// Whether an address may be connected to.
    pub fn check_ip(self, ip: IpAddr) -> Result<(), Refusal> {
        if self.allow_loopback && is_loopback(ip) {
            return Ok(());
        }
        match forbidden_range(ip) {
            Some(range) => Err(Refusal::Forbidden { range }),
            None => Ok(()),
        }
    }

    /// Whether a host name or address literal names this machine, as far as can be told without DNS.
    pub fn names_loopback(host: &str) -> bool {
        let host = bare_host(host);
        host.eq_ignore_ascii_case("localhost") || host.parse::<IpAddr>().is_ok_and(is_loopback)
    }

    /// A host as written (name or address literal): an address literal must pass `check_ip`. Names are
    /// checked when resolved.
    pub fn check_host(self, host: &str) -> Result<(), Refusal> {
        let host = bare_host(host);
        if host.is_empty() {
            return Err(Refusal::NoHost);
        }
        match host.parse::<IpAddr>() {
            Ok(ip) => self.check_ip(ip),
            Err(_) if host.eq_ignore_ascii_case("localhost") && !self.allow_loopback => {
                Err(Refusal::Forbidden { range: "loopback" })
            }
            Err(_) => Ok(()),
        }
    }

    /// The URL's shape: https (plain http only to this machine, and only where loopback is allowed), no
    /// credentials, a host that passes `check_host`. Needs no DNS.
    pub fn check_url(self, url: &Url) -> Result<(), Refusal> {
        let host = url.host_str().filter(|h| !h.is_empty()).ok_or(Refusal::NoHost)?;
        if !url.username().is_empty() || url.password().is_some() {
            return Err(Refusal::Credentials);
        }
        match url.scheme() {
            "https" => {}
            "http" if self.allow_loopback && Self::names_loopback(host) => {}
            _ => return Err(Refusal::NotHttps),
        }
        self.check_host(host)
    }

    /// Every address `host` resolves to, once each passed `check_ip`: refused as a whole when any one is
    /// forbidden (a name with one public and one private address is not one we call). What the caller
    /// connects to must be one of these addresses, never the name resolved again.
    pub async fn resolve(self, host: &str, port: u16) -> Result<Vec<SocketAddr>, Refusal> {
        let host = bare_host(host);
        self.check_host(host)?;
        let addresses: Vec<SocketAddr> = match host.parse::<IpAddr>() {
            Ok(ip) => vec![SocketAddr::new(ip, port)],
            Err(_) => {
                tokio::net::lookup_host((host, port)).await.map_err(|_| Refusal::Unresolvable)?.collect()
            }
        };
        if addresses.is_empty() {
            return Err(Refusal::Unresolvable);
        }
        for address in &addresses {
            self.check_ip(address.ip())?;
        }
        Ok(addresses)
    }

    /// The save-time check of a host: `check_host`, and the addresses it resolves to now. A name that does
    /// not resolve (yet), or not quickly, is accepted here: the call-time check still guards it.
    pub async fn check_host_resolves(self, host: &str, port: u16) -> Result<(), Refusal> {
        match tokio::time::timeout(SAVE_TIME_LOOKUP, self.resolve(host, port)).await {
            Ok(Ok(_)) | Ok(Err(Refusal::Unresolvable)) | Err(_) => Ok(()),
            Ok(Err(refusal)) => Err(refusal),
        }
    }

    /// The save-time check of a URL: `check_url`, then `check_host_resolves`.
    pub async fn check_url_resolves(self, url: &Url) -> Result<(), Refusal> {
        self.check_url(url)?;
        let host = url.host_str().ok_or(Refusal::NoHost)?;
        self.check_host_resolves(host, url.port_or_known_default().unwrap_or(443)).await
    }

    /// An HTTP client for admin-supplied URLs: every name it resolves passes `resolve` (the connection goes
    /// to a checked address), no redirects (a redirect could lead anywhere), no proxy from the environment
    /// (a proxy would resolve the name itself). Address literals skip the resolver: `GuardedClient` checks
    /// every URL before sending.
    pub fn client(self, connect_timeout: Duration, timeout: Duration) -> GuardedClient {
        let http = crate::tls::http_client_builder()
            .connect_timeout(connect_timeout)
            .timeout(timeout)
            .redirect(reqwest::redirect::Policy::none())
            .no_proxy()
            .dns_resolver(Arc::new(GuardedResolver { policy: self }))
            .build()
            .unwrap_or_else(|_| reqwest::Client::new());
        GuardedClient { http, policy: self }
    }
}

/// reqwest's resolver for admin-supplied URLs: the system resolver, then `OutboundPolicy::resolve`'s check.
#[derive(Debug, Clone, Copy)]
struct GuardedResolver {
    policy: OutboundPolicy,
}

impl reqwest::dns::Resolve for GuardedResolver {
    fn resolve(&self, name: reqwest::dns::Name) -> reqwest::dns::Resolving {
        let policy = self.policy;
        let host = name.as_str().to_owned();
        Box::pin(async move {
            let addresses = policy.resolve(&host, 0).await.map_err(|refusal| {
                Box::new(RefusedAddress(refusal)) as Box<dyn std::error::Error + Send + Sync>
            })?;
            Ok(Box::new(addresses.into_iter()) as reqwest::dns::Addrs)
        })
    }
}

/// The resolver's refusal as an error reqwest carries (its source chain names it).
#[derive(Debug, thiserror::Error)]
#[error("address refused by the outbound policy: {0}")]
struct RefusedAddress(Refusal);

/// Whether a reqwest error is the outbound policy refusing the address.
pub fn is_refused_address(error: &reqwest::Error) -> bool {
    let mut source: Option<&(dyn std::error::Error + 'static)> = Some(error);
    while let Some(current) = source {
        if current.downcast_ref::<RefusedAddress>().is_some() {
            return true;
        }
        source = current.source();
    }
    false
}

/// A reqwest client that calls admin-supplied URLs only after `OutboundPolicy::check_url`, and connects
/// only to resolved addresses that passed the policy.
#[derive(Debug, Clone)]
pub struct GuardedClient {
    http: reqwest::Client,
    policy: OutboundPolicy,
}

impl GuardedClient {
    pub fn policy(&self) -> OutboundPolicy {
        self.policy
    }

    /// A request to `url`, or the refusal of its shape or address literal.
    pub fn request(&self, method: reqwest::Method, url: Url) -> Result<reqwest::RequestBuilder, Refusal> {
        self.policy.check_url(&url)?;
        Ok(self.http.request(method, url))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(text: &str) -> IpAddr {
        text.parse().expect("an address")
    }

    #[test]
    fn every_forbidden_ipv4_range_is_named() {
        for (address, range) in [
            ("0.0.0.0", "unspecified"),
            ("0.1.2.3", "reserved (this network)"),
            ("127.0.0.1", "loopback"),
            ("127.255.255.254", "loopback"),
            ("10.0.0.1", "private"),
            ("10.255.255.255", "private"),
            ("172.16.0.1", "private"),
            ("172.31.255.255", "private"),
            ("192.168.1.1", "private"),
            ("169.254.169.254", "link-local"),
            ("169.254.0.1", "link-local"),
            ("100.64.0.1", "shared (CGNAT)"),
            ("100.127.255.255", "shared (CGNAT)"),
            ("224.0.0.1", "multicast"),
            ("239.255.255.255", "multicast"),
            ("255.255.255.255", "broadcast"),
            ("240.0.0.1", "reserved"),
            ("192.0.0.8", "reserved (IETF protocol assignments)"),
            ("192.0.2.1", "reserved (documentation)"),
            ("198.51.100.7", "reserved (documentation)"),
            ("203.0.113.9", "reserved (documentation)"),
            ("198.18.0.1", "reserved (benchmarking)"),
        ] {
            assert_eq!(forbidden_range(ip(address)), Some(range), "{address}");
        }
    }

    #[test]
    fn public_ipv4_addresses_and_the_edges_of_the_ranges_pass() {
        for address in [
            "1.1.1.1",
            "8.8.8.8",
            "93.184.216.34",
            "9.255.255.255",
            "11.0.0.0",
            "172.15.255.255",
            "172.32.0.0",
            "192.167.255.255",
            "192.169.0.0",
            "100.63.255.255",
            "100.128.0.0",
            "169.253.255.255",
            "169.255.0.0",
            "126.255.255.255",
            "128.0.0.0",
            "223.255.255.255",
            "198.17.255.255",
            "198.20.0.0",
        ] {
            assert_eq!(forbidden_range(ip(address)), None, "{address}");
            assert_eq!(OutboundPolicy::strict().check_ip(ip(address)), Ok(()), "{address}");
        }
    }

    #[test]
    fn every_forbidden_ipv6_range_is_named() {
        for (address, range) in [
            ("::", "unspecified"),
            ("::1", "loopback"),
            ("fe80::1", "link-local"),
            ("febf:ffff::1", "link-local"),
            ("fec0::1", "private"),
            ("fc00::1", "unique-local"),
            ("fd12:3456:789a::1", "unique-local"),
            ("ff02::1", "multicast"),
            ("ff0e::101", "multicast"),
            ("2001:db8::1", "reserved (documentation)"),
            ("2001:0:4136:e378:8000:63bf:3fff:fdd2", "reserved (Teredo)"),
            ("100::1", "reserved (discard)"),
            ("::2", "reserved"),
            // IPv4 inside IPv6 is judged by the IPv4 address.
            ("::ffff:127.0.0.1", "loopback"),
            ("::ffff:10.1.2.3", "private"),
            ("::ffff:169.254.169.254", "link-local"),
            ("::ffff:100.64.0.1", "shared (CGNAT)"),
            ("::ffff:0.0.0.0", "unspecified"),
            ("::ffff:255.255.255.255", "broadcast"),
            ("::ffff:224.0.0.1", "multicast"),
            ("::ffff:192.168.0.1", "private"),
            ("::10.0.0.1", "private"),
            ("::127.0.0.1", "loopback"),
            ("64:ff9b::169.254.169.254", "link-local"),
            ("64:ff9b::10.0.0.1", "private"),
            ("2002:a9fe:a9fe::1", "link-local"),
            ("2002:c0a8:0101::1", "private"),
            ("2002:7f00:0001::", "loopback"),
        ] {
            assert_eq!(forbidden_range(ip(address)), Some(range), "{address}");
        }
    }

    #[test]
    fn public_ipv6_addresses_pass() {
        for address in [
            "2606:4700:4700::1111",
            "2a00:1450:4001:80b::200e",
            "::ffff:8.8.8.8",
            "64:ff9b::8.8.8.8",
            "2002:0808:0808::1",
            "fe7f:ffff::1",
            "fbff::1",
            "2001:db9::1",
        ] {
            assert_eq!(forbidden_range(ip(address)), None, "{address}");
        }
    }

    #[test]
    fn loopback_is_allowed_only_by_the_development_setting_and_nothing_else_is() {
        let strict = OutboundPolicy::strict();
        let local = OutboundPolicy::allowing_loopback();
        for loopback in ["127.0.0.1", "127.1.2.3", "::1", "::ffff:127.0.0.1"] {
            assert_eq!(strict.check_ip(ip(loopback)), Err(Refusal::Forbidden { range: "loopback" }));
            assert_eq!(local.check_ip(ip(loopback)), Ok(()), "{loopback}");
        }
        for other in ["10.0.0.1", "169.254.169.254", "::ffff:169.254.169.254", "fd00::1", "0.0.0.0", "::"] {
            assert!(local.check_ip(ip(other)).is_err(), "{other}");
        }
        assert_eq!(OutboundPolicy::default(), strict);
    }

    #[test]
    fn urls_must_be_https_without_credentials_and_name_no_forbidden_address() {
        let strict = OutboundPolicy::strict();
        let local = OutboundPolicy::allowing_loopback();
        let url = |text: &str| Url::parse(text).expect("a URL");
        assert_eq!(strict.check_url(&url("https://bot.example/hook?x=1")), Ok(()));
        assert_eq!(strict.check_url(&url("https://8.8.8.8:8443/hook")), Ok(()));
        assert_eq!(strict.check_url(&url("http://bot.example/hook")), Err(Refusal::NotHttps));
        assert_eq!(strict.check_url(&url("ftp://bot.example/hook")), Err(Refusal::NotHttps));
        assert_eq!(strict.check_url(&url("https://u:p@bot.example/")), Err(Refusal::Credentials));
        for refused in [
            "https://127.0.0.1/hook",
            "https://localhost/hook",
            "https://[::1]/hook",
            "https://10.0.0.5:8443/hook",
            "https://169.254.169.254/latest/meta-data/",
            "https://[::ffff:169.254.169.254]/",
            "https://[::ffff:a9fe:a9fe]/",
            "https://2130706433/",
            "https://0x7f.1/",
            "https://[fd00::1]/",
            "https://100.64.1.1/",
            "https://0.0.0.0/",
        ] {
            assert!(matches!(strict.check_url(&url(refused)), Err(Refusal::Forbidden { .. })), "{refused}");
        }
        assert_eq!(local.check_url(&url("http://127.0.0.1:9000/hook")), Ok(()));
        assert_eq!(local.check_url(&url("http://localhost:9000/hook")), Ok(()));
        assert_eq!(local.check_url(&url("http://[::1]:9000/hook")), Ok(()));
        assert_eq!(local.check_url(&url("http://10.0.0.1/hook")), Err(Refusal::NotHttps));
        assert!(local.check_url(&url("https://10.0.0.1/hook")).is_err());
        assert_eq!(local.check_url(&url("http://bot.example/hook")), Err(Refusal::NotHttps));
    }

    #[test]
    fn every_refusal_speaks_english_and_russian() {
        for refusal in [
            Refusal::NotHttps,
            Refusal::Credentials,
            Refusal::NoHost,
            Refusal::Unresolvable,
            Refusal::Forbidden { range: "link-local" },
            Refusal::Forbidden { range: "reserved (documentation)" },
        ] {
            let message = refusal.message();
            let (english, russian) = message.split_once(" / ").expect("two languages");
            assert!(english.is_ascii(), "{message}");
            assert!(russian.chars().any(|c| ('а'..='я').contains(&c)), "{message}");
        }
    }

    #[tokio::test]
    async fn names_are_judged_by_every_address_they_resolve_to() {
        let strict = OutboundPolicy::strict();
        let local = OutboundPolicy::allowing_loopback();
        assert!(matches!(strict.resolve("localhost", 80).await, Err(Refusal::Forbidden { .. })));
        let resolved = local.resolve("localhost", 8080).await.expect("localhost resolves to loopback");
        assert!(resolved.iter().all(|a| a.ip().is_loopback() && a.port() == 8080), "{resolved:?}");
        assert_eq!(
            strict.resolve("169.254.169.254", 80).await,
            Err(Refusal::Forbidden { range: "link-local" })
        );
        assert_eq!(strict.resolve("8.8.8.8", 53).await, Ok(vec!["8.8.8.8:53".parse().expect("addr")]));
        assert_eq!(strict.resolve("no-such-host.invalid", 443).await, Err(Refusal::Unresolvable));
        // Saving accepts a name that does not resolve yet (the call-time check guards it), not one that
        // resolves to a forbidden address.
        assert_eq!(strict.check_host_resolves("no-such-host.invalid", 443).await, Ok(()));
        assert!(strict.check_host_resolves("localhost", 443).await.is_err());
    }

    #[tokio::test]
    async fn the_guarded_client_never_connects_to_a_forbidden_address() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let port = listener.local_addr().expect("addr").port();
        let strict = OutboundPolicy::strict().client(Duration::from_secs(2), Duration::from_secs(2));
        // An address literal is refused before any request is built.
        let literal = Url::parse(&format!("https://127.0.0.1:{port}/")).expect("url");
        assert!(strict.request(reqwest::Method::GET, literal).is_err());
        // A name is refused by the resolver, at connect time.
        let named = Url::parse(&format!("http://localhost:{port}/")).expect("url");
        assert!(OutboundPolicy::strict().check_url(&named).is_err());
        let error = strict.http.get(named).send().await.expect_err("refused");
        assert!(is_refused_address(&error), "{error:?}");
        let accepted = tokio::time::timeout(Duration::from_millis(200), listener.accept()).await;
        assert!(accepted.is_err(), "nothing connected");
    }
}
