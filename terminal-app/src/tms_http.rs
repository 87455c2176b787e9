//! Bundles over HTTPS with mutual TLS: the terminal's conditional GET (`If-None-Match`,
//! `If-Modified-Since`) and `kassa tms serve`, a static file server for tests and small shops.
//!
//! Only what a static bundle needs of HTTP/1.1 (RFC 9110, 9112): one GET per connection,
//! `Content-Length` bodies, `ETag` and `Last-Modified` validators, 304 Not Modified. Any web
//! server, object store or CDN that serves files this way works; a chunked or unsized answer
//! is refused rather than guessed at. Every wait has a limit, every size a cap.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use ring::digest;
use rustls::pki_types::ServerName;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::config::HttpsUrl;
use crate::tms::MAX_BUNDLE_BYTES;

/// The most header bytes either side reads.
const MAX_HEAD: usize = 16 * 1024;

/// Why a fetch failed, with a stable reason code ([`FetchError::code`]).
#[derive(Debug, thiserror::Error)]
pub enum FetchError {
    /// TCP connect failed or timed out.
    #[error("cannot reach {0}")]
    Connect(String),
    /// The TLS handshake failed (untrusted server, refused client certificate...).
    #[error("TLS: {0}")]
    Tls(String),
    /// Nothing complete within the timeout.
    #[error("no complete answer within {0} s")]
    Timeout(u64),
    /// The server answered with another status.
    #[error("HTTP {0}")]
    Status(u16),
    /// The answer is not HTTP as this client reads it.
    #[error("bad answer: {0}")]
    Protocol(String),
    /// The body ended before its Content-Length.
    #[error("download truncated: {got} of {expected} bytes")]
    Truncated {
        /// Bytes received.
        got: usize,
        /// Bytes announced.
        expected: usize,
    },
}

impl FetchError {
    /// Stable reason code.
    pub fn code(&self) -> &'static str {
        match self {
            FetchError::Connect(_) => "tms_unreachable",
            FetchError::Tls(_) => "tms_tls",
            FetchError::Timeout(_) => "tms_timeout",
            FetchError::Status(_) => "tms_http_status",
            FetchError::Protocol(_) => "tms_protocol",
            FetchError::Truncated { .. } => "download_truncated",
        }
    }
}

/// What a conditional GET brought.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Fetched {
    /// 304: the bundle in force is current.
    NotModified,
    /// 200: a body and its validators.
    Body {
        /// The bytes.
        bytes: Vec<u8>,
        /// `ETag`, as sent.
        etag: Option<String>,
        /// `Last-Modified`, as sent.
        last_modified: Option<String>,
    },
}

/// The `Host` header's value: the port only when it is not 443.
fn host_header(url: &HttpsUrl) -> String {
    if url.port == 443 {
        url.host.clone()
    } else {
        format!("{}:{}", url.host, url.port)
    }
}

/// TCP to the URL's host and port, then TLS (the pinned CA, the terminal's certificate)
/// checking `server_name`.
async fn connect(
    url: &HttpsUrl,
    server_name: &str,
    tls: rustls::ClientConfig,
) -> Result<tokio_rustls::client::TlsStream<tokio::net::TcpStream>, FetchError> {
    let addr = format!("{}:{}", url.host, url.port);
    let tcp = tokio::net::TcpStream::connect(&addr)
        .await
        .map_err(|e| FetchError::Connect(format!("{addr}: {e}")))?;
    let name = ServerName::try_from(server_name.to_string())
        .map_err(|e| FetchError::Tls(format!("server name {server_name:?}: {e}")))?;
    tokio_rustls::TlsConnector::from(Arc::new(tls))
        .connect(name, tcp)
        .await
        .map_err(|e| FetchError::Tls(e.to_string()))
}

