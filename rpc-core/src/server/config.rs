//! [`Config`], the limits of a server, and the `RPC_*` environment
//! variables that set them, for hosts that cannot pass a `Config` (a C
//! program calling a library's serve entry point, say).

use std::path::PathBuf;
use std::time::Duration;

use super::listener::DEFAULT_UNIX_MODE;
use crate::events;
use crate::wire::{DEFAULT_MAX_FRAME, DEFAULT_MAX_REPLY};
use crate::Error;

/// Limits of a server. Every field has a documented default.
#[derive(Debug, Clone)]
#[non_exhaustive]
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
    /// Permission bits of a unix socket file. The file is created owner-only
    /// (0600) whatever the umask, then set to this; 0660 lets the owner's
    /// group connect too. Default [`DEFAULT_UNIX_MODE`] (0600).
    pub unix_mode: u32,
    /// Envelope bytes of the events waiting for one subscribed connection;
    /// an event that does not fit is dropped and counted like one over
    /// [`Config::max_event_queue`] (an empty queue takes any event that
    /// fits [`Config::max_reply`]).
    /// Default [`events::DEFAULT_REMOTE_QUEUE_BYTES`] (4 MiB).
    pub max_event_queue_bytes: usize,
    /// One memory budget for the whole server, in bytes: payloads of running
    /// calls, unsent replies, queued events and buffered partial frames,
    /// summed over every connection. At the budget the server stops reading
    /// from the connections holding more than 64 KiB until usage falls (one
    /// at a time whose partial frame is all it holds may finish it);
    /// nothing fails for lack of budget. Default 128 MiB.
    pub max_memory: usize,
    /// Close a connection whose partial frame has received no byte for this
    /// long (a slow-loris); a frame arriving slowly but steadily is never
    /// cut. Default 30 s; `None` is never.
    pub frame_timeout: Option<Duration>,
    /// The largest reply body sent: a larger reply is replaced by status 1
    /// `METHOD: reply of N bytes exceeds the limit of M`, a larger event is
    /// dropped and counted. The clients accept [`DEFAULT_MAX_REPLY`] by
    /// default. Default [`DEFAULT_MAX_REPLY`] (4 MiB + 64 KiB, room for the
    /// echo of a maximum request).
    pub max_reply: usize,
    /// The certificate chain (PEM, leaf first) a `tls:` listener presents.
    /// Default `None`: a `tls:` address is refused at start-up without it.
    pub tls_cert: Option<PathBuf>,
    /// The private key (PEM) of [`Config::tls_cert`]. Default `None`.
    pub tls_key: Option<PathBuf>,
    /// When set, the CA certificates (PEM) a `tls:` client's certificate
    /// must chain to: mutual TLS, a client without one is refused.
    /// Default `None`: no client certificate is asked for.
    pub tls_client_ca: Option<PathBuf>,
}

/// The default of [`Config::max_memory`]: 128 MiB.
pub const DEFAULT_MAX_MEMORY: usize = 128 * 1024 * 1024;

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
            unix_mode: DEFAULT_UNIX_MODE,
            max_event_queue_bytes: events::DEFAULT_REMOTE_QUEUE_BYTES,
            max_memory: DEFAULT_MAX_MEMORY,
            frame_timeout: Some(Duration::from_secs(30)),
            max_reply: DEFAULT_MAX_REPLY,
            tls_cert: None,
            tls_key: None,
            tls_client_ca: None,
        }
    }
}

