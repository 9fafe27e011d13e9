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

/// A browser's `User-Agent` in words for a person ("Firefox 128 on Linux"), by `woothee`'s
/// table of browsers and systems; "Unknown browser" for what it does not know.
pub fn describe_user_agent(user_agent: &str) -> String {
    let Some(found) = woothee::parser::Parser::new().parse(user_agent) else {
        return "Unknown browser".into();
    };
    let known = |s: &str| !s.is_empty() && s != woothee::woothee::VALUE_UNKNOWN;
    let browser = if known(found.name) {
        let major = found.version.split('.').next().unwrap_or("");
        if known(major) && !major.is_empty() {
            format!("{} {major}", found.name)
        } else {
            found.name.to_owned()
        }
    } else {
        "Unknown browser".to_owned()
    };
    if known(found.os) {
        format!("{browser} on {}", found.os)
    } else {
        browser
    }
}

#[cfg(test)]
mod user_agent_tests {
    use super::describe_user_agent;

    #[test]
    fn common_browsers_read_as_a_person_would_name_them() {
        let firefox = "Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0";
        assert_eq!(describe_user_agent(firefox), "Firefox 128 on Linux");
        let chrome = "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/126.0.0.0 Safari/537.36";
        assert!(
            describe_user_agent(chrome).starts_with("Chrome 126 on Windows"),
            "{}",
            describe_user_agent(chrome)
        );
        assert!(describe_user_agent("curl/8.0").contains("curl"));
        assert_eq!(describe_user_agent(""), "Unknown browser");
        assert_eq!(describe_user_agent("\u{0}\u{ffff}"), "Unknown browser");
    }
}
