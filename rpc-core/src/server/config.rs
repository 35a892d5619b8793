//! [`Config`], the limits of a server, and the `RPC_*` environment
//! variables that set them, for hosts that cannot pass a `Config` (a C
//! program calling a library's serve entry point, say).

use std::time::Duration;

use crate::codec::DEFAULT_MAX_FRAME;
use crate::events;
use crate::Error;

/// Limits of a server. Every field has a documented default.
#[derive(Debug, Clone)]
pub struct Config {
    /// Largest request (method name plus payload) in bytes; a larger header
    /// closes the connection after the replies owed are written.
    /// Default [`DEFAULT_MAX_FRAME`] (4 MiB).
    pub max_frame: usize,
    /// Requests of one connection running at once; at the bound the server
    /// stops reading from that connection until a reply is ready. Default 128.
    pub max_in_flight: usize,
    /// Payload bytes of one connection's requests still running (those not
    /// answered at their first poll); at the bound the server stops reading
    /// from that connection, so slow calls with large arguments cannot pile
    /// up `max_in_flight` frames. A single larger request still runs alone.
    /// Default 16 MiB.
    pub max_in_flight_bytes: usize,
    /// Unsent reply bytes of one connection above which the server stops
    /// reading from it (a client that does not read its replies). Default 1 MiB.
    pub max_write_backlog: usize,
    /// Connections served at once; further clients wait in the accept
    /// backlog until one closes. Default 16384.
    pub max_connections: usize,
    /// Close a connection that has sent nothing and has nothing in flight for
    /// this long. Default `None` (never): the contract has no idle rule.
    pub idle_timeout: Option<Duration>,
    /// How long a shutdown waits for connections to answer what they have
    /// read before aborting them. Default 30 s.
    pub drain_timeout: Duration,
    /// Events waiting for one subscribed connection; beyond it, events for
    /// that connection are dropped and counted (`PROTOCOL.md`).
    /// Default [`events::DEFAULT_REMOTE_QUEUE`] (256).
    pub max_event_queue: usize,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            max_frame: DEFAULT_MAX_FRAME,
            max_in_flight: 128,
            max_in_flight_bytes: 16 * 1024 * 1024,
            max_write_backlog: 1024 * 1024,
            max_connections: 16384,
            idle_timeout: None,
            drain_timeout: Duration::from_secs(30),
            max_event_queue: events::DEFAULT_REMOTE_QUEUE,
        }
    }
}

/// The variables [`Config::from_env`] reads, with what each sets.
pub const ENV_VARS: [(&str, &str); 8] = [
    ("RPC_MAX_FRAME", "max_frame, in bytes"),
    (
        "RPC_MAX_IN_FLIGHT",
        "max_in_flight, requests per connection",
    ),
    (
        "RPC_MAX_IN_FLIGHT_BYTES",
        "max_in_flight_bytes, payload bytes of running requests per connection",
    ),
    ("RPC_MAX_WRITE_BACKLOG", "max_write_backlog, in bytes"),
    ("RPC_MAX_CONNECTIONS", "max_connections"),
    (
        "RPC_IDLE_TIMEOUT_MS",
        "idle_timeout, in milliseconds; 0 is never",
    ),
    ("RPC_DRAIN_TIMEOUT_MS", "drain_timeout, in milliseconds"),
    (
        "RPC_MAX_EVENT_QUEUE",
        "max_event_queue, events per subscribed connection",
    ),
];

impl Config {
    /// The defaults, overridden by whichever of the variables in [`ENV_VARS`]
    /// are set. A value that is not a whole number, or 0 where at least 1 is
    /// needed, is an [`Error::InvalidConfig`] naming the variable.
    ///
    /// ```
    /// # use rpc_core::server::Config;
    /// // The limits an operator might give a small embedded server.
    /// let vars = [("RPC_MAX_CONNECTIONS", "64"), ("RPC_IDLE_TIMEOUT_MS", "30000")];
    /// let config = Config::from_vars(|name| {
    ///     vars.iter().find(|(k, _)| *k == name).map(|(_, v)| v.to_string())
    /// })
    /// .unwrap();
    /// assert_eq!(config.max_connections, 64);
    /// assert_eq!(config.idle_timeout, Some(std::time::Duration::from_secs(30)));
    /// ```
    pub fn from_env() -> Result<Config, Error> {
        Self::from_vars(|name| std::env::var(name).ok())
    }

