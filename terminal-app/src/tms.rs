//! Terminal management: signed configuration bundles (docs/FLEET.md).
//!
//! A bundle is a static file any HTTPS host can serve: a JSON envelope holding a TOML payload
//! and Ed25519 signatures over `kassa-bundle-v1\n` followed by the payload's bytes.
//!
//! ```json
//! {"kassa_bundle": 1, "payload": "[bundle]\nversion = 12\n...", "signatures": [
//!   {"key_id": "ops-2026", "signature": "<128 hex digits>"}]}
//! ```
//!
//! The payload has a `[bundle]` table (`version`, a positive integer that only goes up;
//! `created`; `description`) and any of the sections a fleet manages: `[terminal]`, `[[aids]]`,
//! `[[capks]]` (each with its `checksum`), `[offline]`, `[ui]`, `[qr]`, and `[[signing_keys]]`,
//! the keys that sign the bundles after this one (key rotation). The terminal's own sections
//! (`[acquirer]`, `[reader]`, `[printer]`, `[indicators]`, `[operator]`, `[update]`, `[tms]`)
//! and keys (`terminal_id`, `merchant_id`, the QR network account, the scanner) are refused:
//! a bundle cannot redirect the terminal or its money to another host or account, set the
//! supervisor PIN, or change whom it trusts except through `signing_keys`.
//!
//! Applying a bundle: the signature must verify under a trusted key that has not expired (the
//! local `[[tms.keys]]`, or the `signing_keys` of the bundle in force), the version must be
//! above the one in force (no rollback), and the local `kassa.toml` with the bundle's tables
//! merged over it must pass every configuration check. Only then is the bundle written as
//! `<data>/tms/bundle-<version>.bundle`, and then `<data>/tms/state.json`, which names it, is
//! replaced: the commit (each written to a temporary file, synced and renamed; one apply at a
//! time under `apply.lock`);
//! anything else leaves the configuration in force as it was, with the reason logged and kept
//! in the state.

use std::path::{Path, PathBuf};

use ring::signature::{ED25519, Ed25519KeyPair, KeyPair, UnparsedPublicKey};
use serde::{Deserialize, Serialize};
use zeroize::Zeroizing;

use crate::config::{Config, TmsKeySection, TrustedKey};

/// What the signatures cover, before the payload.
const DOMAIN: &[u8] = b"kassa-bundle-v1\n";

/// The largest bundle accepted (a bundle is parameters and CA keys, not software).
pub const MAX_BUNDLE_BYTES: usize = 1 << 20;

/// Top-level tables a bundle may carry.
const ALLOWED: [&str; 8] = [
    "bundle",
    "terminal",
    "aids",
    "capks",
    "offline",
    "ui",
    "qr",
    "signing_keys",
];

/// Keys of allowed tables that stay the terminal's own: its identity at the acquirer, where QR
/// payments are credited, and its own devices. A bundle naming one is refused, so a stolen
/// signing key cannot redirect money.
const DENIED: [(&str, &str); 6] = [
    ("terminal", "terminal_id"),
    ("terminal", "merchant_id"),
    ("qr", "network_gui"),
    ("qr", "network_merchant_id"),
    ("qr", "scanner_port"),
    ("qr", "scanner_baud"),
];

/// Why a bundle was refused. Each variant has a stable reason code ([`TmsError::code`]).
#[derive(Debug, thiserror::Error)]
pub enum TmsError {
    /// Not a bundle envelope, or too big.
    #[error("not a Kassa bundle: {0}")]
    Malformed(String),
    /// No signature verifies under a trusted key.
    #[error("no valid signature from a trusted key ({0})")]
    Signature(String),
    /// The only signing keys that match have expired.
    #[error("signing key {id} expired on {date}")]
    KeyExpired {
        /// The key's name.
        id: String,
        /// Its last day.
        date: chrono::NaiveDate,
    },
    /// The version is not above the one in force.
    #[error("version {got} is not above {current}, the version in force (rollback refused)")]
    Rollback {
        /// In force.
        current: u64,
        /// Offered.
        got: u64,
    },
    /// The payload breaks the bundle schema (an unknown or device-local table, a bad
    /// `[bundle]` table, a CA key without its checksum).
    #[error("bundle schema: {0}")]
    Schema(String),
    /// The configuration the bundle would make fails a check (a CA key's wrong checksum, a
    /// limit out of range, an unknown field).
    #[error("configuration: {0}")]
    Config(String),
    /// Reading or writing the state.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// What failed.
        source: std::io::Error,
    },
    /// The signing key file is not an Ed25519 PKCS#8 key.
    #[error("signing key {0}: not an Ed25519 PKCS#8 key")]
    SigningKey(PathBuf),
}

