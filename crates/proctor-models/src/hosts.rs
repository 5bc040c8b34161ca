//! Which endpoint addresses the service may call: the host rules that keep a vendor's
//! `base_url` from reaching into the service's own network (server-side request forgery).
//!
//! Under the service's rules ([`HostPolicy::service`]):
//! - refused: loopback, link-local (169.254.0.0/16 holds the cloud metadata service),
//!   private (RFC 1918, fc00::/7), shared (100.64.0.0/10), unspecified, multicast, broadcast,
//!   documentation, benchmarking and reserved addresses, the same in IPv4-mapped, NAT64 and
//!   6to4 form, and `localhost`-style names;
//! - every other host is called over https only;
//! - unless the operator allows the host (`proctor serve --allow-model-hosts`): an allowed host
//!   is called over http or https, whatever its address.
//!
//! The rules are checked twice: on the URL when a model is registered and again when it is
//! built for a job (its host as written: a name or a literal address), and on every address a
//! name resolves to when a connection is opened (`resolver.rs`), because a name can resolve to
//! 127.0.0.1, or change after registration (DNS rebinding). Redirects are never followed
//! (`http.rs`), so no answer can send a request anywhere else.
//!
//! `proctor run` and `proctor model test` run on the user's own machine, for the user: they
//! build with [`HostPolicy::any`], which calls whatever the configuration names.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use url::{Host, Url};

/// The endpoints a model may be called at. Part of building a model, so the caller says which
/// rules apply: [`HostPolicy::any`] on the user's own machine, [`HostPolicy::service`] (with
/// the operator's allowances) in the service.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct HostPolicy {
    rules: Rules,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum Rules {
    /// Anything the configuration names.
    Any,
    /// Public addresses over https, and the allowed hosts over http or https.
    Service(Vec<Allowance>),
}

/// One host the operator allows: a name, or an address range, optionally on one port only.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct Allowance {
    host: AllowedHost,
    /// `None`: any port.
    port: Option<u16>,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum AllowedHost {
    /// A DNS name as the URL parser normalizes it (lower case, no trailing dot).
    Name(String),
    /// Addresses sharing the first `prefix` bits of `base` (a single address: all its bits).
    Range { base: IpAddr, prefix: u8 },
}

/// What kind of address an IP address is, as far as calling it goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum AddressClass {
    /// Globally routable: the service may call it (over https).
    Public,
    /// 0.0.0.0/8, `::`.
    Unspecified,
    /// 127.0.0.0/8, `::1`.
    Loopback,
    /// 169.254.0.0/16 (the cloud metadata service), fe80::/10.
    LinkLocal,
    /// RFC 1918, fc00::/7, fec0::/10, 64:ff9b:1::/48.
    Private,
    /// 100.64.0.0/10, carrier-grade NAT.
    Shared,
    /// 224.0.0.0/4, ff00::/8.
    Multicast,
    /// 255.255.255.255.
    Broadcast,
    /// 192.0.2.0/24, 198.51.100.0/24, 203.0.113.0/24, 2001:db8::/32, 3fff::/20.
    Documentation,
    /// 198.18.0.0/15, 2001:2::/48.
    Benchmarking,
    /// Everything else that is not globally routable: 240.0.0.0/4, 192.0.0.0/24, IPv6 outside
    /// 2000::/3, IETF protocol assignments, deprecated transition forms.
    Reserved,
}

impl fmt::Display for AddressClass {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            AddressClass::Public => "a public address",
            AddressClass::Unspecified => "the unspecified address",
            AddressClass::Loopback => "a loopback address",
            AddressClass::LinkLocal => {
                "a link-local address (where cloud metadata services answer)"
            }
            AddressClass::Private => "a private address",
            AddressClass::Shared => "a shared (carrier-grade NAT) address",
            AddressClass::Multicast => "a multicast address",
            AddressClass::Broadcast => "the broadcast address",
            AddressClass::Documentation => "a documentation address",
            AddressClass::Benchmarking => "a benchmarking address",
            AddressClass::Reserved => "a reserved address",
        })
    }
}