/// The request line and headers of a conditional GET.
pub fn request(url: &HttpsUrl, etag: Option<&str>, last_modified: Option<&str>) -> String {
    let mut r = format!(
        "GET {} HTTP/1.1\r\nHost: {}\r\nUser-Agent: kassa/{}\r\nAccept: */*\r\nConnection: close\r\n",
        url.path,
        host_header(url),
        env!("CARGO_PKG_VERSION")
    );
    if let Some(e) = etag {
        r.push_str(&format!("If-None-Match: {e}\r\n"));
    }
    if let Some(m) = last_modified {
        r.push_str(&format!("If-Modified-Since: {m}\r\n"));
    }
    r.push_str("\r\n");
    r
}

/// A parsed answer head: status and headers (names lower-cased).
#[derive(Debug)]
struct Head {
    status: u16,
    headers: Vec<(String, String)>,
}

impl Head {
    fn get(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }
}

/// Splits `buf` at the end of the head (`\r\n\r\n`), when it is there.
fn head_end(buf: &[u8]) -> Option<usize> {
    buf.windows(4).position(|w| w == b"\r\n\r\n").map(|i| i + 4)
}

fn parse_head(head: &[u8]) -> Result<Head, String> {
    let text = std::str::from_utf8(head).map_err(|_| "head is not UTF-8".to_string())?;
    let mut lines = text.split("\r\n");
    let status_line = lines.next().unwrap_or_default();
    let mut parts = status_line.splitn(3, ' ');
    let version = parts.next().unwrap_or_default();
    if !version.starts_with("HTTP/1.") {
        return Err(format!("status line {status_line:?}"));
    }
    let status = parts
        .next()
        .and_then(|s| s.parse::<u16>().ok())
        .ok_or_else(|| format!("status line {status_line:?}"))?;
    let mut headers = Vec::new();
    for line in lines.filter(|l| !l.is_empty()) {
        let (n, v) = line
            .split_once(':')
            .ok_or_else(|| format!("header line {line:?}"))?;
        headers.push((n.trim().to_ascii_lowercase(), v.trim().to_string()));
    }
    Ok(Head { status, headers })
}

/// Reads a whole answer from `stream` (the server closes after it) and interprets it.
pub fn read_answer(raw: &[u8]) -> Result<Fetched, FetchError> {
    let end = head_end(raw).ok_or_else(|| {
        if raw.is_empty() {
            FetchError::Protocol("the server closed without answering".into())
        } else {
            FetchError::Protocol("the head never ended".into())
        }
    })?;
    let head = parse_head(&raw[..end - 4]).map_err(FetchError::Protocol)?;
    let body = &raw[end..];
    match head.status {
        304 => Ok(Fetched::NotModified),
        200 => {
            if head
                .get("transfer-encoding")
                .is_some_and(|t| !t.eq_ignore_ascii_case("identity"))
            {
                return Err(FetchError::Protocol(
                    "chunked answers are not read: serve the bundle with a Content-Length".into(),
                ));
            }
            let expected: usize = head
                .get("content-length")
                .and_then(|v| v.parse().ok())
                .ok_or_else(|| FetchError::Protocol("no Content-Length".into()))?;
            if expected > MAX_BUNDLE_BYTES {
                return Err(FetchError::Protocol(format!(
                    "{expected} bytes is more than a bundle may have"
                )));
            }
            if body.len() < expected {
                return Err(FetchError::Truncated {
                    got: body.len(),
                    expected,
                });
            }
            Ok(Fetched::Body {
                bytes: body[..expected].to_vec(),
                etag: head.get("etag").map(str::to_string),
                last_modified: head.get("last-modified").map(str::to_string),
            })
        }
        s => Err(FetchError::Status(s)),
    }
}