    /// [`Config::from_env`] with the variables looked up by `var`.
    pub fn from_vars(var: impl Fn(&str) -> Option<String>) -> Result<Config, Error> {
        let mut config = Config::default();
        let get = |name: &'static str, min: u64| -> Result<Option<u64>, Error> {
            let Some(value) = var(name) else {
                return Ok(None);
            };
            let invalid = |reason| Error::InvalidConfig {
                name,
                value: value.clone(),
                reason,
            };
            let n: u64 = value
                .trim()
                .parse()
                .map_err(|_| invalid("expected a whole number"))?;
            if n < min {
                return Err(invalid("must be at least 1"));
            }
            Ok(Some(n))
        };
        let size = |n: u64| usize::try_from(n).unwrap_or(usize::MAX);
        if let Some(n) = get("RPC_MAX_FRAME", 1)? {
            config.max_frame = size(n);
        }
        if let Some(n) = get("RPC_MAX_IN_FLIGHT", 1)? {
            config.max_in_flight = size(n);
        }
        if let Some(n) = get("RPC_MAX_IN_FLIGHT_BYTES", 1)? {
            config.max_in_flight_bytes = size(n);
        }
        if let Some(n) = get("RPC_MAX_WRITE_BACKLOG", 1)? {
            config.max_write_backlog = size(n);
        }
        if let Some(n) = get("RPC_MAX_CONNECTIONS", 1)? {
            config.max_connections = size(n);
        }
        if let Some(ms) = get("RPC_IDLE_TIMEOUT_MS", 0)? {
            config.idle_timeout = (ms > 0).then(|| Duration::from_millis(ms));
        }
        if let Some(ms) = get("RPC_DRAIN_TIMEOUT_MS", 0)? {
            config.drain_timeout = Duration::from_millis(ms);
        }
        if let Some(n) = get("RPC_MAX_EVENT_QUEUE", 1)? {
            config.max_event_queue = size(n);
        }
        Ok(config)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn with(vars: &[(&str, &str)]) -> Result<Config, Error> {
        Config::from_vars(|name| {
            vars.iter()
                .find(|(k, _)| *k == name)
                .map(|(_, v)| (*v).to_owned())
        })
    }

    #[test]
    fn unset_variables_keep_the_defaults() {
        let config = with(&[]).unwrap();
        let default = Config::default();
        assert_eq!(config.max_frame, default.max_frame);
        assert_eq!(config.max_connections, default.max_connections);
        assert_eq!(config.idle_timeout, None);
    }

    #[test]
    fn every_variable_sets_its_limit() {
        let config = with(&[
            ("RPC_MAX_FRAME", "1024"),
            ("RPC_MAX_IN_FLIGHT", "2"),
            ("RPC_MAX_IN_FLIGHT_BYTES", "65536"),
            ("RPC_MAX_WRITE_BACKLOG", "4096"),
            ("RPC_MAX_CONNECTIONS", " 3 "),
            ("RPC_IDLE_TIMEOUT_MS", "1500"),
            ("RPC_DRAIN_TIMEOUT_MS", "0"),
            ("RPC_MAX_EVENT_QUEUE", "8"),
        ])
        .unwrap();
        assert_eq!(config.max_frame, 1024);
        assert_eq!(config.max_in_flight, 2);
        assert_eq!(config.max_in_flight_bytes, 65536);
        assert_eq!(config.max_write_backlog, 4096);
        assert_eq!(config.max_connections, 3);
        assert_eq!(config.idle_timeout, Some(Duration::from_millis(1500)));
        assert_eq!(config.drain_timeout, Duration::ZERO);
        assert_eq!(config.max_event_queue, 8);
        let off = with(&[("RPC_IDLE_TIMEOUT_MS", "0")]).unwrap();
        assert_eq!(off.idle_timeout, None);
    }

    #[test]
    fn bad_values_name_the_variable() {
        let err = with(&[("RPC_MAX_CONNECTIONS", "lots")]).unwrap_err();
        assert_eq!(
            err.to_string(),
            r#"invalid RPC_MAX_CONNECTIONS="lots": expected a whole number"#
        );
        let err = with(&[("RPC_MAX_IN_FLIGHT", "0")]).unwrap_err();
        assert_eq!(
            err.to_string(),
            r#"invalid RPC_MAX_IN_FLIGHT="0": must be at least 1"#
        );
        assert!(with(&[("RPC_MAX_FRAME", "-1")]).is_err());
    }
}
