//! The allowlist and the address rules: which `host:port` a tunnel may
//! reach, and which resolved addresses are never reachable by name.

use std::fmt;
use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::path::PathBuf;

/// The port an entry without one allows: HTTPS, which is what connectors
/// calling APIs need.
pub const DEFAULT_PORT: u16 = 443;

/// Longest host name (RFC 1035), so a hostile request cannot make matching
/// or logging expensive.
const MAX_NAME: usize = 253;

/// Why an allowlist could not be built or its proxy started.
#[derive(Debug, thiserror::Error)]
pub enum EgressError {
    /// An entry is not `host`, `host:port`, `*.domain[:port]` or an IP literal.
    #[error("egress allowlist entry {entry:?}: {reason}")]
    InvalidEntry {
        /// The entry as written.
        entry: String,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// The proxy's socket could not be created.
    #[error("egress proxy socket {}: {source}", path.display())]
    Listen {
        /// Where the socket was to be.
        path: PathBuf,
        /// What the operating system said.
        #[source]
        source: io::Error,
    },
}

/// A host as an entry or a request names it.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Host {
    /// A DNS name, lower-case, without a trailing dot.
    Name(String),
    /// `*.example.com`, kept as `.example.com`: any name below it.
    Suffix(String),
    /// An IP literal.
    Ip(IpAddr),
}

/// One allowlist entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rule {
    host: Host,
    port: u16,
}

impl fmt::Display for Rule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.host {
            Host::Name(n) => write!(f, "{n}:{}", self.port),
            Host::Suffix(s) => write!(f, "*{s}:{}", self.port),
            Host::Ip(IpAddr::V6(ip)) => write!(f, "[{ip}]:{}", self.port),
            Host::Ip(ip) => write!(f, "{ip}:{}", self.port),
        }
    }
}

impl Rule {
    /// Parses `host`, `host:port`, `*.domain[:port]`, `1.2.3.4[:port]`,
    /// `[v6][:port]` or a bare IPv6 literal; the port defaults to 443.
    pub fn parse(entry: &str) -> Result<Self, EgressError> {
        let bad = |reason| EgressError::InvalidEntry { entry: entry.to_owned(), reason };
        if entry.is_empty() {
            return Err(bad("empty"));
        }
        if entry.contains("://") || entry.contains('/') || entry.chars().any(char::is_whitespace) {
            return Err(bad("expected host[:port], without a scheme, path or spaces"));
        }
        let (host, port) = split_host_port(entry).ok_or_else(|| bad("expected host[:port]"))?;
        let port = match port {
            None => DEFAULT_PORT,
            Some(p) => p.parse::<u16>().ok().filter(|p| *p > 0).ok_or_else(|| bad("port must be 1-65535"))?,
        };
        let host = if let Ok(ip) = host.parse::<IpAddr>() {
            Host::Ip(ip)
        } else if let Some(domain) = host.strip_prefix("*.") {
            Host::Suffix(format!(".{}", name(domain).ok_or_else(|| bad("not a valid domain after `*.`"))?))
        } else {
            Host::Name(name(host).ok_or_else(|| bad("not a valid host name"))?)
        };
        Ok(Self { host, port })
    }

    /// Whether this entry allows `host:port` as a request names it.
    fn allows(&self, host: &Host, port: u16) -> bool {
        if port != self.port {
            return false;
        }
        match (&self.host, host) {
            (Host::Name(a), Host::Name(b)) => a == b,
            (Host::Suffix(s), Host::Name(b)) => b.len() > s.len() && b.ends_with(s.as_str()),
            (Host::Ip(a), Host::Ip(b)) => a == b,
            _ => false,
        }
    }
}

/// Splits `host[:port]` (with `[v6]` or a bare v6 literal); `None` if malformed.
fn split_host_port(s: &str) -> Option<(&str, Option<&str>)> {
    if let Some(rest) = s.strip_prefix('[') {
        let (host, after) = rest.split_once(']')?;
        host.parse::<Ipv6Addr>().ok()?;
        return match after {
            "" => Some((host, None)),
            _ => Some((host, Some(after.strip_prefix(':')?))),
        };
    }
    if s.matches(':').count() > 1 {
        // A bare IPv6 literal: no port can be told apart.
        s.parse::<Ipv6Addr>().ok()?;
        return Some((s, None));
    }
    match s.rsplit_once(':') {
        Some((h, p)) => Some((h, Some(p))),
        None => Some((s, None)),
    }
}