/// One conditional GET of `url` over mutual TLS (`tls` holds the pinned CA and the
/// terminal's certificate), within `timeout`.
pub async fn fetch(
    url: &HttpsUrl,
    server_name: &str,
    tls: rustls::ClientConfig,
    etag: Option<&str>,
    last_modified: Option<&str>,
    timeout: Duration,
) -> Result<Fetched, FetchError> {
    let secs = timeout.as_secs();
    let work = async {
        let mut stream = connect(url, server_name, tls).await?;
        stream
            .write_all(request(url, etag, last_modified).as_bytes())
            .await
            .map_err(|e| FetchError::Tls(e.to_string()))?;
        let mut raw = Vec::new();
        let mut buf = [0u8; 8192];
        loop {
            match stream.read(&mut buf).await {
                Ok(0) => break,
                Ok(n) => {
                    raw.extend_from_slice(&buf[..n]);
                    if raw.len() > MAX_BUNDLE_BYTES + MAX_HEAD {
                        return Err(FetchError::Protocol("answer too large".into()));
                    }
                }
                // A peer that closes without close_notify: what arrived is judged by its
                // Content-Length below (a cut body is `download_truncated`).
                Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => break,
                Err(e) => {
                    if raw.is_empty() {
                        return Err(FetchError::Tls(e.to_string()));
                    }
                    break;
                }
            }
        }
        read_answer(&raw)
    };
    tokio::time::timeout(timeout, work)
        .await
        .map_err(|_| FetchError::Timeout(secs))?
}

/// Posts `body` (JSON) to `url` over mutual TLS: the heartbeat. Any 2xx is success.
pub async fn post(
    url: &HttpsUrl,
    server_name: &str,
    tls: rustls::ClientConfig,
    body: &[u8],
    timeout: Duration,
) -> Result<u16, FetchError> {
    let secs = timeout.as_secs();
    let work = async {
        let mut stream = connect(url, server_name, tls).await?;
        let head = format!(
            "POST {} HTTP/1.1\r\nHost: {}\r\nUser-Agent: kassa/{}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
            url.path,
            host_header(url),
            env!("CARGO_PKG_VERSION"),
            body.len()
        );
        stream
            .write_all(&[head.as_bytes(), body].concat())
            .await
            .map_err(|e| FetchError::Tls(e.to_string()))?;
        let mut raw = Vec::new();
        let mut buf = [0u8; 2048];
        while raw.len() <= MAX_HEAD {
            match stream.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => raw.extend_from_slice(&buf[..n]),
            }
        }
        let end = head_end(&raw)
            .ok_or_else(|| FetchError::Protocol("the server closed without answering".into()))?;
        let head = parse_head(&raw[..end - 4]).map_err(FetchError::Protocol)?;
        if (200..300).contains(&head.status) {
            Ok(head.status)
        } else {
            Err(FetchError::Status(head.status))
        }
    };
    tokio::time::timeout(timeout, work)
        .await
        .map_err(|_| FetchError::Timeout(secs))?
}

/// The time to the next poll: `poll_s` after a success; after `failures` failures in a row,
/// doubling from `poll_s` up to a day. Either way spread by up to ±20% (`unit` is a random
/// number in 0..1) so a fleet that booted together does not poll together.
pub fn next_poll(poll_s: u64, failures: u32, unit: f64) -> Duration {
    let base = poll_s.saturating_mul(1u64 << failures.min(16)).min(86_400) as f64;
    let spread = 0.8 + 0.4 * unit.clamp(0.0, 1.0);
    Duration::from_secs_f64((base * spread).max(1.0))
}

/// The strong validator of a file's bytes.
pub fn etag_of(bytes: &[u8]) -> String {
    let d = digest::digest(&digest::SHA256, bytes);
    format!(
        "\"{}\"",
        emv::util::hex(&d.as_ref()[..16]).to_ascii_lowercase()
    )
}

/// An HTTP date (RFC 9110 §5.6.7, IMF-fixdate).
pub fn http_date(t: chrono::DateTime<chrono::Utc>) -> String {
    t.format("%a, %d %b %Y %H:%M:%S GMT").to_string()
}

fn parse_http_date(s: &str) -> Option<chrono::DateTime<chrono::Utc>> {
    chrono::NaiveDateTime::parse_from_str(s, "%a, %d %b %Y %H:%M:%S GMT")
        .ok()
        .map(|n| n.and_utc())
}