impl TmsError {
    /// Stable reason code (JSON, logs, `kassa tms status`).
    pub fn code(&self) -> &'static str {
        match self {
            TmsError::Malformed(_) => "bundle_malformed",
            TmsError::Signature(_) => "signature_invalid",
            TmsError::KeyExpired { .. } => "key_expired",
            TmsError::Rollback { .. } => "rollback",
            TmsError::Schema(_) => "schema_invalid",
            TmsError::Config(_) => "config_invalid",
            TmsError::Io { .. } => "io",
            TmsError::SigningKey(_) => "signing_key_invalid",
        }
    }
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> TmsError + '_ {
    move |source| TmsError::Io {
        path: path.to_path_buf(),
        source,
    }
}

#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Envelope {
    kassa_bundle: u32,
    payload: String,
    signatures: Vec<SignatureEntry>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct SignatureEntry {
    key_id: String,
    signature: String,
}

/// The `[bundle]` table.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct BundleMeta {
    version: u64,
    #[serde(default)]
    created: Option<String>,
    #[serde(default)]
    description: Option<String>,
}

/// A bundle whose payload follows the schema (not yet verified).
#[derive(Debug, Clone)]
pub struct Bundle {
    /// Version.
    pub version: u64,
    /// When the operator made it, as written.
    pub created: Option<String>,
    /// The operator's note.
    pub description: Option<String>,
    /// The tables it sets, in order.
    pub sections: Vec<String>,
    /// The keys named by its signatures.
    pub signed_by: Vec<String>,
    /// The keys that sign the bundles after it.
    pub signing_keys: Vec<TmsKeySection>,
    payload: String,
    table: toml::Table,
    signatures: Vec<SignatureEntry>,
}

/// Reads the envelope and checks the payload's schema.
pub fn parse(raw: &[u8]) -> Result<Bundle, TmsError> {
    if raw.len() > MAX_BUNDLE_BYTES {
        return Err(TmsError::Malformed(format!(
            "{} bytes, more than {MAX_BUNDLE_BYTES}",
            raw.len()
        )));
    }
    let env: Envelope =
        serde_json::from_slice(raw).map_err(|e| TmsError::Malformed(format!("envelope: {e}")))?;
    if env.kassa_bundle != 1 {
        return Err(TmsError::Malformed(format!(
            "format {} (this terminal reads format 1)",
            env.kassa_bundle
        )));
    }
    let mut b = parse_payload(&env.payload)?;
    b.signed_by = env.signatures.iter().map(|s| s.key_id.clone()).collect();
    b.signatures = env.signatures;
    Ok(b)
}

/// Checks a payload against the schema.
pub fn parse_payload(payload: &str) -> Result<Bundle, TmsError> {
    let table: toml::Table =
        toml::from_str(payload).map_err(|e| TmsError::Schema(one_line(&e.to_string())))?;
    for key in table.keys() {
        if !ALLOWED.contains(&key.as_str()) {
            return Err(TmsError::Schema(format!(
                "unknown or device-local table {key:?} (a bundle may set: {})",
                ALLOWED.join(", ")
            )));
        }
    }
    for (t, k) in DENIED {
        if table.get(t).and_then(|v| v.get(k)).is_some() {
            return Err(TmsError::Schema(format!(
                "{t}.{k} is the terminal's own setting: a bundle may not set it"
            )));
        }
    }
    let meta: BundleMeta = table
        .get("bundle")
        .ok_or_else(|| TmsError::Schema("no [bundle] table".into()))?
        .clone()
        .try_into()
        .map_err(|e: toml::de::Error| {
            TmsError::Schema(format!("[bundle]: {}", one_line(&e.to_string())))
        })?;
    if meta.version == 0 {
        return Err(TmsError::Schema("[bundle] version must be above 0".into()));
    }
    if let Some(capks) = table.get("capks").and_then(|v| v.as_array()) {
        for (i, c) in capks.iter().enumerate() {
            if c.get("checksum").is_none() {
                return Err(TmsError::Schema(format!(
                    "capks[{i}] has no checksum: a bundle's CA keys carry their published hash"
                )));
            }
        }
    }
    let signing_keys: Vec<TmsKeySection> = match table.get("signing_keys") {
        Some(v) => v.clone().try_into().map_err(|e: toml::de::Error| {
            TmsError::Schema(format!("signing_keys: {}", one_line(&e.to_string())))
        })?,
        None => Vec::new(),
    };
    for (i, k) in signing_keys.iter().enumerate() {
        k.trusted()
            .map_err(|m| TmsError::Schema(format!("signing_keys[{i}]: {m}")))?;
    }
    Ok(Bundle {
        version: meta.version,
        created: meta.created,
        description: meta.description,
        sections: table.keys().cloned().collect(),
        signed_by: Vec::new(),
        signing_keys,
        payload: payload.to_string(),
        table,
        signatures: Vec::new(),
    })
}

