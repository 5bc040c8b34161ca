//! The host rules as tables: addresses and their classes, URLs and the answer to each.

use super::*;

#[test]
fn addresses_are_classified_by_their_special_purpose_ranges() {
    use AddressClass::*;
    let table = [
        // IPv4
        ("8.8.8.8", Public),
        ("93.184.215.14", Public),
        ("1.1.1.1", Public),
        ("0.0.0.0", Unspecified),
        ("0.1.2.3", Unspecified),
        ("127.0.0.1", Loopback),
        ("127.255.255.254", Loopback),
        ("169.254.169.254", LinkLocal),
        ("169.254.0.1", LinkLocal),
        ("10.0.0.1", Private),
        ("172.16.0.1", Private),
        ("172.31.255.255", Private),
        ("172.32.0.1", Public),
        ("192.168.1.1", Private),
        ("100.64.0.1", Shared),
        ("100.127.255.255", Shared),
        ("100.128.0.1", Public),
        ("224.0.0.1", Multicast),
        ("239.255.255.255", Multicast),
        ("255.255.255.255", Broadcast),
        ("240.0.0.1", Reserved),
        ("192.0.0.8", Reserved),
        ("192.88.99.1", Reserved),
        ("192.0.2.1", Documentation),
        ("198.51.100.7", Documentation),
        ("203.0.113.9", Documentation),
        ("198.18.0.1", Benchmarking),
        ("198.19.255.255", Benchmarking),
        // IPv6
        ("2606:4700::1111", Public),
        ("2a00:1450:4001::200e", Public),
        ("::", Unspecified),
        ("::1", Loopback),
        ("fe80::1", LinkLocal),
        ("febf::1", LinkLocal),
        ("fc00::1", Private),
        ("fd12:3456::1", Private),
        ("fec0::1", Private),
        ("ff02::1", Multicast),
        ("2001:db8::1", Documentation),
        ("3fff::1", Documentation),
        ("2001:2::1", Benchmarking),
        ("2001::1", Reserved),
        ("100::1", Reserved),
        ("::7f00:1", Reserved),
        ("4000::1", Reserved),
        // IPv4 inside IPv6: the class of the IPv4 address reached.
        ("::ffff:127.0.0.1", Loopback),
        ("::ffff:169.254.169.254", LinkLocal),
        ("::ffff:10.0.0.1", Private),
        ("::ffff:100.64.0.1", Shared),
        ("::ffff:0.0.0.0", Unspecified),
        ("::ffff:224.0.0.1", Multicast),
        ("::ffff:255.255.255.255", Broadcast),
        ("::ffff:192.0.2.1", Documentation),
        ("::ffff:8.8.8.8", Public),
        ("64:ff9b::127.0.0.1", Loopback),
        ("64:ff9b::a9fe:a9fe", LinkLocal),
        ("64:ff9b::8.8.8.8", Public),
        ("64:ff9b:1::1", Private),
        ("2002:7f00:1::1", Loopback),
        ("2002:a9fe:a9fe::", LinkLocal),
        ("2002:0808:0808::1", Public),
    ];
    for (text, class) in table {
        let ip: IpAddr = text.parse().expect(text);
        assert_eq!(AddressClass::of(ip), class, "{text}");
    }
}

fn url(text: &str) -> Url {
    Url::parse(text).expect(text)
}

fn verdict(policy: &HostPolicy, text: &str) -> Result<(), String> {
    policy.check_url(&url(text)).map_err(|e| e.to_string())
}

#[test]
fn the_service_rules_refuse_local_and_plain_http_hosts_and_say_why() {
    let service = HostPolicy::service();
    let refused = [
        ("http://169.254.169.254/v1", "is a link-local address"),
        ("https://169.254.169.254/v1", "is a link-local address"),
        ("http://10.0.0.1/v1", "is a private address"),
        ("https://192.168.0.10/v1", "is a private address"),
        ("http://[::1]/v1", "is a loopback address"),
        ("https://[::ffff:127.0.0.1]/v1", "is a loopback address"),
        ("https://[fd00::1]/v1", "is a private address"),
        (
            "https://100.64.1.1/v1",
            "is a shared (carrier-grade NAT) address",
        ),
        ("https://0.0.0.0/v1", "is the unspecified address"),
        ("https://[::]/v1", "is the unspecified address"),
        ("https://224.0.0.1/v1", "is a multicast address"),
        ("https://255.255.255.255/v1", "is the broadcast address"),
        ("https://192.0.2.1/v1", "is a documentation address"),
        // Legacy IPv4 spellings are addresses to the URL parser, so to the rules too.
        ("https://2130706433/v1", "is a loopback address"),
        ("https://127.1/v1", "is a loopback address"),
        ("https://0x7f.0.0.1/v1", "is a loopback address"),
        (
            "http://localhost:8000/v1",
            "names the service's own machine",
        ),
        ("https://localhost./v1", "names the service's own machine"),
        ("https://LOCALHOST/v1", "names the service's own machine"),
        (
            "https://api.localhost/v1",
            "names the service's own machine",
        ),
        (
            "https://localhost.localdomain/v1",
            "names the service's own machine",
        ),
        (
            "https://ip6-localhost/v1",
            "names the service's own machine",
        ),
        (
            "http://example.com/v1",
            "over https only; plain http to example.com",
        ),
        (
            "http://8.8.8.8/v1",
            "over https only; plain http to 8.8.8.8",
        ),
    ];
    for (text, why) in refused {
        let message = verdict(&service, text).expect_err(text);
        assert!(message.contains(why), "{text}: {message}");
        assert!(
            message.contains("--allow-model-hosts"),
            "{text} names the flag: {message}"
        );
    }
    for text in [
        "https://api.example.com/v1",
        "https://api.openai.com/v1",
        "https://8.8.8.8/v1",
        "https://[2606:4700::1111]/v1",
        "https://localhost.example.com/v1",
    ] {
        assert_eq!(verdict(&service, text), Ok(()), "{text}");
    }
}