/// IPv4 ranges that are not public, most specific first where they nest.
const V4_RANGES: &[(Ipv4Addr, u8, AddressClass)] = &[
    (
        Ipv4Addr::new(255, 255, 255, 255),
        32,
        AddressClass::Broadcast,
    ),
    (Ipv4Addr::new(0, 0, 0, 0), 8, AddressClass::Unspecified),
    (Ipv4Addr::new(10, 0, 0, 0), 8, AddressClass::Private),
    (Ipv4Addr::new(100, 64, 0, 0), 10, AddressClass::Shared),
    (Ipv4Addr::new(127, 0, 0, 0), 8, AddressClass::Loopback),
    (Ipv4Addr::new(169, 254, 0, 0), 16, AddressClass::LinkLocal),
    (Ipv4Addr::new(172, 16, 0, 0), 12, AddressClass::Private),
    (Ipv4Addr::new(192, 0, 0, 0), 24, AddressClass::Reserved),
    (Ipv4Addr::new(192, 0, 2, 0), 24, AddressClass::Documentation),
    (Ipv4Addr::new(192, 88, 99, 0), 24, AddressClass::Reserved),
    (Ipv4Addr::new(192, 168, 0, 0), 16, AddressClass::Private),
    (Ipv4Addr::new(198, 18, 0, 0), 15, AddressClass::Benchmarking),
    (
        Ipv4Addr::new(198, 51, 100, 0),
        24,
        AddressClass::Documentation,
    ),
    (
        Ipv4Addr::new(203, 0, 113, 0),
        24,
        AddressClass::Documentation,
    ),
    (Ipv4Addr::new(224, 0, 0, 0), 4, AddressClass::Multicast),
    (Ipv4Addr::new(240, 0, 0, 0), 4, AddressClass::Reserved),
];

/// IPv6 ranges inside 2000::/3 (the only global unicast space) that are not public, most
/// specific first where they nest.
const V6_RANGES: &[(Ipv6Addr, u8, AddressClass)] = &[
    (
        Ipv6Addr::new(0x2001, 2, 0, 0, 0, 0, 0, 0),
        48,
        AddressClass::Benchmarking,
    ),
    // IETF protocol assignments (Teredo, ORCHID and the rest): not globally routable as such.
    (
        Ipv6Addr::new(0x2001, 0, 0, 0, 0, 0, 0, 0),
        23,
        AddressClass::Reserved,
    ),
    (
        Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 0),
        32,
        AddressClass::Documentation,
    ),
    (
        Ipv6Addr::new(0x3fff, 0, 0, 0, 0, 0, 0, 0),
        20,
        AddressClass::Documentation,
    ),
];

fn v4_in(ip: Ipv4Addr, base: Ipv4Addr, prefix: u8) -> bool {
    let mask = u32::MAX.checked_shl(32 - u32::from(prefix)).unwrap_or(0);
    u32::from(ip) & mask == u32::from(base) & mask
}

fn v6_in(ip: Ipv6Addr, base: Ipv6Addr, prefix: u8) -> bool {
    let mask = u128::MAX.checked_shl(128 - u32::from(prefix)).unwrap_or(0);
    u128::from(ip) & mask == u128::from(base) & mask
}

impl AddressClass {
    /// The class of `ip`. An IPv6 address that carries an IPv4 one on the way (IPv4-mapped
    /// `::ffff:a.b.c.d`, NAT64 `64:ff9b::a.b.c.d`, 6to4 `2002:aabb:ccdd::`) has the class of
    /// the IPv4 address it reaches.
    pub fn of(ip: IpAddr) -> AddressClass {
        match ip {
            IpAddr::V4(v4) => AddressClass::of_v4(v4),
            IpAddr::V6(v6) => AddressClass::of_v6(v6),
        }
    }

    fn of_v4(ip: Ipv4Addr) -> AddressClass {
        V4_RANGES
            .iter()
            .find(|(base, prefix, _)| v4_in(ip, *base, *prefix))
            .map_or(AddressClass::Public, |(_, _, class)| *class)
    }