fn one_line(s: &str) -> String {
    s.split_whitespace().collect::<Vec<_>>().join(" ")
}

fn message(payload: &str) -> Vec<u8> {
    [DOMAIN, payload.as_bytes()].concat()
}

impl Bundle {
    /// The payload text.
    pub fn payload(&self) -> &str {
        &self.payload
    }

    /// Verifies the signatures: one must come from a key of `trusted` that has not expired
    /// by `today`. Returns the key's name.
    pub fn verify(
        &self,
        trusted: &[TrustedKey],
        today: chrono::NaiveDate,
    ) -> Result<String, TmsError> {
        let msg = message(&self.payload);
        let mut expired = None;
        for s in &self.signatures {
            let Ok(sig) = emv::util::unhex(&s.signature) else {
                continue;
            };
            // Every trusted key of that name (two may share one during a changeover).
            for key in trusted.iter().filter(|k| k.id == s.key_id) {
                if UnparsedPublicKey::new(&ED25519, &key.public_key)
                    .verify(&msg, &sig)
                    .is_err()
                {
                    continue;
                }
                match key.not_after {
                    Some(date) if today > date => {
                        expired = Some(TmsError::KeyExpired {
                            id: key.id.clone(),
                            date,
                        })
                    }
                    _ => return Ok(key.id.clone()),
                }
            }
        }
        Err(expired.unwrap_or_else(|| {
            let names: Vec<&str> = trusted.iter().map(|k| k.id.as_str()).collect();
            TmsError::Signature(if self.signatures.is_empty() {
                "the bundle is not signed".into()
            } else {
                format!(
                    "signed by {}; trusted: {}",
                    self.signed_by.join(", "),
                    if names.is_empty() {
                        "none".into()
                    } else {
                        names.join(", ")
                    }
                )
            })
        }))
    }

    /// The configuration this bundle makes on top of the local file's text (`None`: no
    /// local file, the built-in defaults): the bundle's tables merged over the local ones
    /// (tables key by key, arrays replaced), then every configuration check.
    pub fn config_over(&self, local: Option<(&Path, &str)>) -> Result<Config, TmsError> {
        let (path, mut base): (PathBuf, toml::Table) = match local {
            Some((p, text)) => (
                p.to_path_buf(),
                toml::from_str(text).map_err(|e| {
                    TmsError::Config(format!("{}: {}", p.display(), one_line(&e.to_string())))
                })?,
            ),
            None => (PathBuf::from("defaults"), toml::Table::new()),
        };
        for (key, value) in &self.table {
            if key == "bundle" || key == "signing_keys" {
                continue;
            }
            merge(&mut base, key, value.clone());
        }
        let text = toml::to_string(&base).map_err(|e| TmsError::Config(e.to_string()))?;
        Config::parse(&path, &text).map_err(|e| TmsError::Config(e.to_string()))
    }
}

/// Sets `key` in `into` to `value`, merging tables key by key.
fn merge(into: &mut toml::Table, key: &str, value: toml::Value) {
    match (into.get_mut(key), value) {
        (Some(toml::Value::Table(old)), toml::Value::Table(new)) => {
            for (k, v) in new {
                merge(old, &k, v);
            }
        }
        (_, v) => {
            into.insert(key.to_string(), v);
        }
    }
}

/// An operator's signing key (Ed25519, PKCS#8 v2 as ring writes it), zeroized on drop.
pub struct SigningKey {
    pkcs8: Zeroizing<Vec<u8>>,
    pair: Ed25519KeyPair,
}

impl std::fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SigningKey")
            .field("public_key", &self.public_hex())
            .finish_non_exhaustive()
    }
}

impl SigningKey {
    /// A new random key.
    pub fn generate() -> Result<SigningKey, TmsError> {
        let rng = ring::rand::SystemRandom::new();
        let doc = Ed25519KeyPair::generate_pkcs8(&rng)
            .map_err(|_| TmsError::Malformed("no random source for a new key".into()))?;
        let pkcs8 = Zeroizing::new(doc.as_ref().to_vec());
        let pair = Ed25519KeyPair::from_pkcs8(&pkcs8)
            .map_err(|_| TmsError::Malformed("generated key does not load".into()))?;
        Ok(SigningKey { pkcs8, pair })
    }