#[test]
fn allowed_hosts_are_called_over_http_too_and_only_on_their_port() {
    let policy = HostPolicy::service_allowing(
        "127.0.0.1:8000, models.internal, Gpu-Box.Lab:9000, 10.0.0.0/8, [::1]:7000, fd00::5",
    )
    .expect("a valid list");
    for text in [
        "http://127.0.0.1:8000/v1",
        "http://models.internal/v1",
        "https://models.internal:4443/v1",
        "http://models.internal./v1",
        "http://gpu-box.lab:9000/v1",
        "http://10.20.30.40:1234/v1",
        "http://[::1]:7000/v1",
        "http://[fd00::5]/v1",
    ] {
        assert_eq!(verdict(&policy, text), Ok(()), "{text}");
    }
    for (text, why) in [
        ("http://127.0.0.1:8001/v1", "is a loopback address"),
        ("http://gpu-box.lab/v1", "over https only"),
        ("http://[::1]:7001/v1", "is a loopback address"),
        ("http://[fd00::6]/v1", "is a private address"),
        ("http://other.internal/v1", "over https only"),
        ("http://169.254.169.254/v1", "is a link-local address"),
    ] {
        let message = verdict(&policy, text).expect_err(text);
        assert!(message.contains(why), "{text}: {message}");
    }
}

#[test]
fn local_runs_call_whatever_they_are_given() {
    for text in [
        "http://127.0.0.1:8000/v1",
        "http://localhost:8000/v1",
        "http://169.254.169.254/v1",
        "http://example.com/v1",
    ] {
        assert_eq!(verdict(&HostPolicy::any(), text), Ok(()), "{text}");
    }
}

#[test]
fn resolution_is_guarded_except_for_allowed_names_and_literal_addresses() {
    let policy = HostPolicy::service_allowing("models.internal:8000").expect("valid");
    assert!(policy.guards_resolution_for(&url("https://api.example.com/v1")));
    assert!(policy.guards_resolution_for(&url("http://models.internal:8001/v1")));
    assert!(!policy.guards_resolution_for(&url("http://models.internal:8000/v1")));
    assert!(!policy.guards_resolution_for(&url("https://8.8.8.8/v1")));
    assert!(!HostPolicy::any().guards_resolution_for(&url("https://api.example.com/v1")));
}

#[test]
fn the_allowance_list_reads_names_ports_addresses_and_ranges() {
    let policy = HostPolicy::service_allowing(
        " models.internal ,models.internal:8000,10.0.0.5,10.0.0.5:8000,::1,[::1]:7000,10.0.0.0/8,fd00::/8,,",
    )
    .expect("valid");
    assert_eq!(
        policy.to_string(),
        "public hosts over https; allowed over http too: models.internal, models.internal:8000, \
         10.0.0.5, 10.0.0.5:8000, ::1, [::1]:7000, 10.0.0.0/8, fd00::/8"
    );
    assert_eq!(
        HostPolicy::service_allowing("").expect("empty"),
        HostPolicy::service()
    );
    for (entry, why) in [
        ("host:port", "the port is not a number"),
        ("host:0", "the port is not a number"),
        ("host:70000", "the port is not a number"),
        ("[::1]8000", "only :port may follow"),
        ("10.0.0.0/33", "the prefix length is longer"),
        ("10.0.0.1/8", "bits set past the prefix length"),
        ("example.com/8", "a range must be an IP address"),
        ("10.0.0.0/x", "the prefix length is not a number"),
        ("http://x", "a range must be an IP address"),
        ("a b", "not a host name or address"),
        (":80", "names no host"),
        ("user@host", "not a host name or address"),
        ("host?x", "not a host name or address"),
        ("[::1", "lacks its closing ]"),
    ] {
        let err = HostPolicy::service_allowing(entry)
            .expect_err(entry)
            .to_string();
        assert!(err.contains(why), "{entry}: {err}");
        assert!(err.contains(&format!("{entry:?}")), "{entry}: {err}");
    }
}