/// Builder-style setters: `Config::default().max_frame(1 << 20)`.
impl Config {
    /// Sets [`Config::max_frame`].
    pub fn max_frame(mut self, bytes: usize) -> Self {
        self.max_frame = bytes;
        self
    }
    /// Sets [`Config::max_in_flight`].
    pub fn max_in_flight(mut self, requests: usize) -> Self {
        self.max_in_flight = requests;
        self
    }
    /// Sets [`Config::max_in_flight_bytes`].
    pub fn max_in_flight_bytes(mut self, bytes: usize) -> Self {
        self.max_in_flight_bytes = bytes;
        self
    }
    /// Sets [`Config::max_write_backlog`].
    pub fn max_write_backlog(mut self, bytes: usize) -> Self {
        self.max_write_backlog = bytes;
        self
    }
    /// Sets [`Config::max_connections`].
    pub fn max_connections(mut self, connections: usize) -> Self {
        self.max_connections = connections;
        self
    }
    /// Sets [`Config::idle_timeout`].
    pub fn idle_timeout(mut self, timeout: Option<Duration>) -> Self {
        self.idle_timeout = timeout;
        self
    }
    /// Sets [`Config::drain_timeout`].
    pub fn drain_timeout(mut self, timeout: Duration) -> Self {
        self.drain_timeout = timeout;
        self
    }
    /// Sets [`Config::max_event_queue`].
    pub fn max_event_queue(mut self, events: usize) -> Self {
        self.max_event_queue = events;
        self
    }
    /// Sets [`Config::unix_mode`] (permission bits, `0o660` say).
    pub fn unix_mode(mut self, mode: u32) -> Self {
        self.unix_mode = mode;
        self
    }
    /// Sets [`Config::max_event_queue_bytes`].
    pub fn max_event_queue_bytes(mut self, bytes: usize) -> Self {
        self.max_event_queue_bytes = bytes;
        self
    }
    /// Sets [`Config::max_memory`].
    pub fn max_memory(mut self, bytes: usize) -> Self {
        self.max_memory = bytes;
        self
    }
    /// Sets [`Config::frame_timeout`].
    pub fn frame_timeout(mut self, timeout: Option<Duration>) -> Self {
        self.frame_timeout = timeout;
        self
    }
    /// Sets [`Config::max_reply`].
    pub fn max_reply(mut self, bytes: usize) -> Self {
        self.max_reply = bytes;
        self
    }
    /// Sets [`Config::tls_cert`].
    pub fn tls_cert(mut self, path: impl Into<PathBuf>) -> Self {
        self.tls_cert = Some(path.into());
        self
    }
    /// Sets [`Config::tls_key`].
    pub fn tls_key(mut self, path: impl Into<PathBuf>) -> Self {
        self.tls_key = Some(path.into());
        self
    }
    /// Sets [`Config::tls_client_ca`] (mutual TLS).
    pub fn tls_client_ca(mut self, path: impl Into<PathBuf>) -> Self {
        self.tls_client_ca = Some(path.into());
        self
    }
}

/// One `RPC_*` variable: its name, the type of its value, its default and
/// what it bounds. [`ENV_VARS`] drives [`Config::from_env`], `serve_host
/// --help` ([`env_help`]) and the README's table ([`env_markdown`]).
#[derive(Debug, Clone, Copy)]
pub struct EnvVar {
    /// The variable's name, `RPC_...`.
    pub name: &'static str,
    /// The type of its value, as a user reads it (`bytes`, `milliseconds`,
    /// `path`...).
    pub kind: &'static str,
    /// The default, in the variable's own unit (0 for a path: unset).
    pub default: u64,
    /// One line on what it bounds.
    pub meaning: &'static str,
    /// How a value is parsed and stored.
    parse: Parse,
}

#[derive(Debug, Clone, Copy)]
enum Parse {
    /// A whole number in `min..=max`, written in `radix` (10, or 8 for a
    /// file mode written `0660`).
    Number {
        min: u64,
        max: u64,
        radix: u32,
        apply: fn(&mut Config, u64),
    },
    /// A file path, unset by default.
    Path(fn(&mut Config, PathBuf)),
}

impl EnvVar {
    /// The default as the variable is written: decimal, or octal with a
    /// leading 0 for a mode.
    pub fn default_text(&self) -> String {
        self.format(self.default)
    }

    fn format(&self, n: u64) -> String {
        match self.parse {
            Parse::Number { radix: 8, .. } => format!("{n:04o}"),
            Parse::Number { .. } => n.to_string(),
            Parse::Path(_) => "unset".to_owned(),
        }
    }
}