    fn of_v6(ip: Ipv6Addr) -> AddressClass {
        let bits = u128::from(ip);
        let low32 = Ipv4Addr::from((bits & 0xffff_ffff) as u32);
        if ip.is_unspecified() {
            return AddressClass::Unspecified;
        }
        if ip.is_loopback() {
            return AddressClass::Loopback;
        }
        if let Some(v4) = ip.to_ipv4_mapped() {
            return AddressClass::of_v4(v4);
        }
        if v6_in(ip, Ipv6Addr::new(0x64, 0xff9b, 0, 0, 0, 0, 0, 0), 96) {
            return AddressClass::of_v4(low32);
        }
        if v6_in(ip, Ipv6Addr::new(0x2002, 0, 0, 0, 0, 0, 0, 0), 16) {
            return AddressClass::of_v4(Ipv4Addr::from((bits >> 80) as u32));
        }
        if v6_in(ip, Ipv6Addr::new(0x64, 0xff9b, 1, 0, 0, 0, 0, 0), 48)
            || v6_in(ip, Ipv6Addr::new(0xfc00, 0, 0, 0, 0, 0, 0, 0), 7)
            || v6_in(ip, Ipv6Addr::new(0xfec0, 0, 0, 0, 0, 0, 0, 0), 10)
        {
            return AddressClass::Private;
        }
        if v6_in(ip, Ipv6Addr::new(0xfe80, 0, 0, 0, 0, 0, 0, 0), 10) {
            return AddressClass::LinkLocal;
        }
        if ip.is_multicast() {
            return AddressClass::Multicast;
        }
        if !v6_in(ip, Ipv6Addr::new(0x2000, 0, 0, 0, 0, 0, 0, 0), 3) {
            // IPv4-compatible `::a.b.c.d`, discard-only 100::/64 and unallocated space.
            return AddressClass::Reserved;
        }
        V6_RANGES
            .iter()
            .find(|(base, prefix, _)| v6_in(ip, *base, *prefix))
            .map_or(AddressClass::Public, |(_, _, class)| *class)
    }
}

/// Names that mean this machine whatever DNS says (RFC 6761's `localhost.` and its
/// subdomains, and the aliases Debian's `/etc/hosts` gives loopback).
fn is_local_name(name: &str) -> bool {
    let name = name.trim_end_matches('.').to_ascii_lowercase();
    name == "localhost"
        || name.ends_with(".localhost")
        || matches!(
            name.as_str(),
            "localhost.localdomain" | "ip6-localhost" | "ip6-loopback"
        )
}

/// Why the service will not call a model's `base_url`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HostRefused {
    /// The host is a literal address that is not public.
    #[error(
        "base_url: {host} is {class}, which the service does not call unless its operator allows the host (proctor serve --allow-model-hosts)"
    )]
    Address {
        /// The host as the URL gives it.
        host: String,
        /// What kind of address it is.
        class: AddressClass,
    },
    /// The host is a name for this machine.
    #[error(
        "base_url: {host} names the service's own machine (loopback), which the service does not call unless its operator allows the host (proctor serve --allow-model-hosts)"
    )]
    LocalName {
        /// The host as the URL gives it.
        host: String,
    },
    /// Plain http to a host the operator did not allow.
    #[error(
        "base_url: the service calls model endpoints over https only; plain http to {host} needs its operator to allow the host (proctor serve --allow-model-hosts)"
    )]
    PlainHttp {
        /// The host as the URL gives it.
        host: String,
    },
    /// The URL has no host (the configuration's validation refuses such a URL first).
    #[error("base_url: must name a host")]
    NoHost,
}

/// An entry of `--allow-model-hosts` that cannot be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "cannot read {entry:?} as an allowed model host: {reason} (give a host name, host:port, an IP address, [IPv6]:port, or a CIDR range such as 10.0.0.0/8)"
)]
pub struct AllowanceError {
    entry: String,
    reason: &'static str,
}

impl HostPolicy {
    /// No rules: call whatever the configuration names. For `proctor run` and
    /// `proctor model test`, where the endpoint is the user's own business.
    pub fn any() -> HostPolicy {
        HostPolicy { rules: Rules::Any }
    }

    /// The service's rules with nothing allowed: public addresses, over https.
    pub fn service() -> HostPolicy {
        HostPolicy {
            rules: Rules::Service(Vec::new()),
        }
    }

    /// The service's rules, allowing the hosts of a comma-separated list, each a host name
    /// (`models.internal`), a name and port (`models.internal:8000`), an IP address
    /// (`10.0.0.5`, `fd00::5`), an address and port (`10.0.0.5:8000`, `[fd00::5]:8000`), or a
    /// CIDR range of addresses (`10.0.0.0/8`, `fd00::/8`, any port). An allowed host is called
    /// over http too, whatever its address; a range also admits the addresses a name resolves
    /// to. Names are matched exactly (no wildcards); empty entries are skipped.
    ///
    /// # Errors
    ///
    /// An entry that is none of these, naming it.
    pub fn service_allowing(list: &str) -> Result<HostPolicy, AllowanceError> {
        let allowed = list
            .split(',')
            .map(str::trim)
            .filter(|e| !e.is_empty())
            .map(Allowance::parse)
            .collect::<Result<Vec<_>, _>>()?;
        Ok(HostPolicy {
            rules: Rules::Service(allowed),
        })
    }

