//! The acquirer link: ISO 8583 frames over mutual TLS (tokio-rustls).
//!
//! - TLS 1.3 only unless TLS 1.2 is explicitly allowed; the acquirer CA is pinned (no system
//!   roots); the terminal presents its client certificate.
//! - Frames are a 2-byte big-endian length followed by the message.
//! - One connection is kept and reused; any failure drops it, and the next exchange reconnects.
//! - Every failure is a [`LinkError`] with a reason code and whether the request had reached
//!   the host, which decides if the transaction must be reversed.

use std::fmt;
use std::sync::Arc;
use std::time::{Duration, Instant};

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use rustls::{AlertDescription, CertificateError, ClientConfig, RootCertStore};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;
use tokio_rustls::client::TlsStream;
use zeroize::Zeroizing;

use crate::iso8583::{Dialect, Message};

/// Largest frame accepted in either direction.
pub const MAX_FRAME: usize = 8192;

/// Reads one length-prefixed frame.
pub async fn read_frame<R: AsyncRead + Unpin>(r: &mut R) -> std::io::Result<Vec<u8>> {
    let mut len = [0u8; 2];
    r.read_exact(&mut len).await?;
    let len = u16::from_be_bytes(len) as usize;
    if len == 0 || len > MAX_FRAME {
        return Err(std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            format!("frame length {len} outside 1-{MAX_FRAME}"),
        ));
    }
    let mut buf = vec![0u8; len];
    r.read_exact(&mut buf).await?;
    Ok(buf)
}

/// Writes one length-prefixed frame and flushes.
pub async fn write_frame<W: AsyncWrite + Unpin>(w: &mut W, msg: &[u8]) -> std::io::Result<()> {
    if msg.is_empty() || msg.len() > MAX_FRAME {
        return Err(std::io::Error::new(
            std::io::ErrorKind::InvalidInput,
            format!("frame length {} outside 1-{MAX_FRAME}", msg.len()),
        ));
    }
    let mut out = Vec::with_capacity(msg.len() + 2);
    out.extend_from_slice(&(msg.len() as u16).to_be_bytes());
    out.extend_from_slice(msg);
    w.write_all(&out).await?;
    w.flush().await
}

/// Reason codes of link failures.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum LinkErrorKind {
    /// Certificates or keys could not be loaded.
    Config,
    /// The host refused the TCP connection (nothing listening).
    Refused,
    /// No TCP connection or TLS handshake within the connect timeout.
    ConnectTimeout,
    /// The host's certificate did not verify against the pinned acquirer CA.
    HostCertificateRejected,
    /// The host refused the terminal's client certificate.
    ClientCertificateRejected,
    /// Another TLS failure.
    Tls,
    /// No matching response within the response timeout.
    ResponseTimeout,
    /// The host closed the connection.
    Closed,
    /// The connection was reset or another I/O error happened.
    Io,
    /// A frame with an impossible length.
    Framing,
    /// The response could not be decoded in the dialect.
    Decode,
    /// Recent connection attempts failed; the link waits before trying again.
    Backoff,
}

impl LinkErrorKind {
    /// Stable reason code for logs, JSON and the journal.
    pub fn code(self) -> &'static str {
        match self {
            LinkErrorKind::Config => "config",
            LinkErrorKind::Refused => "refused",
            LinkErrorKind::ConnectTimeout => "connect_timeout",
            LinkErrorKind::HostCertificateRejected => "host_certificate_rejected",
            LinkErrorKind::ClientCertificateRejected => "client_certificate_rejected",
            LinkErrorKind::Tls => "tls",
            LinkErrorKind::ResponseTimeout => "response_timeout",
            LinkErrorKind::Closed => "closed",
            LinkErrorKind::Io => "io",
            LinkErrorKind::Framing => "framing",
            LinkErrorKind::Decode => "decode",
            LinkErrorKind::Backoff => "backoff",
        }
    }
}

/// A link failure.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct LinkError {
    /// The reason code.
    pub kind: LinkErrorKind,
    /// True if the request may have reached the host application: the transaction must then be
    /// reversed. False when the failure happened before the request could be processed
    /// (connection refused, handshake failed, client certificate refused).
    pub request_sent: bool,
    /// Human-readable detail (never card data).
    pub detail: String,
}