fn size(n: u64) -> usize {
    usize::try_from(n).unwrap_or(usize::MAX)
}

/// Every variable [`Config::from_env`] reads, in the order they are listed.
pub const ENV_VARS: [EnvVar; 16] = [
    EnvVar {
        name: "RPC_MAX_FRAME",
        kind: "bytes",
        default: DEFAULT_MAX_FRAME as u64,
        meaning: "largest request (method name plus payload); a larger header closes the connection after the replies owed",
        parse: Parse::Number {
            min: 1,
            max: u64::MAX,
            radix: 10,
            apply: |c, n| c.max_frame = size(n),
        },
    },
    EnvVar {
        name: "RPC_MAX_IN_FLIGHT",
        kind: "requests",
        default: 128,
        meaning: "requests of one connection running at once; at the bound the server stops reading from it",
        parse: Parse::Number {
            min: 1,
            max: u64::MAX,
            radix: 10,
            apply: |c, n| c.max_in_flight = size(n),
        },
    },
    EnvVar {
        name: "RPC_MAX_IN_FLIGHT_BYTES",
        kind: "bytes",
        default: 16 * 1024 * 1024,
        meaning: "payload bytes of one connection's running requests; at the bound the server stops reading from it (a lone larger request still runs)",
        parse: Parse::Number {
            min: 1,
            max: u64::MAX,
            radix: 10,
            apply: |c, n| c.max_in_flight_bytes = size(n),
        },
    },
    EnvVar {
        name: "RPC_MAX_WRITE_BACKLOG",
        kind: "bytes",
        default: 1024 * 1024,
        meaning: "unsent reply bytes of one connection; above it the server stops reading from a client that does not read",
        parse: Parse::Number {
            min: 1,
            max: u64::MAX,
            radix: 10,
            apply: |c, n| c.max_write_backlog = size(n),
        },
    },
    EnvVar {
        name: "RPC_MAX_CONNECTIONS",
        kind: "connections",
        default: 16384,
        meaning: "connections served at once; more wait in the accept backlog",
        parse: Parse::Number {
            min: 1,
            max: u64::MAX,
            radix: 10,
            apply: |c, n| c.max_connections = size(n),
        },
    },
    EnvVar {
        name: "RPC_IDLE_TIMEOUT_MS",
        kind: "milliseconds",
        default: 0,
        meaning: "close a connection that sends nothing and awaits nothing after this long; 0 is never",
        parse: Parse::Number {
            min: 0,
            max: u64::MAX,
            radix: 10,
            apply: |c, ms| c.idle_timeout = (ms > 0).then(|| Duration::from_millis(ms)),
        },
    },
    EnvVar {
        name: "RPC_DRAIN_TIMEOUT_MS",
        kind: "milliseconds",
        default: 30_000,
        meaning: "how long a shutdown (SIGTERM) waits for the replies owed",
        parse: Parse::Number {
            min: 0,
            max: u64::MAX,
            radix: 10,
            apply: |c, ms| c.drain_timeout = Duration::from_millis(ms),
        },
    },
    EnvVar {
        name: "RPC_MAX_EVENT_QUEUE",
        kind: "events",
        default: events::DEFAULT_REMOTE_QUEUE as u64,
        meaning: "events waiting for one subscribed connection; beyond it they are dropped for that connection and counted",
        parse: Parse::Number {
            min: 1,
            max: u64::MAX,
            radix: 10,
            apply: |c, n| c.max_event_queue = size(n),
        },
    },
    EnvVar {
        name: "RPC_TLS_CERT",
        kind: "path",
        default: 0,
        meaning: "PEM certificate chain a tls: address presents (needed for tls:); SIGHUP re-reads the TLS files",
        parse: Parse::Path(|c, p| c.tls_cert = Some(p)),
    },
    EnvVar {
        name: "RPC_TLS_KEY",
        kind: "path",
        default: 0,
        meaning: "PEM private key of RPC_TLS_CERT",
        parse: Parse::Path(|c, p| c.tls_key = Some(p)),
    },
    EnvVar {
        name: "RPC_TLS_CLIENT_CA",
        kind: "path",
        default: 0,
        meaning: "PEM CA certificates; when set, a tls: client must present a certificate chained to them (mutual TLS)",
        parse: Parse::Path(|c, p| c.tls_client_ca = Some(p)),
    },
    EnvVar {
        name: "RPC_UNIX_MODE",
        kind: "octal mode",
        default: DEFAULT_UNIX_MODE as u64,
        meaning: "permission bits of a unix socket file (created owner-only whatever the umask, then set to this); 0660 lets the group connect",
        parse: Parse::Number {
            min: 0,
            max: 0o777,
            radix: 8,
            apply: |c, mode| c.unix_mode = mode as u32,
        },
    },
    EnvVar {
        name: "RPC_MAX_EVENT_QUEUE_BYTES",
        kind: "bytes",
        default: events::DEFAULT_REMOTE_QUEUE_BYTES as u64,
        meaning: "envelope bytes of the events waiting for one subscribed connection; what does not fit is dropped and counted (an empty queue takes any event up to RPC_MAX_REPLY)",
        parse: Parse::Number {
            min: 1,
            max: u64::MAX,
            radix: 10,
            apply: |c, n| c.max_event_queue_bytes = size(n),
        },
    },
    EnvVar {
        name: "RPC_MAX_MEMORY",
        kind: "bytes",
        default: DEFAULT_MAX_MEMORY as u64,
        meaning: "one budget for the whole server: running calls' payloads, unsent replies, queued events and partial frames of every connection; at it the server stops reading from the connections holding more than 64 KiB until usage falls (nothing fails, it waits)",
        parse: Parse::Number {
            min: 1,
            max: u64::MAX,
            radix: 10,
            apply: |c, n| c.max_memory = size(n),
        },
    },
    EnvVar {
        name: "RPC_FRAME_TIMEOUT_MS",
        kind: "milliseconds",
        default: 30_000,
        meaning: "close a connection whose partial frame has received no byte for this long (slow-loris); 0 is never",
        parse: Parse::Number {
            min: 0,
            max: u64::MAX,
            radix: 10,
            apply: |c, ms| c.frame_timeout = (ms > 0).then(|| Duration::from_millis(ms)),
        },
    },
    EnvVar {
        name: "RPC_MAX_REPLY",
        kind: "bytes",
        default: DEFAULT_MAX_REPLY as u64,
        meaning: "largest reply or event body sent (what the clients accept by default); a larger reply becomes status 1, a larger event is dropped and counted",
        parse: Parse::Number {
            min: 1,
            max: u64::MAX,
            radix: 10,
            apply: |c, n| c.max_reply = size(n),
        },
    },
];