    /// Whether `url` may be called: its host as written (a name or a literal address) and its
    /// scheme. The addresses a name resolves to are checked when connecting.
    ///
    /// # Errors
    ///
    /// Why the host is refused, naming the operator's flag that would allow it.
    pub fn check_url(&self, url: &Url) -> Result<(), HostRefused> {
        let Rules::Service(allowed) = &self.rules else {
            return Ok(());
        };
        let host = url.host().ok_or(HostRefused::NoHost)?;
        let port = url.port_or_known_default();
        if allowed.iter().any(|a| a.admits_host(&host, port)) {
            return Ok(());
        }
        let shown = host.to_string();
        let class = match host {
            Host::Domain(name) if is_local_name(name) => {
                return Err(HostRefused::LocalName { host: shown });
            }
            Host::Domain(_) => AddressClass::Public,
            Host::Ipv4(ip) => AddressClass::of(IpAddr::V4(ip)),
            Host::Ipv6(ip) => AddressClass::of(IpAddr::V6(ip)),
        };
        if class != AddressClass::Public {
            return Err(HostRefused::Address { host: shown, class });
        }
        if url.scheme() != "https" {
            return Err(HostRefused::PlainHttp { host: shown });
        }
        Ok(())
    }

    /// Whether the addresses a name resolves to need checking when connecting to `url`:
    /// not without rules, nor for a name the operator allowed (it may resolve to anything).
    pub(crate) fn guards_resolution_for(&self, url: &Url) -> bool {
        match &self.rules {
            Rules::Any => false,
            Rules::Service(allowed) => match url.host() {
                Some(host @ Host::Domain(_)) => {
                    let port = url.port_or_known_default();
                    !allowed.iter().any(|a| a.admits_host(&host, port))
                }
                // A literal address is connected to without resolution; `check_url` ruled.
                _ => false,
            },
        }
    }

    /// Whether a connection to `ip` on `port` may be opened: a public address, or one in an
    /// allowed range (and port).
    pub(crate) fn admits_address(&self, ip: IpAddr, port: Option<u16>) -> bool {
        match &self.rules {
            Rules::Any => true,
            Rules::Service(allowed) => {
                AddressClass::of(ip) == AddressClass::Public
                    || allowed.iter().any(|a| a.admits_ip(ip, port))
            }
        }
    }
}

impl Allowance {
    fn parse(entry: &str) -> Result<Allowance, AllowanceError> {
        let fail = |reason| AllowanceError {
            entry: entry.chars().take(100).collect(),
            reason,
        };
        if let Some((base, prefix)) = entry.split_once('/') {
            let base: IpAddr = base
                .trim_start_matches('[')
                .trim_end_matches(']')
                .parse()
                .map_err(|_| fail("a range must be an IP address, a slash and a prefix length"))?;
            let prefix: u8 = prefix
                .parse()
                .map_err(|_| fail("the prefix length is not a number"))?;
            let bits = if base.is_ipv4() { 32 } else { 128 };
            if prefix > bits {
                return Err(fail("the prefix length is longer than the address"));
            }
            if Allowance::range_has_host_bits(base, prefix) {
                return Err(fail("the address has bits set past the prefix length"));
            }
            return Ok(Allowance {
                host: AllowedHost::Range { base, prefix },
                port: None,
            });
        }
        let (host, port) = split_port(entry).map_err(fail)?;
        if host.is_empty() {
            return Err(fail("it names no host"));
        }
        if let Ok(ip) = host.parse::<IpAddr>() {
            return Ok(Allowance::address(ip, port));
        }
        // Names are read as the URL parser reads a URL's host, so they compare equal to it
        // (lower case, IDNA, legacy IPv4 forms such as 127.1 as addresses).
        let url = Url::parse(&format!("http://{host}/"))
            .ok()
            .filter(|u| {
                u.path() == "/"
                    && u.port().is_none()
                    && u.query().is_none()
                    && u.fragment().is_none()
                    && u.username().is_empty()
                    && u.password().is_none()
            })
            .ok_or_else(|| fail("it is not a host name or address"))?;
        match url.host() {
            Some(Host::Domain(name)) => Ok(Allowance {
                host: AllowedHost::Name(name.trim_end_matches('.').to_owned()),
                port,
            }),
            Some(Host::Ipv4(ip)) => Ok(Allowance::address(IpAddr::V4(ip), port)),
            Some(Host::Ipv6(ip)) => Ok(Allowance::address(IpAddr::V6(ip), port)),
            None => Err(fail("it is not a host name or address")),
        }
    }

