//! The address a node advertises to its peers, and why it picked it: logged in
//! one line at start, since a wrong pick (a Docker bridge, loopback) makes a
//! node unreachable in ways its peers only discover later.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};

/// The advertised address and the reason it was chosen.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Advertised {
    /// `host:port` peers dial.
    pub addr: String,
    /// Where it came from, for the start-up log line.
    pub why: String,
    /// Other hosts cannot reach it (loopback while listening on every address).
    pub local_only: bool,
}

/// Picks the advertised address: `--advertise` as given; else `host` (iarnet's
/// config key) with the bound port; else the bound address; for an unspecified
/// IP (0.0.0.0 / ::), this host's first private (else first non-loopback) IPv4
/// address, as Serf does, or loopback on a host without one.
pub fn choose(explicit: Option<&str>, host: Option<&str>, bound: SocketAddr) -> Advertised {
    if let Some(a) = explicit {
        return Advertised {
            addr: a.to_owned(),
            why: "set by --advertise (GSP_ADVERTISE, gsp.advertise)".into(),
            local_only: false,
        };
    }
    if let Some(h) = host {
        return Advertised {
            addr: format!("{h}:{}", bound.port()),
            why: "the config file's host with the bound port".into(),
            local_only: false,
        };
    }
    if !bound.ip().is_unspecified() {
        return Advertised {
            addr: bound.to_string(),
            why: "the listen address".into(),
            local_only: false,
        };
    }
    pick_interface(bound.port(), &host_ipv4s())
}

/// The choice among this host's interfaces (`(name, ip)` pairs).
fn pick_interface(port: u16, interfaces: &[(String, Ipv4Addr)]) -> Advertised {
    let mut candidates: Vec<&(String, Ipv4Addr)> = interfaces
        .iter()
        .filter(|(_, ip)| !ip.is_loopback() && !ip.is_link_local() && !ip.is_unspecified())
        .collect();
    candidates.sort_by_key(|(_, ip)| (!ip.is_private(), *ip));
    match candidates.first() {
        Some((name, ip)) => {
            let kind = if ip.is_private() { "private" } else { "public" };
            let others: Vec<String> = candidates[1..]
                .iter()
                .map(|(n, ip)| format!("{n} {ip}"))
                .collect();
            let rest = if others.is_empty() {
                String::new()
            } else {
                format!("; also seen: {}", others.join(", "))
            };
            Advertised {
                addr: SocketAddr::new(IpAddr::V4(*ip), port).to_string(),
                why: format!(
                    "listening on every address; picked interface {name}, the lowest {kind} \
                     IPv4{rest}; set --advertise to choose another"
                ),
                local_only: false,
            }
        }
        None => Advertised {
            addr: SocketAddr::new(Ipv4Addr::LOCALHOST.into(), port).to_string(),
            why: "listening on every address but this host has no non-loopback IPv4; \
                  other hosts cannot reach this node: set --advertise"
                .into(),
            local_only: true,
        },
    }
}

fn host_ipv4s() -> Vec<(String, Ipv4Addr)> {
    let Ok(nets) = sysinfo::Networks::new_with_refreshed_list() else {
        return Vec::new();
    };
    nets.iter()
        .flat_map(|(name, data)| {
            data.ip_networks().iter().filter_map(move |n| match n.addr {
                IpAddr::V4(v4) => Some((name.to_string_lossy().into_owned(), v4)),
                IpAddr::V6(_) => None,
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ifs(list: &[(&str, [u8; 4])]) -> Vec<(String, Ipv4Addr)> {
        list.iter()
            .map(|(n, ip)| ((*n).to_owned(), Ipv4Addr::from(*ip)))
            .collect()
    }

    #[test]
    fn private_addresses_win_and_the_others_are_named() {
        let a = pick_interface(
            50005,
            &ifs(&[
                ("lo", [127, 0, 0, 1]),
                ("eth1", [203, 0, 113, 7]),
                ("eth0", [10, 1, 2, 3]),
                ("ll", [169, 254, 0, 1]),
            ]),
        );
        assert_eq!(a.addr, "10.1.2.3:50005");
        assert!(a.why.contains("interface eth0"), "{}", a.why);
        assert!(a.why.contains("also seen: eth1 203.0.113.7"), "{}", a.why);
        assert!(!a.why.contains("ll"), "{}", a.why);
        assert!(!a.local_only);
    }

    #[test]
    fn loopback_only_hosts_are_told_they_cannot_be_reached() {
        let a = pick_interface(7, &ifs(&[("lo", [127, 0, 0, 1])]));
        assert_eq!(a.addr, "127.0.0.1:7");
        assert!(a.local_only);
        assert!(a.why.contains("set --advertise"), "{}", a.why);
    }

    #[test]
    fn explicit_choices_come_first() {
        let bound: SocketAddr = "0.0.0.0:9".parse().unwrap();
        assert_eq!(choose(Some("h:1"), Some("x"), bound).addr, "h:1");
        assert_eq!(choose(None, Some("x"), bound).addr, "x:9");
        let specific: SocketAddr = "10.0.0.5:9".parse().unwrap();
        let a = choose(None, None, specific);
        assert_eq!(a.addr, "10.0.0.5:9");
        assert_eq!(a.why, "the listen address");
    }
}