/// What the server did, for its report.
#[derive(Debug, Default)]
pub struct ServeStats {
    /// Requests answered.
    pub requests: AtomicU64,
    /// 200 answers.
    pub full: AtomicU64,
    /// 304 answers.
    pub not_modified: AtomicU64,
    /// Body bytes sent.
    pub body_bytes: AtomicU64,
    /// Connections refused in the handshake (no or unknown client certificate...).
    pub refused: AtomicU64,
}

/// The answer to one request head for files under `root`.
pub fn answer(root: &Path, head: &[u8]) -> (Vec<u8>, u16, usize) {
    let respond = |status: u16, reason: &str, extra: &str, body: &[u8], send_body: bool| {
        let mut r = format!(
            "HTTP/1.1 {status} {reason}\r\nServer: kassa-tms\r\nConnection: close\r\nContent-Length: {}\r\n{extra}\r\n",
            body.len()
        )
        .into_bytes();
        if send_body {
            r.extend_from_slice(body);
        }
        let n = if send_body { body.len() } else { 0 };
        (r, status, n)
    };
    let Ok(text) = std::str::from_utf8(head) else {
        return respond(400, "Bad Request", "", b"", false);
    };
    let mut lines = text.split("\r\n");
    let req = lines.next().unwrap_or_default();
    let mut parts = req.split(' ');
    let (method, target) = (parts.next().unwrap_or(""), parts.next().unwrap_or(""));
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(n, v)| (n.trim().to_ascii_lowercase(), v.trim().to_string()))
        .collect();
    let header = |n: &str| {
        headers
            .iter()
            .find(|(k, _)| k == n)
            .map(|(_, v)| v.as_str())
    };
    if method != "GET" && method != "HEAD" {
        return respond(
            405,
            "Method Not Allowed",
            "Allow: GET, HEAD\r\n",
            b"",
            false,
        );
    }
    let path = target.split('?').next().unwrap_or("");
    // Heartbeats are kept, not served: one terminal's health is not another's to read.
    let safe = path.starts_with('/')
        && !path.starts_with("/health/")
        && !path.contains('%')
        && !path.contains('\\')
        && path
            .split('/')
            .all(|seg| seg != ".." && seg != "." && !seg.starts_with('.') || seg.is_empty());
    if !safe {
        return respond(404, "Not Found", "", b"", false);
    }
    let file: PathBuf = root.join(path.trim_start_matches('/'));
    let (Ok(meta), Ok(bytes)) = (std::fs::metadata(&file), std::fs::read(&file)) else {
        return respond(404, "Not Found", "", b"", false);
    };
    if !meta.is_file() {
        return respond(404, "Not Found", "", b"", false);
    }
    let etag = etag_of(&bytes);
    let modified: chrono::DateTime<chrono::Utc> = meta
        .modified()
        .map(chrono::DateTime::<chrono::Utc>::from)
        .unwrap_or_else(|_| chrono::Utc::now());
    let validators = format!(
        "ETag: {etag}\r\nLast-Modified: {}\r\nCache-Control: no-cache\r\n",
        http_date(modified)
    );
    // RFC 9110 §13.1.2: If-None-Match wins over If-Modified-Since.
    let fresh = match header("if-none-match") {
        Some(tags) => tags.split(',').any(|t| t.trim() == etag || t.trim() == "*"),
        None => header("if-modified-since")
            .and_then(parse_http_date)
            .is_some_and(|since| modified.timestamp() <= since.timestamp()),
    };
    if fresh {
        let mut r = format!(
            "HTTP/1.1 304 Not Modified\r\nServer: kassa-tms\r\nConnection: close\r\n{validators}\r\n"
        )
        .into_bytes();
        r.shrink_to_fit();
        return (r, 304, 0);
    }
    respond(
        200,
        "OK",
        &format!("{validators}Content-Type: application/octet-stream\r\n"),
        &bytes,
        method == "GET",
    )
}

/// Connections `kassa tms serve` handles at once.
const MAX_CONNECTIONS: usize = 256;

/// The largest heartbeat `kassa tms serve` keeps.
const MAX_HEARTBEAT: usize = 64 * 1024;