impl fmt::Display for LinkError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "acquirer link: {} ({})", self.kind.code(), self.detail)
    }
}

impl LinkError {
    fn new(kind: LinkErrorKind, request_sent: bool, detail: impl Into<String>) -> Self {
        LinkError {
            kind,
            request_sent,
            detail: detail.into(),
        }
    }
}

/// Where and how to reach the acquirer.
#[derive(Debug, Clone)]
pub struct LinkConfig {
    /// `host:port`.
    pub address: String,
    /// The name the host's certificate must carry (DNS name or IP address).
    pub server_name: String,
    /// Limit for TCP connect plus TLS handshake.
    pub connect_timeout: Duration,
    /// Limit for the response after the request is sent.
    pub response_timeout: Duration,
    /// The ISO 8583 dialect.
    pub dialect: &'static Dialect,
    /// Allow TLS 1.2 as well as 1.3.
    pub allow_tls12: bool,
}

/// The terminal's TLS credentials, as PEM.
#[derive(Clone)]
pub struct Credentials {
    /// The acquirer CA certificate(s) the host must chain to.
    pub ca_pem: Vec<u8>,
    /// The terminal's certificate chain.
    pub cert_pem: Vec<u8>,
    /// The terminal's private key (zeroized on drop).
    pub key_pem: Zeroizing<Vec<u8>>,
}

impl fmt::Debug for Credentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Credentials(<ca, certificate, key hidden>)")
    }
}

/// A successful exchange.
#[derive(Debug, Clone)]
pub struct Exchange {
    /// The matching response.
    pub response: Message,
    /// Negotiated protocol, e.g. `TLSv1.3`.
    pub tls_version: String,
    /// Time from starting to send until the response was decoded.
    pub round_trip: Duration,
    /// True if this exchange opened a new connection.
    pub new_connection: bool,
}

/// Builds the client TLS configuration: pinned CA, client certificate, TLS 1.3 (and 1.2 when
/// allowed), the `ring` provider.
pub fn client_config(creds: &Credentials, allow_tls12: bool) -> Result<ClientConfig, LinkError> {
    let cfg_err = |what: &str, e: &dyn fmt::Display| {
        LinkError::new(LinkErrorKind::Config, false, format!("{what}: {e}"))
    };
    let mut roots = RootCertStore::empty();
    for cert in CertificateDer::pem_slice_iter(&creds.ca_pem) {
        let cert = cert.map_err(|e| cfg_err("acquirer CA", &e))?;
        roots.add(cert).map_err(|e| cfg_err("acquirer CA", &e))?;
    }
    if roots.is_empty() {
        return Err(cfg_err("acquirer CA", &"no certificate in PEM"));
    }
    let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(&creds.cert_pem)
        .collect::<Result<_, _>>()
        .map_err(|e| cfg_err("terminal certificate", &e))?;
    if chain.is_empty() {
        return Err(cfg_err("terminal certificate", &"no certificate in PEM"));
    }
    let key =
        PrivateKeyDer::from_pem_slice(&creds.key_pem).map_err(|e| cfg_err("terminal key", &e))?;
    let versions: &[&rustls::SupportedProtocolVersion] = if allow_tls12 {
        &[&rustls::version::TLS13, &rustls::version::TLS12]
    } else {
        &[&rustls::version::TLS13]
    };
    ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
        .with_protocol_versions(versions)
        .map_err(|e| cfg_err("TLS versions", &e))?
        .with_root_certificates(roots)
        .with_client_auth_cert(chain, key)
        .map_err(|e| cfg_err("terminal certificate/key", &e))
}