/// A DNS name, lower-cased and without its trailing dot, if it is one
/// (letters, digits, hyphens and underscores in labels of 1-63 bytes).
fn name(s: &str) -> Option<String> {
    let s = s.strip_suffix('.').unwrap_or(s);
    let ok = !s.is_empty()
        && s.len() <= MAX_NAME
        && s.split('.').all(|l| {
            !l.is_empty()
                && l.len() <= 63
                && !l.starts_with('-')
                && !l.ends_with('-')
                && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        });
    ok.then(|| s.to_ascii_lowercase())
}

/// Why a tunnel was not opened. Everything but [`Refusal::Unreachable`] is
/// a policy decision, answered 403.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refusal {
    /// The request is not a well-formed `CONNECT host:port`.
    Malformed(&'static str),
    /// A plain-HTTP (`GET http://…`) request: only tunnels are proxied.
    PlainHttp,
    /// No allowlist entry names this `host:port`.
    NotAllowed,
    /// Every address the name resolved to is of a forbidden kind.
    Forbidden {
        /// The first such address.
        addr: IpAddr,
        /// Its kind (`loopback`, `private`, `cloud metadata`, …).
        class: &'static str,
    },
    /// The name did not resolve, or no address accepted the connection.
    Unreachable(String),
}

impl Refusal {
    /// The HTTP status the proxy answers with.
    pub fn status(&self) -> u16 {
        match self {
            Self::Malformed(_) => 400,
            Self::Unreachable(_) => 502,
            Self::PlainHttp | Self::NotAllowed | Self::Forbidden { .. } => 403,
        }
    }
}

impl fmt::Display for Refusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Malformed(why) => write!(f, "malformed request: {why}"),
            Self::PlainHttp => f.write_str("plain HTTP proxying is not supported; use CONNECT"),
            Self::NotAllowed => f.write_str("not on the egress allowlist"),
            Self::Forbidden { addr, class } => write!(f, "resolves to {addr}, a {class} address"),
            Self::Unreachable(why) => write!(f, "unreachable: {why}"),
        }
    }
}

/// What [`Allowlist::decide`] concluded before any resolution.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    /// An entry names this exact IP literal: connect to it, whatever its kind.
    Connect(SocketAddr),
    /// An entry allows this name: resolve it, then [`Allowlist::screen`] the answers.
    Resolve(String, u16),
}

/// An instance's egress allowlist.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Allowlist {
    rules: Vec<Rule>,
}

impl Allowlist {
    /// Parses every entry; the first bad one is the error.
    pub fn parse<S: AsRef<str>>(entries: &[S]) -> Result<Self, EgressError> {
        let rules = entries.iter().map(|e| Rule::parse(e.as_ref().trim())).collect::<Result<_, _>>()?;
        Ok(Self { rules })
    }

    /// The entries, normalised (`host:port`).
    pub fn rules(&self) -> &[Rule] {
        &self.rules
    }

    /// Checks the authority of a `CONNECT` request (`host:port`, port
    /// required) against the entries.
    pub fn decide(&self, authority: &str) -> Result<Decision, Refusal> {
        let (host, port) = split_host_port(authority).ok_or(Refusal::Malformed("bad authority"))?;
        let port = port
            .ok_or(Refusal::Malformed("CONNECT needs host:port"))?
            .parse::<u16>()
            .ok()
            .filter(|p| *p > 0)
            .ok_or(Refusal::Malformed("bad port"))?;
        let host = match host.parse::<IpAddr>() {
            Ok(ip) => Host::Ip(ip),
            Err(_) => Host::Name(name(host).ok_or(Refusal::Malformed("bad host name"))?),
        };
        if !self.rules.iter().any(|r| r.allows(&host, port)) {
            return Err(Refusal::NotAllowed);
        }
        Ok(match host {
            // Only an entry naming this very address matches an IP literal,
            // so the operator chose it: no address rule applies.
            Host::Ip(ip) => Decision::Connect(SocketAddr::new(ip, port)),
            Host::Name(n) | Host::Suffix(n) => Decision::Resolve(n, port),
        })
    }