    fn address(ip: IpAddr, port: Option<u16>) -> Allowance {
        let prefix = if ip.is_ipv4() { 32 } else { 128 };
        Allowance {
            host: AllowedHost::Range { base: ip, prefix },
            port,
        }
    }

    fn range_has_host_bits(base: IpAddr, prefix: u8) -> bool {
        match base {
            IpAddr::V4(v4) => {
                let mask = u32::MAX.checked_shl(32 - u32::from(prefix)).unwrap_or(0);
                u32::from(v4) & !mask != 0
            }
            IpAddr::V6(v6) => {
                let mask = u128::MAX.checked_shl(128 - u32::from(prefix)).unwrap_or(0);
                u128::from(v6) & !mask != 0
            }
        }
    }

    fn port_matches(&self, port: Option<u16>) -> bool {
        self.port.is_none() || self.port == port
    }

    fn admits_host(&self, host: &Host<&str>, port: Option<u16>) -> bool {
        self.port_matches(port)
            && match (&self.host, host) {
                (AllowedHost::Name(allowed), Host::Domain(name)) => {
                    allowed == name.trim_end_matches('.')
                }
                (AllowedHost::Range { .. }, Host::Ipv4(ip)) => self.host.matches_ip((*ip).into()),
                (AllowedHost::Range { .. }, Host::Ipv6(ip)) => self.host.matches_ip((*ip).into()),
                _ => false,
            }
    }

    fn admits_ip(&self, ip: IpAddr, port: Option<u16>) -> bool {
        self.port_matches(port) && self.host.matches_ip(ip)
    }
}

impl AllowedHost {
    fn matches_ip(&self, ip: IpAddr) -> bool {
        match (self, ip) {
            (
                AllowedHost::Range {
                    base: IpAddr::V4(base),
                    prefix,
                },
                IpAddr::V4(ip),
            ) => v4_in(ip, *base, *prefix),
            (
                AllowedHost::Range {
                    base: IpAddr::V6(base),
                    prefix,
                },
                IpAddr::V6(ip),
            ) => v6_in(ip, *base, *prefix),
            _ => false,
        }
    }
}

/// `host`, `host:port`, `[v6]`, `[v6]:port` or a bare IPv6 address, split at the port.
fn split_port(entry: &str) -> Result<(&str, Option<u16>), &'static str> {
    let port = |text: &str| {
        text.parse::<u16>()
            .ok()
            .filter(|p| *p != 0)
            .ok_or("the port is not a number from 1 to 65535")
    };
    if let Some(rest) = entry.strip_prefix('[') {
        let (host, after) = rest
            .split_once(']')
            .ok_or("an IPv6 address in brackets lacks its closing ]")?;
        return match after {
            "" => Ok((host, None)),
            _ => {
                let after = after
                    .strip_prefix(':')
                    .ok_or("only :port may follow a bracketed address")?;
                Ok((host, Some(port(after)?)))
            }
        };
    }
    match entry.split_once(':') {
        Some((host, p)) if !p.contains(':') => Ok((host, Some(port(p)?))),
        _ => Ok((entry, None)),
    }
}

impl fmt::Display for Allowance {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (&self.host, self.port) {
            (AllowedHost::Name(name), None) => write!(f, "{name}"),
            (AllowedHost::Name(name), Some(port)) => write!(f, "{name}:{port}"),
            (AllowedHost::Range { base, prefix }, _) if *prefix < max_prefix(*base) => {
                write!(f, "{base}/{prefix}")
            }
            (AllowedHost::Range { base, .. }, None) => write!(f, "{base}"),
            (
                AllowedHost::Range {
                    base: IpAddr::V6(ip),
                    ..
                },
                Some(port),
            ) => {
                write!(f, "[{ip}]:{port}")
            }
            (AllowedHost::Range { base, .. }, Some(port)) => write!(f, "{base}:{port}"),
        }
    }
}

fn max_prefix(ip: IpAddr) -> u8 {
    if ip.is_ipv4() { 32 } else { 128 }
}

impl fmt::Display for HostPolicy {
    /// `any`, `public hosts over https`, or that and the allowed hosts.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.rules {
            Rules::Any => f.write_str("any host"),
            Rules::Service(allowed) if allowed.is_empty() => f.write_str("public hosts over https"),
            Rules::Service(allowed) => {
                f.write_str("public hosts over https; allowed over http too: ")?;
                for (i, a) in allowed.iter().enumerate() {
                    if i > 0 {
                        f.write_str(", ")?;
                    }
                    write!(f, "{a}")?;
                }
                Ok(())
            }
        }
    }
}

#[cfg(test)]
mod tests;