/// Classifies an I/O error from tokio-rustls or the socket.
fn classify(e: &std::io::Error, request_sent: bool, during: &str) -> LinkError {
    use std::io::ErrorKind as K;
    if let Some(tls) = e.get_ref().and_then(|i| i.downcast_ref::<rustls::Error>()) {
        let kind = match tls {
            rustls::Error::InvalidCertificate(ce) => {
                let detail = match ce {
                    CertificateError::UnknownIssuer => {
                        "host certificate not issued by the acquirer CA".to_string()
                    }
                    CertificateError::NotValidForName
                    | CertificateError::NotValidForNameContext { .. } => {
                        "host certificate not valid for the configured server name".to_string()
                    }
                    CertificateError::Expired | CertificateError::ExpiredContext { .. } => {
                        "host certificate expired".to_string()
                    }
                    other => format!("host certificate rejected: {other:?}"),
                };
                return LinkError::new(LinkErrorKind::HostCertificateRejected, false, detail);
            }
            rustls::Error::AlertReceived(
                AlertDescription::BadCertificate
                | AlertDescription::UnknownCA
                | AlertDescription::CertificateRequired
                | AlertDescription::CertificateUnknown
                | AlertDescription::CertificateRevoked
                | AlertDescription::CertificateExpired
                | AlertDescription::AccessDenied
                | AlertDescription::UnsupportedCertificate,
            ) => {
                // In TLS 1.3 the host judges the client certificate after the client's
                // handshake completes; its alert arrives on the first read. The host refused the
                // handshake, so it never processed the request.
                return LinkError::new(
                    LinkErrorKind::ClientCertificateRejected,
                    false,
                    format!("host refused the terminal certificate ({tls})"),
                );
            }
            _ => LinkErrorKind::Tls,
        };
        return LinkError::new(kind, request_sent, format!("{during}: {tls}"));
    }
    let kind = match e.kind() {
        K::ConnectionRefused => LinkErrorKind::Refused,
        K::UnexpectedEof => LinkErrorKind::Closed,
        K::InvalidData => LinkErrorKind::Framing,
        _ => LinkErrorKind::Io,
    };
    LinkError::new(kind, request_sent, format!("{during}: {e}"))
}

/// A reusable mTLS connection to the acquirer.
pub struct Link {
    cfg: LinkConfig,
    connector: TlsConnector,
    conn: Option<TlsStream<TcpStream>>,
    /// Consecutive failed connection attempts.
    failures: u32,
    /// No new attempt before this instant.
    retry_at: Option<tokio::time::Instant>,
}

/// First wait after a failed connection attempt; it doubles per failure up to
/// [`MAX_BACKOFF`].
pub const FIRST_BACKOFF: Duration = Duration::from_millis(250);
/// Longest wait between connection attempts.
pub const MAX_BACKOFF: Duration = Duration::from_secs(30);

impl fmt::Debug for Link {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Link")
            .field("address", &self.cfg.address)
            .field("connected", &self.conn.is_some())
            .finish()
    }
}

impl Link {
    /// A link that connects on first use.
    pub fn new(cfg: LinkConfig, creds: &Credentials) -> Result<Self, LinkError> {
        let tls = client_config(creds, cfg.allow_tls12)?;
        Ok(Self::with_tls(cfg, Arc::new(tls)))
    }

    /// A link sharing a TLS configuration (and so its session cache: a new connection resumes
    /// the TLS 1.3 session of an earlier one).
    pub fn with_tls(cfg: LinkConfig, tls: Arc<ClientConfig>) -> Self {
        Link {
            cfg,
            connector: TlsConnector::from(tls),
            conn: None,
            failures: 0,
            retry_at: None,
        }
    }

    /// The configuration.
    pub fn config(&self) -> &LinkConfig {
        &self.cfg
    }

    /// True while a connection is open.
    pub fn is_connected(&self) -> bool {
        self.conn.is_some()
    }

    async fn connect(&mut self) -> Result<(), LinkError> {
        // Back-off: after a failure, no new attempt until the wait is over (doubling, capped),
        // so a dead host is not hammered and callers learn at once.
        if let Some(at) = self.retry_at {
            let now = tokio::time::Instant::now();
            if now < at {
                return Err(LinkError::new(
                    LinkErrorKind::Backoff,
                    false,
                    format!(
                        "{} failed connection attempts; next in {} ms",
                        self.failures,
                        (at - now).as_millis()
                    ),
                ));
            }
        }
        let result = self.connect_once().await;
        match &result {
            Ok(()) => {
                self.failures = 0;
                self.retry_at = None;
            }
            Err(_) => {
                self.failures = self.failures.saturating_add(1);
                let wait = FIRST_BACKOFF
                    .saturating_mul(1u32 << (self.failures - 1).min(16))
                    .min(MAX_BACKOFF);
                self.retry_at = Some(tokio::time::Instant::now() + wait);
            }
        }
        result
    }