    /// Reads a key file written by [`SigningKey::save`].
    pub fn load(path: &Path) -> Result<SigningKey, TmsError> {
        let pkcs8 = Zeroizing::new(std::fs::read(path).map_err(io(path))?);
        let pair = Ed25519KeyPair::from_pkcs8(&pkcs8)
            .or_else(|_| Ed25519KeyPair::from_pkcs8_maybe_unchecked(&pkcs8))
            .map_err(|_| TmsError::SigningKey(path.to_path_buf()))?;
        Ok(SigningKey { pkcs8, pair })
    }

    /// Writes the key (PKCS#8, DER) to a new file readable by its owner only.
    pub fn save(&self, path: &Path) -> Result<(), TmsError> {
        use std::io::Write;
        let mut o = std::fs::OpenOptions::new();
        o.write(true).create_new(true);
        #[cfg(unix)]
        {
            use std::os::unix::fs::OpenOptionsExt;
            o.mode(0o600);
        }
        let mut f = o.open(path).map_err(io(path))?;
        f.write_all(&self.pkcs8).map_err(io(path))?;
        f.sync_all().map_err(io(path))
    }

    /// The public key, 64 hex digits (for `[[tms.keys]]`).
    pub fn public_hex(&self) -> String {
        emv::util::hex(self.pair.public_key().as_ref())
    }
}

/// Signs `payload` (checked against the schema first) as key `key_id`: the bundle's bytes.
pub fn sign(payload: &str, key: &SigningKey, key_id: &str) -> Result<Vec<u8>, TmsError> {
    parse_payload(payload)?;
    let sig = key.pair.sign(&message(payload));
    let env = Envelope {
        kassa_bundle: 1,
        payload: payload.to_string(),
        signatures: vec![SignatureEntry {
            key_id: key_id.to_string(),
            signature: emv::util::hex(sig.as_ref()),
        }],
    };
    let mut out =
        serde_json::to_vec_pretty(&env).map_err(|e| TmsError::Malformed(e.to_string()))?;
    out.push(b'\n');
    Ok(out)
}

/// What the terminal remembers about bundles (`<data>/tms/state.json`). Writing it is the
/// commit point of an apply: it names the bundle file in force.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct State {
    /// Version in force (0: none).
    pub version: u64,
    /// The file under `<data>/tms/` holding it (`bundle-<version>.bundle`).
    pub file: Option<String>,
    /// The ETag of the last bundle refused, sent again with the poll so that an unchanged
    /// refused file costs a 304, not a download and another refusal.
    pub refused_etag: Option<String>,
    /// The key that signed it.
    pub signed_by: Option<String>,
    /// When it was applied (RFC 3339).
    pub applied_at: Option<String>,
    /// The keys trusted for the next bundle (the bundle's `signing_keys`, or empty for the
    /// local `[[tms.keys]]`).
    pub signing_keys: Vec<TmsKeySection>,
    /// The keys the bundle in force was verified with (to check it again at start).
    pub verified_with: Vec<TmsKeySection>,
    /// The server's ETag of the bundle in force.
    pub etag: Option<String>,
    /// The server's Last-Modified of the bundle in force.
    pub last_modified: Option<String>,
    /// When the server was last asked (RFC 3339).
    pub last_poll: Option<String>,
    /// The last refusal or failure: reason code and message.
    pub last_error: Option<(String, String)>,
}

/// `<data>/tms`.
pub fn dir(data_dir: &Path) -> PathBuf {
    data_dir.join("tms")
}

impl State {
    /// Reads the state (default when there is none).
    pub fn load(data_dir: &Path) -> Result<State, TmsError> {
        let p = dir(data_dir).join("state.json");
        match std::fs::read(&p) {
            Ok(b) => serde_json::from_slice(&b)
                .map_err(|e| TmsError::Malformed(format!("{}: {e}", p.display()))),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(State::default()),
            Err(e) => Err(io(&p)(e)),
        }
    }

    /// Writes the state atomically.
    pub fn save(&self, data_dir: &Path) -> Result<(), TmsError> {
        let bytes =
            serde_json::to_vec_pretty(self).map_err(|e| TmsError::Malformed(e.to_string()))?;
        write_atomic(&dir(data_dir).join("state.json"), &bytes)
    }