/// A heartbeat for `kassa tms serve`: `POST /health/NAME` with a JSON body is kept as
/// `root/health/NAME.json` (NAME: 1-32 letters, digits, `-` or `_`), the newest replacing the
/// last. Returns the status code.
pub fn store_heartbeat(root: &Path, target: &str, body: &[u8]) -> u16 {
    let Some(name) = target.strip_prefix("/health/") else {
        return 404;
    };
    if name.is_empty()
        || name.len() > 32
        || !name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
    {
        return 404;
    }
    if body.len() > MAX_HEARTBEAT || serde_json::from_slice::<serde_json::Value>(body).is_err() {
        return 400;
    }
    let dir = root.join("health");
    let tmp = dir.join(format!(".{name}.tmp"));
    let ok = std::fs::create_dir_all(&dir).is_ok()
        && std::fs::write(&tmp, body).is_ok()
        && std::fs::rename(&tmp, dir.join(format!("{name}.json"))).is_ok();
    if ok { 204 } else { 500 }
}

/// A request header's value (name in lower case).
fn request_header(head: &[u8], name: &str) -> Option<String> {
    std::str::from_utf8(head)
        .ok()?
        .split("\r\n")
        .skip(1)
        .filter_map(|l| l.split_once(':'))
        .find(|(n, _)| n.trim().eq_ignore_ascii_case(name))
        .map(|(_, v)| v.trim().to_string())
}

/// Serves one connection: reads the request head (within 10 s), answers, closes.
async fn serve_one(
    tls: tokio_rustls::TlsAcceptor,
    tcp: tokio::net::TcpStream,
    root: Arc<PathBuf>,
    stats: Arc<ServeStats>,
) {
    let peer = tcp.peer_addr().map(|a| a.to_string()).unwrap_or_default();
    let mut stream = match tokio::time::timeout(Duration::from_secs(10), tls.accept(tcp)).await {
        Ok(Ok(s)) => s,
        Ok(Err(e)) => {
            stats.refused.fetch_add(1, Ordering::Relaxed);
            tracing::info!(%peer, error = %e, "TLS handshake refused");
            return;
        }
        Err(_) => return,
    };
    let mut head = Vec::new();
    let mut buf = [0u8; 2048];
    let got = tokio::time::timeout(Duration::from_secs(10), async {
        loop {
            match stream.read(&mut buf).await {
                Ok(0) | Err(_) => return false,
                Ok(n) => {
                    head.extend_from_slice(&buf[..n]);
                    if head_end(&head).is_some() {
                        return true;
                    }
                    if head.len() > MAX_HEAD {
                        return false;
                    }
                }
            }
        }
    })
    .await;
    if !matches!(got, Ok(true)) {
        return;
    }
    let end = head_end(&head).unwrap_or(head.len());
    let root = root.clone();
    let req = head[..end].to_vec();
    let first = String::from_utf8_lossy(&req[..req.iter().position(|b| *b == b'\r').unwrap_or(0)])
        .into_owned();
    let post_target = first
        .strip_prefix("POST ")
        .and_then(|r| r.split(' ').next())
        .map(str::to_string);
    let answered = match post_target {
        // A heartbeat: Content-Length bytes of body after the head.
        Some(target) => {
            let length =
                request_header(&req, "content-length").and_then(|v| v.parse::<usize>().ok());
            let mut body = head[end..].to_vec();
            let status = match length {
                Some(n) if n <= MAX_HEARTBEAT => {
                    let complete = tokio::time::timeout(Duration::from_secs(10), async {
                        while body.len() < n {
                            match stream.read(&mut buf).await {
                                Ok(0) | Err(_) => return false,
                                Ok(k) => body.extend_from_slice(&buf[..k]),
                            }
                        }
                        true
                    })
                    .await;
                    if matches!(complete, Ok(true)) {
                        body.truncate(n);
                        tokio::task::spawn_blocking(move || store_heartbeat(&root, &target, &body))
                            .await
                            .unwrap_or(500)
                    } else {
                        400
                    }
                }
                Some(_) => 413,
                None => 411,
            };
            let reason = match status {
                204 => "No Content",
                400 => "Bad Request",
                404 => "Not Found",
                411 => "Length Required",
                413 => "Content Too Large",
                _ => "Internal Server Error",
            };
            Ok((
                format!(
                    "HTTP/1.1 {status} {reason}\r\nServer: kassa-tms\r\nConnection: close\r\nContent-Length: 0\r\n\r\n"
                )
                .into_bytes(),
                status,
                0,
            ))
        }
        None => tokio::task::spawn_blocking(move || answer(&root, &req)).await,
    };
    let Ok((bytes, status, body)) = answered else {
        return;
    };
    stats.requests.fetch_add(1, Ordering::Relaxed);
    match status {
        200 => stats.full.fetch_add(1, Ordering::Relaxed),
        304 => stats.not_modified.fetch_add(1, Ordering::Relaxed),
        _ => 0,
    };
    stats.body_bytes.fetch_add(body as u64, Ordering::Relaxed);
    tracing::info!(%peer, request = %first, status, body, "tms serve");
    // A client that does not read its answer is dropped after 30 s.
    let _ = tokio::time::timeout(Duration::from_secs(30), async {
        let _ = stream.write_all(&bytes).await;
        let _ = stream.shutdown().await;
    })
    .await;
}