    async fn connect_once(&mut self) -> Result<(), LinkError> {
        let server_name = ServerName::try_from(self.cfg.server_name.clone()).map_err(|e| {
            LinkError::new(LinkErrorKind::Config, false, format!("server name: {e}"))
        })?;
        let addr = self.cfg.address.clone();
        let connector = self.connector.clone();
        let attempt = async move {
            let tcp = TcpStream::connect(&addr)
                .await
                .map_err(|e| classify(&e, false, "connect"))?;
            tcp.set_nodelay(true)
                .map_err(|e| classify(&e, false, "TCP_NODELAY"))?;
            connector
                .connect(server_name, tcp)
                .await
                .map_err(|e| classify(&e, false, "TLS handshake"))
        };
        match tokio::time::timeout(self.cfg.connect_timeout, attempt).await {
            Ok(Ok(stream)) => {
                self.conn = Some(stream);
                Ok(())
            }
            Ok(Err(e)) => Err(e),
            Err(_) => Err(LinkError::new(
                LinkErrorKind::ConnectTimeout,
                false,
                format!(
                    "no connection to {} within {} ms",
                    self.cfg.address,
                    self.cfg.connect_timeout.as_millis()
                ),
            )),
        }
    }

    /// Sends `request` and waits for the response with the same STAN (field 11) and MTI + 10.
    /// Responses that do not match (a late answer to an earlier request) are discarded.
    pub async fn exchange(&mut self, request: &Message) -> Result<Exchange, LinkError> {
        let result = self.exchange_inner(request).await;
        if result.is_err() {
            self.conn = None;
        }
        result
    }

    async fn exchange_inner(&mut self, request: &Message) -> Result<Exchange, LinkError> {
        let bytes = request
            .encode(self.cfg.dialect)
            .map_err(|e| LinkError::new(LinkErrorKind::Decode, false, format!("request: {e}")))?;
        let new_connection = self.conn.is_none();
        if new_connection {
            self.connect().await?;
        }
        let started = Instant::now();
        let conn = self.conn.as_mut().expect("connected above");
        let tls_version = conn
            .get_ref()
            .1
            .protocol_version()
            .map(|v| match v {
                rustls::ProtocolVersion::TLSv1_3 => "TLSv1.3".to_string(),
                rustls::ProtocolVersion::TLSv1_2 => "TLSv1.2".to_string(),
                other => format!("{other:?}"),
            })
            .unwrap_or_default();
        // Once write_frame starts, the host may have the request: from here on every failure
        // counts as "sent" (except a refused client certificate, see `classify`).
        let deadline = tokio::time::Instant::now() + self.cfg.response_timeout;
        let timed_out = |what: &str| {
            LinkError::new(
                LinkErrorKind::ResponseTimeout,
                true,
                format!("{what} within {} ms", self.cfg.response_timeout.as_millis()),
            )
        };
        match tokio::time::timeout_at(deadline, write_frame(conn, &bytes)).await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => return Err(classify(&e, true, "send")),
            Err(_) => return Err(timed_out("request not sent")),
        }
        let want_mti = request.mti + 10;
        let stan = request.get(11).map(<[u8]>::to_vec);
        let tid = request.get(41).map(<[u8]>::to_vec);
        loop {
            let frame = match tokio::time::timeout_at(deadline, read_frame(conn)).await {
                Ok(Ok(f)) => f,
                Ok(Err(e)) => return Err(classify(&e, true, "receive")),
                Err(_) => return Err(timed_out("no response")),
            };
            let response = Message::decode(&frame, self.cfg.dialect)
                .map_err(|e| LinkError::new(LinkErrorKind::Decode, true, e.to_string()))?;
            let matches = response.mti == want_mti
                && response.get(11).map(<[u8]>::to_vec) == stan
                && (tid.is_none()
                    || response.get(41).is_none()
                    || response.get(41).map(<[u8]>::to_vec) == tid);
            if matches {
                return Ok(Exchange {
                    response,
                    tls_version,
                    round_trip: started.elapsed(),
                    new_connection,
                });
            }
            tracing::warn!(
                mti = response.mti_str(),
                stan = response.get_str(11).unwrap_or_default(),
                "discarding a response that does not match the request"
            );
        }
    }

    /// Closes the connection (TLS close_notify) if one is open.
    pub async fn close(&mut self) {
        if let Some(mut c) = self.conn.take() {
            let _ = tokio::time::timeout(Duration::from_millis(500), c.shutdown()).await;
        }
    }
}