    /// The keys a new bundle must be signed with.
    pub fn trusted(&self, local: &Config) -> Vec<TrustedKey> {
        self.trusted_sections(local)
            .iter()
            .filter_map(|k| k.trusted().ok())
            .collect()
    }

    /// The same keys as written: the last rotation's, or the local `[[tms.keys]]`.
    fn trusted_sections<'a>(&'a self, local: &'a Config) -> &'a [TmsKeySection] {
        if self.signing_keys.is_empty() {
            &local.tms.keys
        } else {
            &self.signing_keys
        }
    }
}

/// Takes the exclusive lock on `<data>/tms/apply.lock`, waiting up to 10 s.
fn apply_lock(data_dir: &Path) -> Result<std::fs::File, TmsError> {
    let d = dir(data_dir);
    std::fs::create_dir_all(&d).map_err(io(&d))?;
    let path = d.join("apply.lock");
    let f = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .map_err(io(&path))?;
    let until = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        match f.try_lock() {
            Ok(()) => return Ok(f),
            Err(std::fs::TryLockError::WouldBlock) if std::time::Instant::now() < until => {
                std::thread::sleep(std::time::Duration::from_millis(50));
            }
            Err(std::fs::TryLockError::WouldBlock) => {
                return Err(io(&path)(std::io::Error::new(
                    std::io::ErrorKind::WouldBlock,
                    "another apply has held it for 10 s",
                )));
            }
            Err(std::fs::TryLockError::Error(e)) => return Err(io(&path)(e)),
        }
    }
}

/// Writes `bytes` to `path` through a synced temporary file and a rename.
fn write_atomic(path: &Path, bytes: &[u8]) -> Result<(), TmsError> {
    use std::io::Write;
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent).map_err(io(parent))?;
    }
    let tmp = path.with_extension("tmp");
    {
        let mut o = std::fs::OpenOptions::new();
        o.write(true).create(true).truncate(true);
        #[cfg(unix)]
        {
            use std::os::unix::fs::OpenOptionsExt;
            o.mode(0o600);
        }
        let mut f = o.open(&tmp).map_err(io(&tmp))?;
        f.write_all(bytes).map_err(io(&tmp))?;
        f.sync_all().map_err(io(&tmp))?;
    }
    std::fs::rename(&tmp, path).map_err(io(path))?;
    if let Some(parent) = path.parent()
        && let Ok(d) = std::fs::File::open(parent)
    {
        let _ = d.sync_all();
    }
    Ok(())
}

/// The local configuration file: its path and text, or none (built-in defaults).
#[derive(Debug, Clone)]
pub struct Local {
    /// The file, if there is one.
    pub file: Option<(PathBuf, String)>,
    /// It, parsed and checked.
    pub config: Config,
}

impl Local {
    fn as_ref(&self) -> Option<(&Path, &str)> {
        self.file.as_ref().map(|(p, t)| (p.as_path(), t.as_str()))
    }
}

/// A bundle that was applied.
#[derive(Debug, Clone)]
pub struct Applied {
    /// Its version.
    pub version: u64,
    /// The previous version (0: none).
    pub previous: u64,
    /// The key that signed it.
    pub signed_by: String,
    /// The configuration now in force.
    pub config: Config,
}

/// Verifies `raw` and makes it the bundle in force: signature under a trusted unexpired key,
/// a version above the one in force, a configuration that passes every check. On refusal
/// nothing changes but the state's `last_error`.
pub fn apply(
    data_dir: &Path,
    local: &Local,
    raw: &[u8],
    today: chrono::NaiveDate,
    http: Option<(Option<String>, Option<String>)>,
) -> Result<Applied, TmsError> {
    // One apply at a time (the background poller and `kassa tms apply`).
    let _lock = apply_lock(data_dir)?;
    let mut state = State::load(data_dir)?;
    let result = check(&state, local, raw, today);
    match result {
        Ok((bundle, signed_by, config)) => {
            // The bundle under its own name first; the state naming it is the commit.
            let file = format!("bundle-{}.bundle", bundle.version);
            write_atomic(&dir(data_dir).join(&file), raw)?;
            state.file = Some(file.clone());
            state.refused_etag = None;
            let previous = state.version;
            state.version = bundle.version;
            state.signed_by = Some(signed_by.clone());
            state.applied_at = Some(chrono::Utc::now().to_rfc3339());
            state.verified_with = state.trusted_sections(&local.config).to_vec();
            // A rotation hands signing to the bundle's keys; otherwise they stay as they were.
            if !bundle.signing_keys.is_empty() {
                state.signing_keys = bundle.signing_keys.clone();
            }
            if let Some((etag, modified)) = http {
                state.etag = etag;
                state.last_modified = modified;
            }
            state.last_error = None;
            state.save(data_dir)?;
            // Earlier bundles are no longer needed.
            if let Ok(entries) = std::fs::read_dir(dir(data_dir)) {
                for e in entries.flatten() {
                    let name = e.file_name().to_string_lossy().into_owned();
                    if name.starts_with("bundle-") && name.ends_with(".bundle") && name != file {
                        let _ = std::fs::remove_file(e.path());
                    }
                }
            }
            tracing::info!(
                version = bundle.version,
                previous,
                signed_by = %signed_by,
                "configuration bundle applied"
            );
            Ok(Applied {
                version: bundle.version,
                previous,
                signed_by,
                config,
            })
        }
        Err(e) => {
            tracing::warn!(reason = e.code(), error = %e, "configuration bundle refused; the configuration in force stays");
            state.last_error = Some((e.code().to_string(), e.to_string()));
            if let Some((etag, _)) = http {
                state.refused_etag = etag;
            }
            let _ = state.save(data_dir);
            Err(e)
        }
    }
}

