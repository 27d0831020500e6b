//! `outrigger healthcheck`: one `GET /v1.0/healthz` to a gateway, so a
//! container image that holds nothing but the binary (`FROM scratch`: no
//! shell, no curl) can still have a `HEALTHCHECK`:
//!
//! ```dockerfile
//! HEALTHCHECK CMD ["/outrigger", "healthcheck"]
//! ```
//!
//! Healthy means `2xx` (the gateway answers 204 once its APIs serve and every
//! component is initialised). Plain blocking HTTP/1.1 on std: the probe runs
//! as its own short-lived process, so it needs no async runtime.

use std::io::{Read, Write};
use std::net::{IpAddr, Ipv4Addr, SocketAddr, TcpStream};
use std::time::Duration;

use clap::Args;

/// The path probed.
pub const HEALTHZ_PATH: &str = "/v1.0/healthz";

/// Flags of `outrigger healthcheck`.
#[derive(Debug, Clone, Args)]
pub struct HealthcheckArgs {
    /// HTTP API port of the gateway to probe (the gateway's own flag and env).
    #[arg(
        long = "dapr-http-port",
        env = "DAPR_HTTP_PORT",
        default_value_t = 3500
    )]
    pub http_port: u16,
    /// Address to probe (the gateway's `--dapr-listen-address`, unless that is 0.0.0.0).
    #[arg(long = "address", default_value_t = IpAddr::V4(Ipv4Addr::LOCALHOST))]
    pub address: IpAddr,
    /// Longest the probe may take: connect, request and answer (e.g. `2s`, `500ms`).
    #[arg(long = "timeout", default_value = "2s", value_parser = humantime::parse_duration)]
    pub timeout: Duration,
}

// === impl HealthcheckArgs ===

impl HealthcheckArgs {
    /// Probe the gateway these flags name.
    ///
    /// # Errors
    /// As [`probe`].
    pub fn run(&self) -> Result<(), HealthcheckError> {
        probe(SocketAddr::new(self.address, self.http_port), self.timeout)
    }
}

/// Why the gateway is not healthy.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum HealthcheckError {
    /// No connection, or no complete answer in time.
    #[error("GET http://{addr}{HEALTHZ_PATH}: {source}")]
    Io {
        /// The gateway probed.
        addr: SocketAddr,
        /// The OS error (a timeout is `WouldBlock` or `TimedOut`).
        source: std::io::Error,
    },
    /// An answer that is not `2xx`.
    #[error("GET http://{addr}{HEALTHZ_PATH}: {status_line} {body}")]
    Unhealthy {
        /// The gateway probed.
        addr: SocketAddr,
        /// The answer's status line.
        status_line: String,
        /// The start of its body (the gateway says what it waits for).
        body: String,
    },
}

/// `GET /v1.0/healthz` on `addr`; `Ok` on a `2xx` answer within `timeout`.
///
/// # Errors
/// No connection, no answer within `timeout`, or a status other than `2xx`.
pub fn probe(addr: SocketAddr, timeout: Duration) -> Result<(), HealthcheckError> {
    let io = |source| HealthcheckError::Io { addr, source };
    let mut stream = TcpStream::connect_timeout(&addr, timeout).map_err(io)?;
    stream.set_read_timeout(Some(timeout)).map_err(io)?;
    stream.set_write_timeout(Some(timeout)).map_err(io)?;
    write!(
        stream,
        "GET {HEALTHZ_PATH} HTTP/1.1\r\nHost: {addr}\r\nUser-Agent: outrigger-healthcheck\r\nConnection: close\r\n\r\n"
    )
    .map_err(io)?;
    // The answer is small; 8 KiB is plenty and bounds a misbehaving peer.
    let mut answer = Vec::new();
    stream.take(8 * 1024).read_to_end(&mut answer).map_err(io)?;
    let text = String::from_utf8_lossy(&answer);
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let status_line = head.lines().next().unwrap_or_default().to_owned();
    let healthy = status_line
        .split_whitespace()
        .nth(1)
        .is_some_and(|code| code.len() == 3 && code.starts_with('2'));
    if healthy {
        Ok(())
    } else {
        Err(HealthcheckError::Unhealthy {
            addr,
            status_line: if status_line.is_empty() {
                "no HTTP answer".to_owned()
            } else {
                status_line
            },
            body: body.chars().take(300).collect(),
        })
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;
    use std::net::TcpListener;

    /// A one-shot server that reads the request and sends `answer`.
    fn answering(answer: &'static str) -> (SocketAddr, std::thread::JoinHandle<String>) {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let server = std::thread::spawn(move || {
            let (mut conn, _) = listener.accept().unwrap();
            let mut request = Vec::new();
            let mut buf = [0u8; 1024];
            while !request.ends_with(b"\r\n\r\n") {
                let n = conn.read(&mut buf).unwrap();
                if n == 0 {
                    break;
                }
                request.extend_from_slice(&buf[..n]);
            }
            conn.write_all(answer.as_bytes()).unwrap();
            String::from_utf8(request).unwrap()
        });
        (addr, server)
    }

    #[test]
    fn no_content_is_healthy() {
        let (addr, server) = answering("HTTP/1.1 204 No Content\r\n\r\n");
        probe(addr, Duration::from_secs(5)).unwrap();
        let request = server.join().unwrap();
        assert!(
            request.starts_with("GET /v1.0/healthz HTTP/1.1\r\n"),
            "{request}"
        );
    }

    #[test]
    fn an_error_answer_is_unhealthy_and_says_why() {
        let (addr, server) = answering(
            "HTTP/1.1 500 Internal Server Error\r\ncontent-length: 40\r\n\r\n{\"errorCode\":\"ERR_HEALTH_NOT_READY\"}",
        );
        let err = probe(addr, Duration::from_secs(5)).unwrap_err();
        server.join().unwrap();
        let text = err.to_string();
        assert!(text.contains("500"), "{text}");
        assert!(text.contains("ERR_HEALTH_NOT_READY"), "{text}");
    }

    #[test]
    fn nothing_listening_is_unhealthy() {
        let addr = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap();
        // The listener is dropped: the port refuses connections.
        let err = probe(addr, Duration::from_secs(5)).unwrap_err();
        assert!(matches!(err, HealthcheckError::Io { .. }), "{err}");
    }

    #[test]
    fn a_silent_server_times_out() {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let started = std::time::Instant::now();
        let err = probe(addr, Duration::from_millis(200)).unwrap_err();
        assert!(matches!(err, HealthcheckError::Io { .. }), "{err}");
        assert!(started.elapsed() < Duration::from_secs(5));
        drop(listener);
    }

    #[test]
    fn flags_default_to_the_gateways() {
        use clap::Parser;
        #[derive(Parser)]
        struct Cli {
            #[command(flatten)]
            args: HealthcheckArgs,
        }
        let cli = Cli::try_parse_from(["healthcheck", "--timeout", "500ms"]).unwrap();
        assert_eq!(cli.args.address, IpAddr::V4(Ipv4Addr::LOCALHOST));
        assert_eq!(cli.args.timeout, Duration::from_millis(500));
    }
}