/// Serves files under `root` on `listener` with `tls` (which requires client certificates)
/// until `stop` fires.
pub async fn serve(
    listener: tokio::net::TcpListener,
    tls: rustls::ServerConfig,
    root: PathBuf,
    stats: Arc<ServeStats>,
    stop: impl std::future::Future<Output = ()>,
) {
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(tls));
    let root = Arc::new(root);
    // At most this many connections at once; more are closed at once (a client retries).
    let slots = Arc::new(tokio::sync::Semaphore::new(MAX_CONNECTIONS));
    tokio::pin!(stop);
    loop {
        tokio::select! {
            _ = &mut stop => return,
            r = listener.accept() => {
                if let Ok((tcp, _)) = r {
                    let Ok(permit) = slots.clone().try_acquire_owned() else {
                        stats.refused.fetch_add(1, Ordering::Relaxed);
                        continue;
                    };
                    let (acceptor, root, stats) = (acceptor.clone(), root.clone(), stats.clone());
                    tokio::spawn(async move {
                        serve_one(acceptor, tcp, root, stats).await;
                        drop(permit);
                    });
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_conditional_get_names_its_validators() {
        let url = HttpsUrl::parse("https://tms.example:8443/b/KASSA001.bundle").unwrap();
        assert_eq!(
            request(&url, Some("\"abc\""), Some("Mon, 30 Nov 2026 10:00:00 GMT")),
            format!(
                "GET /b/KASSA001.bundle HTTP/1.1\r\nHost: tms.example:8443\r\nUser-Agent: kassa/{}\r\n\
                 Accept: */*\r\nConnection: close\r\nIf-None-Match: \"abc\"\r\n\
                 If-Modified-Since: Mon, 30 Nov 2026 10:00:00 GMT\r\n\r\n",
                env!("CARGO_PKG_VERSION")
            )
        );
    }

    #[test]
    fn answers_are_read_strictly() {
        let ok = b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\nETag: \"x\"\r\n\r\nabc";
        assert_eq!(
            read_answer(ok).unwrap(),
            Fetched::Body {
                bytes: b"abc".to_vec(),
                etag: Some("\"x\"".into()),
                last_modified: None
            }
        );
        assert_eq!(
            read_answer(b"HTTP/1.1 304 Not Modified\r\nETag: \"x\"\r\n\r\n").unwrap(),
            Fetched::NotModified
        );
        let cut = b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nabc";
        assert_eq!(read_answer(cut).unwrap_err().code(), "download_truncated");
        let chunked = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n";
        assert_eq!(read_answer(chunked).unwrap_err().code(), "tms_protocol");
        assert_eq!(
            read_answer(b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n")
                .unwrap_err()
                .to_string(),
            "HTTP 404"
        );
        assert_eq!(read_answer(b"").unwrap_err().code(), "tms_protocol");
        assert_eq!(
            read_answer(b"SSH-2.0-x\r\n\r\n").unwrap_err().code(),
            "tms_protocol"
        );
    }

    #[test]
    fn the_server_answers_304_to_its_own_validators_and_stays_in_its_folder() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("a.bundle"), b"bundle bytes").unwrap();
        std::fs::write(dir.path().join(".hidden"), b"no").unwrap();
        let get = |extra: &str| {
            let (r, status, body) = answer(
                dir.path(),
                format!("GET /a.bundle HTTP/1.1\r\nHost: x\r\n{extra}\r\n").as_bytes(),
            );
            (String::from_utf8(r).unwrap(), status, body)
        };
        let (r, status, body) = get("");
        assert_eq!((status, body), (200, 12));
        assert!(r.ends_with("\r\n\r\nbundle bytes"), "{r}");
        let etag = etag_of(b"bundle bytes");
        assert!(r.contains(&format!("ETag: {etag}\r\n")), "{r}");
        let modified = r
            .lines()
            .find_map(|l| l.strip_prefix("Last-Modified: "))
            .unwrap()
            .to_string();
        assert_eq!(get(&format!("If-None-Match: {etag}\r\n")).1, 304);
        assert_eq!(get("If-None-Match: \"other\"\r\n").1, 200);
        assert_eq!(get(&format!("If-Modified-Since: {modified}\r\n")).1, 304);
        assert_eq!(
            get("If-Modified-Since: Thu, 01 Jan 1970 00:00:00 GMT\r\n").1,
            200
        );
        std::fs::create_dir_all(dir.path().join("health")).unwrap();
        std::fs::write(dir.path().join("health/KASSA001.json"), b"{}").unwrap();
        for bad in [
            "/../etc/passwd",
            "/.hidden",
            "/%2e%2e/x",
            "/nothing",
            "/health/KASSA001.json",
        ] {
            let (_, status, _) =
                answer(dir.path(), format!("GET {bad} HTTP/1.1\r\n\r\n").as_bytes());
            assert_eq!(status, 404, "{bad}");
        }
        let (_, status, _) = answer(dir.path(), b"POST /a.bundle HTTP/1.1\r\n\r\n");
        assert_eq!(status, 405);
    }

    #[test]
    fn heartbeats_are_kept_by_name_and_checked() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(
            store_heartbeat(dir.path(), "/health/KASSA001", b"{\"a\":1}"),
            204
        );
        assert_eq!(
            std::fs::read(dir.path().join("health/KASSA001.json")).unwrap(),
            b"{\"a\":1}"
        );
        assert_eq!(
            store_heartbeat(dir.path(), "/health/KASSA001", b"{\"a\":2}"),
            204
        );
        assert_eq!(
            std::fs::read(dir.path().join("health/KASSA001.json")).unwrap(),
            b"{\"a\":2}"
        );
        for bad in [
            "/health/../x",
            "/health/",
            "/other/x",
            "/health/a.b",
            &format!("/health/{}", "a".repeat(33)),
        ] {
            assert_eq!(store_heartbeat(dir.path(), bad, b"{}"), 404, "{bad}");
        }
        assert_eq!(store_heartbeat(dir.path(), "/health/x", b"not json"), 400);
        assert_eq!(
            store_heartbeat(dir.path(), "/health/x", &vec![b' '; MAX_HEARTBEAT + 1]),
            400
        );
    }

    #[test]
    fn polls_spread_and_back_off() {
        assert_eq!(next_poll(900, 0, 0.5), Duration::from_secs(900));
        assert_eq!(next_poll(900, 0, 0.0), Duration::from_secs(720));
        assert_eq!(next_poll(900, 0, 1.0), Duration::from_secs(1080));
        assert_eq!(next_poll(900, 3, 0.5), Duration::from_secs(7200));
        assert_eq!(next_poll(900, 30, 0.5), Duration::from_secs(86_400));
    }
}