fn check(
    state: &State,
    local: &Local,
    raw: &[u8],
    today: chrono::NaiveDate,
) -> Result<(Bundle, String, Config), TmsError> {
    let bundle = parse(raw)?;
    let signed_by = bundle.verify(&state.trusted(&local.config), today)?;
    if bundle.version <= state.version {
        return Err(TmsError::Rollback {
            current: state.version,
            got: bundle.version,
        });
    }
    let config = bundle.config_over(local.as_ref())?;
    Ok((bundle, signed_by, config))
}

/// The configuration in force: the local file with the applied bundle merged over it. A
/// stored bundle that no longer verifies or no longer fits the local file is reported and
/// left out (the local file alone is used).
pub fn effective(data_dir: &Path, local: &Local) -> (Config, Option<u64>) {
    let state = match State::load(data_dir) {
        Ok(s) => s,
        Err(e) => {
            tracing::error!(reason = e.code(), error = %e, "bundle state unreadable; no bundle in force");
            return (local.config.clone(), None);
        }
    };
    let Some(file) = state.file.clone() else {
        return (local.config.clone(), None);
    };
    let attempt = || -> Result<(Config, u64), TmsError> {
        let path = dir(data_dir).join(&file);
        let raw = std::fs::read(&path).map_err(io(&path))?;
        let bundle = parse(&raw)?;
        if bundle.version != state.version {
            return Err(TmsError::Malformed(format!(
                "{file} holds version {}, the state says {}",
                bundle.version, state.version
            )));
        }
        let trusted: Vec<TrustedKey> = state
            .verified_with
            .iter()
            .filter_map(|k| k.trusted().ok())
            .collect();
        // Checked again for integrity; a key that expired since does not undo the bundle.
        bundle.verify(&trusted, chrono::NaiveDate::MIN)?;
        Ok((bundle.config_over(local.as_ref())?, bundle.version))
    };
    match attempt() {
        Ok((c, v)) => (c, Some(v)),
        Err(e) => {
            tracing::error!(reason = e.code(), error = %e, "the stored configuration bundle is not used");
            (local.config.clone(), None)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn today() -> chrono::NaiveDate {
        chrono::NaiveDate::from_ymd_opt(2026, 11, 30).unwrap()
    }

    fn local_with(keys: &[(&str, &SigningKey, Option<&str>)]) -> Local {
        let mut text = String::from(
            "[terminal]\nterminal_id = \"KASSA042\"\nmerchant_name = \"Local name\"\n",
        );
        for (id, k, not_after) in keys {
            text.push_str(&format!(
                "[[tms.keys]]\nid = \"{id}\"\npublic_key = \"{}\"\n",
                k.public_hex()
            ));
            if let Some(d) = not_after {
                text.push_str(&format!("not_after = \"{d}\"\n"));
            }
        }
        let path = PathBuf::from("kassa.toml");
        let config = Config::parse(&path, &text).unwrap();
        Local {
            file: Some((path, text)),
            config,
        }
    }

    fn payload(version: u64, extra: &str) -> String {
        format!(
            "[bundle]\nversion = {version}\ncreated = \"2026-11-30T10:00:00Z\"\n\n\
             [terminal]\nmerchant_name = \"Bundle Shop v{version}\"\nmax_amount = \"500.00\"\n{extra}"
        )
    }

    #[test]
    fn signed_bundles_verify_and_merge_over_the_local_file() {
        let key = SigningKey::generate().unwrap();
        let local = local_with(&[("ops-2026", &key, None)]);
        let raw = sign(&payload(3, ""), &key, "ops-2026").unwrap();
        let b = parse(&raw).unwrap();
        assert_eq!(b.version, 3);
        assert_eq!(b.signed_by, vec!["ops-2026".to_string()]);
        let trusted: Vec<_> = local
            .config
            .tms
            .keys
            .iter()
            .map(|k| k.trusted().unwrap())
            .collect();
        assert_eq!(b.verify(&trusted, today()).unwrap(), "ops-2026");
        let cfg = b.config_over(local.as_ref()).unwrap();
        // The bundle's keys win, the local ones it does not name stay.
        assert_eq!(cfg.terminal.merchant_name, "Bundle Shop v3");
        assert_eq!(cfg.terminal.max_amount, "500.00");
        assert_eq!(cfg.terminal.terminal_id, "KASSA042");
        assert_eq!(cfg.tms.keys.len(), 1);
    }

    #[test]
    fn apply_refuses_rollback_tampering_and_strangers_and_keeps_the_last_good() {
        let dir = tempfile::tempdir().unwrap();
        let key = SigningKey::generate().unwrap();
        let local = local_with(&[("ops", &key, None)]);
        let v5 = sign(&payload(5, ""), &key, "ops").unwrap();
        let a = apply(dir.path(), &local, &v5, today(), None).unwrap();
        assert_eq!((a.previous, a.version), (0, 5));
        // The same version again, and an older one: rollback.
        for v in [5, 4] {
            let old = sign(&payload(v, ""), &key, "ops").unwrap();
            let e = apply(dir.path(), &local, &old, today(), None).unwrap_err();
            assert_eq!(e.code(), "rollback", "{e}");
        }
        // One byte of the payload changed after signing.
        let v6 = sign(&payload(6, ""), &key, "ops").unwrap();
        let text = String::from_utf8(v6.clone())
            .unwrap()
            .replace("500.00", "900.00");
        let e = apply(dir.path(), &local, text.as_bytes(), today(), None).unwrap_err();
        assert_eq!(e.code(), "signature_invalid", "{e}");
        // Signed by a key nobody trusts.
        let stranger = SigningKey::generate().unwrap();
        let e = apply(
            dir.path(),
            &local,
            &sign(&payload(7, ""), &stranger, "ops").unwrap(),
            today(),
            None,
        )
        .unwrap_err();
        assert_eq!(e.code(), "signature_invalid", "{e}");
        // Truncated in transit.
        let e = apply(dir.path(), &local, &v6[..v6.len() / 2], today(), None).unwrap_err();
        assert_eq!(e.code(), "bundle_malformed", "{e}");
        // Through all of it, version 5 stays in force and the refusal is remembered.
        let state = State::load(dir.path()).unwrap();
        assert_eq!(state.version, 5);
        assert_eq!(state.last_error.as_ref().unwrap().0, "bundle_malformed");
        let (cfg, v) = effective(dir.path(), &local);
        assert_eq!(v, Some(5));
        assert_eq!(cfg.terminal.merchant_name, "Bundle Shop v5");
        // And the good version 6 goes in.
        assert_eq!(
            apply(dir.path(), &local, &v6, today(), None)
                .unwrap()
                .version,
            6
        );
        assert!(State::load(dir.path()).unwrap().last_error.is_none());
    }

    #[test]
    fn schema_and_configuration_errors_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let key = SigningKey::generate().unwrap();
        let local = local_with(&[("ops", &key, None)]);
        let signed = |p: String| {
            // Sign without the schema check, as a careless or hostile operator tool might.
            let sig = key.pair.sign(&message(&p));
            serde_json::to_vec(&Envelope {
                kassa_bundle: 1,
                payload: p,
                signatures: vec![SignatureEntry {
                    key_id: "ops".into(),
                    signature: emv::util::hex(sig.as_ref()),
                }],
            })
            .unwrap()
        };
        let capk = |checksum: &str| {
            format!(
                "[[capks]]\nrid = \"A000000003\"\nindex = \"92\"\nexponent = \"03\"\n\
                 modulus = \"{}\"\nchecksum = \"{checksum}\"\n",
                "AB".repeat(176)
            )
        };
        for (p, code, says) in [
            (
                payload(2, "[acquirer]\naddress = \"203.0.113.9:443\"\n"),
                "schema_invalid",
                "acquirer",
            ),
            (payload(2, "[tms]\npoll_s = 60\n"), "schema_invalid", "tms"),
            (
                payload(2, "[surprise]\nx = 1\n"),
                "schema_invalid",
                "surprise",
            ),
            (
                payload(2, "[operator]\nlockout_s = 1\n"),
                "schema_invalid",
                "operator",
            ),
            (
                payload(2, "merchant_id = \"EVIL\"\n"),
                "schema_invalid",
                "terminal.merchant_id",
            ),
            (
                payload(2, "[qr]\nnetwork_gui = \"com.evil\"\n"),
                "schema_invalid",
                "qr.network_gui",
            ),
            (
                payload(2, "").replace("[bundle]\nversion = 2", "[bundle]\nversion = 2\nextra = 1"),
                "schema_invalid",
                "extra",
            ),
            (payload(2, "colour = \"red\"\n"), "config_invalid", "colour"),
            (
                payload(2, &capk("00").replace("checksum = \"00\"\n", "")),
                "schema_invalid",
                "checksum",
            ),
            (
                payload(2, &capk("0123456789012345678901234567890123456789")),
                "config_invalid",
                "capks[0]",
            ),
        ] {
            let e = apply(dir.path(), &local, &signed(p.clone()), today(), None).unwrap_err();
            assert_eq!(e.code(), code, "{p}: {e}");
            assert!(e.to_string().contains(says), "{p}: {e}");
            // `kassa tms sign` refuses schema errors before signing.
            if code == "schema_invalid" {
                assert!(sign(&p, &key, "ops").is_err());
            }
        }
        assert_eq!(State::load(dir.path()).unwrap().version, 0);
        assert!(State::load(dir.path()).unwrap().file.is_none());
    }

    #[test]
    fn keys_expire_and_rotate() {
        let dir = tempfile::tempdir().unwrap();
        let old = SigningKey::generate().unwrap();
        let new = SigningKey::generate().unwrap();
        let local = local_with(&[
            ("ops-2025", &old, Some("2025-12-31")),
            ("ops-2026", &new, None),
        ]);
        // A bundle signed only by the expired key is refused, naming it.
        let e = apply(
            dir.path(),
            &local,
            &sign(&payload(1, ""), &old, "ops-2025").unwrap(),
            today(),
            None,
        )
        .unwrap_err();
        assert_eq!(e.code(), "key_expired", "{e}");
        assert!(e.to_string().contains("ops-2025"));
        // Rotation: version 2, signed by ops-2026, hands signing over to ops-2027 alone.
        let next = SigningKey::generate().unwrap();
        let rotate = format!(
            "[[signing_keys]]\nid = \"ops-2027\"\npublic_key = \"{}\"\n",
            next.public_hex()
        );
        apply(
            dir.path(),
            &local,
            &sign(&payload(2, &rotate), &new, "ops-2026").unwrap(),
            today(),
            None,
        )
        .unwrap();
        let e = apply(
            dir.path(),
            &local,
            &sign(&payload(3, ""), &new, "ops-2026").unwrap(),
            today(),
            None,
        )
        .unwrap_err();
        assert_eq!(
            e.code(),
            "signature_invalid",
            "the rotated-out key no longer signs: {e}"
        );
        let a = apply(
            dir.path(),
            &local,
            &sign(&payload(3, ""), &next, "ops-2027").unwrap(),
            today(),
            None,
        )
        .unwrap();
        assert_eq!((a.version, a.signed_by.as_str()), (3, "ops-2027"));
        // At start the stored bundle is checked against the keys it was verified with.
        assert_eq!(effective(dir.path(), &local).1, Some(3));
    }

    #[test]
    fn a_signing_key_file_round_trips_and_is_private() {
        let dir = tempfile::tempdir().unwrap();
        let k = SigningKey::generate().unwrap();
        let p = dir.path().join("ops.key");
        k.save(&p).unwrap();
        let again = SigningKey::load(&p).unwrap();
        assert_eq!(again.public_hex(), k.public_hex());
        assert!(!format!("{again:?}").contains(&emv::util::hex(&again.pkcs8)));
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            assert_eq!(
                std::fs::metadata(&p).unwrap().permissions().mode() & 0o077,
                0
            );
        }
        std::fs::write(dir.path().join("junk.key"), b"junk").unwrap();
        assert_eq!(
            SigningKey::load(&dir.path().join("junk.key"))
                .unwrap_err()
                .code(),
            "signing_key_invalid"
        );
    }
}
