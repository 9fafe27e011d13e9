//! Who asks (a request's address and user agent), and who counts as one client for a
//! per-client limit.

use std::net::IpAddr;

/// Who did something, from where: recorded with every consent event.
#[derive(Debug, Clone, Default)]
pub struct RequestOrigin {
    pub ip: Option<IpAddr>,
    pub user_agent: Option<String>,
}

/// The key a client is counted under: an IPv4 address (an IPv4-mapped IPv6 one included) as
/// it is, an IPv6 address with all but its first `prefix` bits cleared (one host usually holds
/// a whole `/64`, and could otherwise take a new address per request).
pub fn client_key(ip: IpAddr, prefix: u8) -> IpAddr {
    match ip {
        IpAddr::V4(v4) => IpAddr::V4(v4),
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => {
                let bits = u128::from(v6);
                let mask = u128::MAX
                    .checked_shl(128 - u32::from(prefix.clamp(1, 128)))
                    .unwrap_or(0);
                IpAddr::V6((bits & mask).into())
            }
        },
    }
}
