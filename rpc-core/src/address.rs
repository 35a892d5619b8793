//! Addresses: `tcp:HOST:PORT`, `tls:HOST:PORT` and `unix:PATH`.

use std::fmt;
use std::net::{Ipv6Addr, SocketAddr};
use std::path::PathBuf;
use std::str::FromStr;

use crate::Error;

/// Where a server listens or a client connects.
///
/// ```
/// use rpc_core::Address;
/// let tcp: Address = "tcp:[::1]:0".parse().unwrap();
/// assert_eq!(tcp, Address::Tcp { host: "::1".into(), port: 0 });
/// assert_eq!(tcp.to_string(), "tcp:[::1]:0");
/// let tls: Address = "tls:rpc.example:9443".parse().unwrap();
/// assert_eq!(tls, Address::Tls { host: "rpc.example".into(), port: 9443 });
/// assert_eq!(tls.to_string(), "tls:rpc.example:9443");
/// let unix: Address = "unix:/tmp/timer.sock".parse().unwrap();
/// assert_eq!(unix.to_string(), "unix:/tmp/timer.sock");
/// assert!("tcp:localhost".parse::<Address>().is_err());
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Address {
    /// A TCP host (name, IPv4 or IPv6 without its brackets) and port; port 0 picks a free port.
    Tcp {
        /// Host name or IP address; an IPv6 address is stored without brackets.
        host: String,
        /// Port number; 0 lets the system choose when binding.
        port: u16,
    },
    /// TLS over TCP: the same host and port forms as [`Address::Tcp`].
    /// Inside TLS the framing is byte for byte that of plain TCP.
    Tls {
        /// Host name or IP address; an IPv6 address is stored without brackets.
        /// A client checks the server's certificate against it (unless
        /// told another name).
        host: String,
        /// Port number; 0 lets the system choose when binding.
        port: u16,
    },
    /// A unix domain socket path (POSIX only when binding or connecting).
    Unix(PathBuf),
}

impl Address {
    /// The address of a bound TCP socket, with its real port.
    pub fn from_socket_addr(addr: SocketAddr) -> Self {
        Address::Tcp {
            host: addr.ip().to_string(),
            port: addr.port(),
        }
    }

    /// `HOST:PORT` as the resolver wants it (IPv6 in brackets); `None` for unix addresses.
    pub fn host_port(&self) -> Option<String> {
        match self {
            Address::Tcp { host, port } | Address::Tls { host, port } if host.contains(':') => {
                Some(format!("[{host}]:{port}"))
            }
            Address::Tcp { host, port } | Address::Tls { host, port } => {
                Some(format!("{host}:{port}"))
            }
            Address::Unix(_) => None,
        }
    }
}

impl FromStr for Address {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self, Error> {
        let invalid = |reason| Error::InvalidAddress {
            address: s.to_owned(),
            reason,
        };
        if let Some(path) = s.strip_prefix("unix:") {
            if path.is_empty() {
                return Err(invalid("the unix socket path is empty"));
            }
            return Ok(Address::Unix(PathBuf::from(path)));
        }
        let (scheme, rest) = if let Some(rest) = s.strip_prefix("tcp:") {
            ("tcp", rest)
        } else if let Some(rest) = s.strip_prefix("tls:") {
            ("tls", rest)
        } else {
            return Err(invalid(
                "expected tcp:HOST:PORT, tls:HOST:PORT or unix:PATH",
            ));
        };
        let Some((host, port)) = rest.rsplit_once(':') else {
            return Err(invalid(if scheme == "tls" {
                "expected tls:HOST:PORT"
            } else {
                "expected tcp:HOST:PORT"
            }));
        };
        let port = port
            .parse::<u16>()
            .map_err(|_| invalid("the port must be a number from 0 to 65535"))?;
        let host = if let Some(inner) = host.strip_prefix('[') {
            let inner = inner
                .strip_suffix(']')
                .ok_or_else(|| invalid("an IPv6 host must be closed with ']'"))?;
            inner
                .parse::<Ipv6Addr>()
                .map_err(|_| invalid("the bracketed host is not an IPv6 address"))?;
            inner
        } else if host.contains(':') {
            return Err(invalid(
                "an IPv6 host must be written in brackets, as in tcp:[::1]:PORT or tls:[::1]:PORT",
            ));
        } else {
            host
        };
        if host.is_empty() {
            return Err(invalid("the host is empty"));
        }
        let host = host.to_owned();
        Ok(if scheme == "tls" {
            Address::Tls { host, port }
        } else {
            Address::Tcp { host, port }
        })
    }
}

impl fmt::Display for Address {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Address::Tcp { .. } => write!(f, "tcp:{}", self.host_port().unwrap_or_default()),
            Address::Tls { .. } => write!(f, "tls:{}", self.host_port().unwrap_or_default()),
            Address::Unix(path) => write!(f, "unix:{}", path.display()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tcp(host: &str, port: u16) -> Address {
        Address::Tcp {
            host: host.into(),
            port,
        }
    }

    #[test]
    fn parses_the_contract_forms() {
        assert_eq!(
            "tcp:127.0.0.1:9099".parse::<Address>().unwrap(),
            tcp("127.0.0.1", 9099)
        );
        assert_eq!(
            "tcp:localhost:0".parse::<Address>().unwrap(),
            tcp("localhost", 0)
        );
        assert_eq!(
            "tcp:[::1]:65535".parse::<Address>().unwrap(),
            tcp("::1", 65535)
        );
        assert_eq!(
            "tls:127.0.0.1:9443".parse::<Address>().unwrap(),
            Address::Tls {
                host: "127.0.0.1".into(),
                port: 9443
            }
        );
        assert_eq!(
            "tls:[::1]:0".parse::<Address>().unwrap(),
            Address::Tls {
                host: "::1".into(),
                port: 0
            }
        );
        assert_eq!(
            "unix:/tmp/a b.sock".parse::<Address>().unwrap(),
            Address::Unix("/tmp/a b.sock".into())
        );
    }

    #[test]
    fn display_round_trips() {
        for s in [
            "tcp:127.0.0.1:1",
            "tcp:[::1]:0",
            "tcp:localhost:80",
            "tls:127.0.0.1:9443",
            "tls:[::1]:0",
            "tls:rpc.example:443",
            "unix:/tmp/x",
        ] {
            assert_eq!(s.parse::<Address>().unwrap().to_string(), s);
        }
    }

    #[test]
    fn refuses_malformed_addresses_with_a_reason() {
        for bad in [
            "",
            "127.0.0.1:80",
            "tcp:",
            "tcp:host",
            "tcp::80",
            "tcp:host:65536",
            "tcp:host:-1",
            "tcp:host:x",
            "tcp:::1:80",
            "tcp:[::1:80",
            "tcp:[nope]:80",
            "unix:",
            "udp:1.2.3.4:5",
            "tls:",
            "tls:host",
            "tls::443",
            "tls:host:70000",
            "tls:::1:443",
            "tls:[::1:443",
            "TLS:host:443",
        ] {
            let err = bad.parse::<Address>().unwrap_err();
            assert!(matches!(err, Error::InvalidAddress { .. }), "{bad}: {err}");
            assert!(err.to_string().contains(&format!("{bad:?}")), "{err}");
        }
    }
}