    /// Keeps the resolved addresses a name may lead to; refuses when none
    /// is left. A name never reaches a private, loopback or metadata
    /// address, even one an IP entry allows, so DNS cannot turn an entry
    /// for a public service into a way into the host's network.
    pub fn screen(addrs: impl IntoIterator<Item = SocketAddr>) -> Result<Vec<SocketAddr>, Refusal> {
        let mut first_bad = None;
        let mut ok = Vec::new();
        for a in addrs {
            match address_class(a.ip()) {
                None => ok.push(a),
                Some(class) => {
                    first_bad.get_or_insert(Refusal::Forbidden { addr: a.ip(), class });
                }
            }
        }
        match (ok.is_empty(), first_bad) {
            (false, _) => Ok(ok),
            (true, Some(r)) => Err(r),
            (true, None) => Err(Refusal::Unreachable("the name has no addresses".into())),
        }
    }
}

/// The kind of a non-public address, or `None` for one on the internet.
pub fn address_class(ip: IpAddr) -> Option<&'static str> {
    match ip {
        IpAddr::V4(v4) => v4_class(v4),
        IpAddr::V6(v6) => v6_class(v6),
    }
}

fn v4_class(ip: Ipv4Addr) -> Option<&'static str> {
    let o = ip.octets();
    Some(match o {
        [169, 254, 169, 254] => "cloud metadata",
        [0, ..] => "unspecified",
        [127, ..] => "loopback",
        [10, ..] | [192, 168, ..] => "private",
        [172, b, ..] if (16..32).contains(&b) => "private",
        [169, 254, ..] => "link-local",
        [100, b, ..] if (64..128).contains(&b) => "CGNAT",
        [192, 0, 0, _] => "IETF protocol",
        [198, b, ..] if b == 18 || b == 19 => "benchmarking",
        [a, ..] if (224..240).contains(&a) => "multicast",
        [a, ..] if a >= 240 => "reserved",
        _ => return None,
    })
}

