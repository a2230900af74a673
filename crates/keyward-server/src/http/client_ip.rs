//! The client address of a request: the TCP peer, unless the peer is a
//! configured trusted proxy. Then `X-Forwarded-For` (or `Forwarded: for=`)
//! is read from the right, skipping trusted proxies, and the first address
//! that is not one is the client. From anyone else those headers, and
//! `X-Real-IP`, are ignored: they are the client's own words.

use axum::http::HeaderMap;
use ipnet::IpNet;
use keyward_core::policy::canonical_ip;
use std::net::IpAddr;

fn trusted(ip: IpAddr, proxies: &[IpNet]) -> bool {
    proxies.iter().any(|n| n.contains(&ip))
}

/// Addresses named by the forwarding headers, left to right.
fn forwarded_chain(headers: &HeaderMap) -> Option<Vec<IpAddr>> {
    let mut chain = Vec::new();
    let xff: Vec<_> = headers.get_all("x-forwarded-for").iter().collect();
    if !xff.is_empty() {
        for v in xff {
            for part in v.to_str().ok()?.split(',') {
                chain.push(parse_node(part.trim())?);
            }
        }
        return Some(chain);
    }
    let fwd: Vec<_> = headers.get_all("forwarded").iter().collect();
    if fwd.is_empty() {
        return None;
    }
    for v in fwd {
        for element in v.to_str().ok()?.split(',') {
            let node = element
                .split(';')
                .filter_map(|pair| pair.trim().split_once('='))
                .find(|(k, _)| k.trim().eq_ignore_ascii_case("for"))
                .map(|(_, v)| v.trim().trim_matches('"'))?;
            chain.push(parse_node(node)?);
        }
    }
    Some(chain)
}

/// `203.0.113.7`, `203.0.113.7:443`, `[2001:db8::1]`, `[2001:db8::1]:443`, `2001:db8::1`.
fn parse_node(s: &str) -> Option<IpAddr> {
    if let Ok(ip) = s.parse::<IpAddr>() {
        return Some(ip);
    }
    if let Some(rest) = s.strip_prefix('[') {
        return rest.split(']').next()?.parse().ok();
    }
    s.rsplit_once(':').and_then(|(h, _)| h.parse().ok())
}

/// The client address for a request from `peer`.
pub(super) fn client_ip(peer: IpAddr, headers: &HeaderMap, proxies: &[IpNet]) -> IpAddr {
    let peer = canonical_ip(peer);
    if proxies.is_empty() || !trusted(peer, proxies) {
        return peer;
    }
    match forwarded_chain(headers) {
        // Malformed forwarding headers from a trusted proxy: fall back to the proxy itself.
        None => peer,
        Some(chain) => chain.into_iter().map(canonical_ip).rev().find(|ip| !trusted(*ip, proxies)).unwrap_or(peer),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    fn h(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut m = HeaderMap::new();
        for (k, v) in pairs {
            m.append(*k, HeaderValue::from_str(v).unwrap());
        }
        m
    }

    #[test]
    fn untrusted_peers_cannot_claim_another_address() {
        let proxies: Vec<IpNet> = vec!["10.0.0.0/8".parse().unwrap()];
        let peer: IpAddr = "198.51.100.9".parse().unwrap();
        for headers in [
            h(&[("x-forwarded-for", "127.0.0.1")]),
            h(&[("forwarded", "for=127.0.0.1")]),
            h(&[("x-real-ip", "127.0.0.1")]),
        ] {
            assert_eq!(client_ip(peer, &headers, &proxies), peer);
            assert_eq!(client_ip(peer, &headers, &[]), peer);
        }
    }

    #[test]
    fn rightmost_untrusted_address_from_a_trusted_proxy() {
        let proxies: Vec<IpNet> = vec!["10.0.0.0/8".parse().unwrap()];
        let peer: IpAddr = "10.0.0.2".parse().unwrap();
        let xff = h(&[("x-forwarded-for", "1.1.1.1, 203.0.113.7, 10.0.0.5")]);
        assert_eq!(client_ip(peer, &xff, &proxies), "203.0.113.7".parse::<IpAddr>().unwrap());
        let two = h(&[("x-forwarded-for", "1.1.1.1"), ("x-forwarded-for", "203.0.113.8")]);
        assert_eq!(client_ip(peer, &two, &proxies), "203.0.113.8".parse::<IpAddr>().unwrap());
        let fwd = h(&[("forwarded", r#"for=192.0.2.60;proto=http, for="[2001:db8:cafe::17]:4711""#)]);
        assert_eq!(client_ip(peer, &fwd, &proxies), "2001:db8:cafe::17".parse::<IpAddr>().unwrap());
        // X-Real-IP is never used.
        assert_eq!(client_ip(peer, &h(&[("x-real-ip", "203.0.113.9")]), &proxies), peer);
        // Garbage: the proxy itself.
        assert_eq!(client_ip(peer, &h(&[("x-forwarded-for", "nonsense")]), &proxies), peer);
        // Everything trusted: the leftmost is as far as we can see... we keep the peer.
        assert_eq!(client_ip(peer, &h(&[("x-forwarded-for", "10.1.1.1")]), &proxies), peer);
    }
}