/// [`ENV_VARS`] as a markdown table, as the README shows it.
pub fn env_markdown() -> String {
    let mut out =
        String::from("| variable | type | default | meaning |\n| --- | --- | --- | --- |\n");
    for var in &ENV_VARS {
        out.push_str(&format!(
            "| `{}` | {} | {} | {} |\n",
            var.name,
            var.kind,
            var.default_text(),
            var.meaning
        ));
    }
    out
}

/// [`ENV_VARS`] as plain text, one variable a line, as `serve_host --help`
/// prints it.
pub fn env_help() -> String {
    let width = ENV_VARS.iter().map(|v| v.name.len()).max().unwrap_or(0);
    let mut out = String::from("Limits and TLS files (environment variables; type, default):\n");
    for var in &ENV_VARS {
        out.push_str(&format!(
            "  {:width$}  {} ({}, default {})\n",
            var.name,
            var.meaning,
            var.kind,
            var.default_text()
        ));
    }
    out
}

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
        for spec in &ENV_VARS {
            let name = spec.name;
            let Some(value) = var(name) else {
                continue;
            };
            let invalid = |reason| Error::InvalidConfig {
                name,
                value: value.clone(),
                reason,
            };
            match spec.parse {
                Parse::Number {
                    min,
                    max,
                    radix,
                    apply,
                } => {
                    let n = match radix {
                        8 => u64::from_str_radix(value.trim(), 8)
                            .map_err(|_| invalid("expected an octal mode such as 0660"))?,
                        _ => value
                            .trim()
                            .parse()
                            .map_err(|_| invalid("expected a whole number"))?,
                    };
                    if n < min {
                        return Err(invalid("must be at least 1"));
                    }
                    if n > max {
                        return Err(invalid("must be at most 0777"));
                    }
                    apply(&mut config, n);
                }
                Parse::Path(apply) => {
                    if value.is_empty() {
                        return Err(invalid("expected a file path"));
                    }
                    apply(&mut config, PathBuf::from(value));
                }
            }
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
            ("RPC_UNIX_MODE", "0660"),
            ("RPC_MAX_EVENT_QUEUE_BYTES", "9000"),
            ("RPC_MAX_MEMORY", "1048576"),
            ("RPC_FRAME_TIMEOUT_MS", "250"),
            ("RPC_MAX_REPLY", "2048"),
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
        assert_eq!(config.unix_mode, 0o660);
        assert_eq!(config.max_event_queue_bytes, 9000);
        assert_eq!(config.max_memory, 1 << 20);
        assert_eq!(config.frame_timeout, Some(Duration::from_millis(250)));
        assert_eq!(config.max_reply, 2048);
        let tls = with(&[
            ("RPC_TLS_CERT", "/etc/rpc/cert.pem"),
            ("RPC_TLS_KEY", "/etc/rpc/key.pem"),
            ("RPC_TLS_CLIENT_CA", "/etc/rpc/ca.pem"),
        ])
        .unwrap();
        assert_eq!(tls.tls_cert, Some("/etc/rpc/cert.pem".into()));
        assert_eq!(tls.tls_key, Some("/etc/rpc/key.pem".into()));
        assert_eq!(tls.tls_client_ca, Some("/etc/rpc/ca.pem".into()));
        assert!(with(&[("RPC_TLS_CERT", "")]).is_err());
        let off = with(&[("RPC_IDLE_TIMEOUT_MS", "0")]).unwrap();
        assert_eq!(off.idle_timeout, None);
        let off = with(&[("RPC_FRAME_TIMEOUT_MS", "0")]).unwrap();
        assert_eq!(off.frame_timeout, None);
    }

    #[test]
    fn the_table_defaults_are_the_config_defaults() {
        let defaults: Vec<(&str, String)> = ENV_VARS
            .iter()
            .filter(|v| matches!(v.parse, Parse::Number { .. }))
            .map(|v| (v.name, v.default_text()))
            .collect();
        let from_table = Config::from_vars(|name| {
            defaults
                .iter()
                .find(|(k, _)| *k == name)
                .map(|(_, v)| v.clone())
        })
        .unwrap();
        assert_eq!(
            format!("{from_table:?}"),
            format!("{:?}", Config::default())
        );
        // Every variable sets something: a value unlike its default shows.
        for var in &ENV_VARS {
            let other = match var.parse {
                Parse::Number { .. } => var.format(var.default + 7),
                Parse::Path(_) => "/some/file.pem".to_owned(),
            };
            let set = with(&[(var.name, &other)]).unwrap();
            assert_ne!(
                format!("{set:?}"),
                format!("{:?}", Config::default()),
                "{}",
                var.name
            );
        }
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
        let err = with(&[("RPC_UNIX_MODE", "0968")]).unwrap_err();
        assert_eq!(
            err.to_string(),
            r#"invalid RPC_UNIX_MODE="0968": expected an octal mode such as 0660"#
        );
        let err = with(&[("RPC_UNIX_MODE", "4755")]).unwrap_err();
        assert_eq!(
            err.to_string(),
            r#"invalid RPC_UNIX_MODE="4755": must be at most 0777"#
        );
    }
}