fn v6_class(ip: Ipv6Addr) -> Option<&'static str> {
    let s = ip.segments();
    if ip == Ipv6Addr::new(0xfd00, 0xec2, 0, 0, 0, 0, 0, 0x254) {
        return Some("cloud metadata");
    }
    if ip.is_unspecified() {
        return Some("unspecified");
    }
    if ip.is_loopback() {
        return Some("loopback");
    }
    // Addresses that carry an IPv4 one get that one's rules: mapped
    // (::ffff:a.b.c.d), NAT64 (64:ff9b::/96) and 6to4 (2002::/16).
    if let Some(v4) = ip.to_ipv4_mapped() {
        return v4_class(v4);
    }
    if s[..6] == [0x64, 0xff9b, 0, 0, 0, 0] {
        return v4_class(Ipv4Addr::from(((s[6] as u32) << 16) | s[7] as u32));
    }
    if s[0] == 0x2002 {
        return v4_class(Ipv4Addr::from(((s[1] as u32) << 16) | s[2] as u32));
    }
    Some(match s[0] {
        a if a & 0xfe00 == 0xfc00 => "private (unique local)",
        a if a & 0xffc0 == 0xfe80 => "link-local",
        a if a & 0xffc0 == 0xfec0 => "site-local",
        a if a & 0xff00 == 0xff00 => "multicast",
        _ if s[..6] == [0; 6] => "IPv4-compatible",
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn list(entries: &[&str]) -> Allowlist {
        Allowlist::parse(entries).expect("valid entries")
    }

    fn sa(s: &str) -> SocketAddr {
        s.parse().expect("socket address")
    }

    #[test]
    fn entries_parse_with_default_port() {
        let l = list(&["API.example.com", "example.org:8443", "*.github.com", "10.0.0.1", "[::1]:80", "fd00::1"]);
        let shown: Vec<String> = l.rules().iter().map(ToString::to_string).collect();
        assert_eq!(
            shown,
            [
                "api.example.com:443",
                "example.org:8443",
                "*.github.com:443",
                "10.0.0.1:443",
                "[::1]:80",
                "[fd00::1]:443"
            ]
        );
    }

    #[test]
    fn bad_entries_are_errors() {
        for e in
            ["", "https://example.com", "example.com/x", "example.com:0", "example.com:99999", "a b", "-x.com", "*."]
        {
            assert!(Allowlist::parse(&[e]).is_err(), "{e:?} should be refused");
        }
    }

    #[test]
    fn names_match_exactly_and_by_port() {
        let l = list(&["api.example.com", "example.org:8443"]);
        assert_eq!(l.decide("API.example.com:443"), Ok(Decision::Resolve("api.example.com".into(), 443)));
        assert_eq!(l.decide("api.example.com:80"), Err(Refusal::NotAllowed));
        assert_eq!(l.decide("example.org:443"), Err(Refusal::NotAllowed));
        assert_eq!(l.decide("example.org:8443"), Ok(Decision::Resolve("example.org".into(), 8443)));
        assert_eq!(l.decide("evil.example.com:443"), Err(Refusal::NotAllowed));
        assert_eq!(l.decide("api.example.com.evil.net:443"), Err(Refusal::NotAllowed));
    }

    #[test]
    fn wildcards_match_subdomains_only() {
        let l = list(&["*.example.com"]);
        assert!(l.decide("a.example.com:443").is_ok());
        assert!(l.decide("a.b.example.com:443").is_ok());
        assert_eq!(l.decide("example.com:443"), Err(Refusal::NotAllowed));
        assert_eq!(l.decide("badexample.com:443"), Err(Refusal::NotAllowed));
    }

    #[test]
    fn ip_literals_need_an_entry_naming_them() {
        let l = list(&["127.0.0.1:8080", "example.com"]);
        assert_eq!(l.decide("127.0.0.1:8080"), Ok(Decision::Connect(sa("127.0.0.1:8080"))));
        // Berth's own port, another loopback port, private and metadata addresses.
        for refused in ["127.0.0.1:8377", "10.0.0.1:80", "169.254.169.254:80", "[::1]:8080", "127.0.0.2:8080"] {
            assert_eq!(l.decide(refused), Err(Refusal::NotAllowed), "{refused}");
        }
        // A name entry does not allow its address as a literal.
        assert_eq!(l.decide("93.184.215.14:443"), Err(Refusal::NotAllowed));
    }

    #[test]
    fn malformed_authorities() {
        let l = list(&["example.com"]);
        assert_eq!(l.decide("example.com"), Err(Refusal::Malformed("CONNECT needs host:port")));
        assert_eq!(l.decide("example.com:x"), Err(Refusal::Malformed("bad port")));
        assert_eq!(l.decide("exa mple.com:443"), Err(Refusal::Malformed("bad host name")));
        assert_eq!(l.decide("[zz]:443"), Err(Refusal::Malformed("bad authority")));
    }

    #[test]
    fn forbidden_addresses() {
        for (ip, class) in [
            ("127.0.0.1", "loopback"),
            ("10.0.0.1", "private"),
            ("172.16.0.1", "private"),
            ("172.31.255.255", "private"),
            ("192.168.1.1", "private"),
            ("169.254.169.254", "cloud metadata"),
            ("169.254.1.1", "link-local"),
            ("100.64.0.1", "CGNAT"),
            ("100.100.100.200", "CGNAT"),
            ("0.0.0.0", "unspecified"),
            ("224.0.0.1", "multicast"),
            ("255.255.255.255", "reserved"),
            ("::1", "loopback"),
            ("::", "unspecified"),
            ("fd00:ec2::254", "cloud metadata"),
            ("fd12::1", "private (unique local)"),
            ("fe80::1", "link-local"),
            ("ff02::1", "multicast"),
            ("::ffff:10.1.2.3", "private"),
            ("::ffff:169.254.169.254", "cloud metadata"),
            ("64:ff9b::a9fe:a9fe", "cloud metadata"),
            ("2002:7f00:1::", "loopback"),
        ] {
            let ip: IpAddr = ip.parse().expect("ip");
            assert_eq!(address_class(ip), Some(class), "{ip}");
        }
        for ip in ["93.184.215.14", "8.8.8.8", "172.32.0.1", "100.128.0.1", "2606:4700::1111", "::ffff:1.1.1.1"] {
            let ip: IpAddr = ip.parse().expect("ip");
            assert_eq!(address_class(ip), None, "{ip}");
        }
    }

    #[test]
    fn screening_keeps_public_addresses_only() {
        assert_eq!(Allowlist::screen([sa("10.0.0.1:443"), sa("93.184.215.14:443")]), Ok(vec![sa("93.184.215.14:443")]));
        assert_eq!(
            Allowlist::screen([sa("127.0.0.1:443"), sa("[::1]:443")]),
            Err(Refusal::Forbidden { addr: "127.0.0.1".parse().expect("ip"), class: "loopback" })
        );
        assert!(matches!(Allowlist::screen([]), Err(Refusal::Unreachable(_))));
    }
}
