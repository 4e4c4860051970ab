//! The object store a backup lives in: `s3://BUCKET/PREFIX` plus the standard `AWS_*` variables
//! turned into an `Arc<dyn ObjectStore>` whose paths are relative to PREFIX, create-only writes
//! (`If-None-Match: *`), and the probe that checks a store really gives one winner to two
//! concurrent create-only writes before anything relies on it for fencing.
//!
//! Every other module addresses objects by their key below the prefix (`dbs/NAME/...`, see
//! `format.rs`); the prefix is applied here once, by wrapping the S3 client in a
//! [`PrefixStore`], so a key never names the bucket or the prefix.

use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use object_store::aws::AmazonS3Builder;
use object_store::path::Path;
use object_store::prefix::PrefixStore;
use object_store::{ClientOptions, ObjectStore, PutMode, PutOptions, PutPayload, RetryConfig};

/// Why a backup location could not be used.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The `--backup`/`--from` value is not `s3://BUCKET[/PREFIX]`.
    #[error("invalid backup location {url:?}: {reason}")]
    InvalidUrl {
        /// The value as given.
        url: String,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// `AWS_ENDPOINT_URL` is not an `http://` or `https://` URL, or is plain `http://` to a host
    /// that is not a loopback address (credentials and data would cross a network in clear).
    #[error("invalid AWS_ENDPOINT_URL {endpoint:?}: {reason}")]
    InvalidEndpoint {
        /// The endpoint as given.
        endpoint: String,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// The S3 client could not be built from the configuration.
    #[error("cannot configure the object store: {0}")]
    Config(#[source] object_store::Error),
    /// A request to the store failed.
    #[error("object store request failed: {0}")]
    Request(#[from] object_store::Error),
    /// The store accepted two create-only writes of one key (it ignores `If-None-Match: *`), so
    /// it cannot fence two servers writing one prefix.
    #[error(
        "the object store does not honour create-only writes (If-None-Match: *): {winners} of 2 \
         concurrent creates of one key succeeded; it cannot be used for backups"
    )]
    ConditionalPutIgnored {
        /// How many of the two concurrent creates reported success (2, or 0 if both failed as
        /// "already exists").
        winners: usize,
    },
}

/// A parsed backup location `s3://BUCKET/PREFIX`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BackupUrl {
    /// The bucket name.
    pub bucket: String,
    /// The key prefix inside the bucket, without leading or trailing `/` (may be empty).
    pub prefix: String,
}

impl BackupUrl {
    /// Parses `s3://BUCKET` or `s3://BUCKET/PREFIX` (extra slashes around the prefix are
    /// ignored).
    pub fn parse(url: &str) -> Result<BackupUrl, StoreError> {
        let invalid = |reason| StoreError::InvalidUrl {
            url: url.to_owned(),
            reason,
        };
        let rest = url
            .strip_prefix("s3://")
            .ok_or_else(|| invalid("it must start with s3://"))?;
        let (bucket, prefix) = match rest.split_once('/') {
            Some((bucket, prefix)) => (bucket, prefix.trim_matches('/')),
            None => (rest, ""),
        };
        // S3's rules: 3-63 characters, lowercase letters, digits, '.', '-'. Checking here gives
        // a clear message instead of a signature error from the store.
        let bucket_ok = (3..=63).contains(&bucket.len())
            && bucket
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'.' || b == b'-');
        if !bucket_ok {
            return Err(invalid(
                "the bucket name must be 3 to 63 lowercase letters, digits, '.' or '-'",
            ));
        }
        if prefix.split('/').any(|part| part == "." || part == "..") {
            return Err(invalid("the prefix may not contain '.' or '..' segments"));
        }
        if prefix.contains("//") {
            return Err(invalid("the prefix may not contain empty segments"));
        }
        Ok(BackupUrl {
            bucket: bucket.to_owned(),
            prefix: prefix.to_owned(),
        })
    }
}

impl std::fmt::Display for BackupUrl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.prefix.is_empty() {
            write!(f, "s3://{}", self.bucket)
        } else {
            write!(f, "s3://{}/{}", self.bucket, self.prefix)
        }
    }
}

/// The `AWS_*` settings a store is built from: normally the process environment
/// ([`AwsEnv::from_process`]); tests pass their own so they never touch the process's
/// environment (which other threads read).
#[derive(Debug, Clone, Default)]
pub struct AwsEnv {
    vars: Vec<(String, String)>,
}

impl AwsEnv {
    /// Every `AWS_*` variable of this process (credentials, `AWS_REGION`, `AWS_ENDPOINT_URL`,
    /// session tokens, web identity, container credentials: whatever the S3 client knows).
    pub fn from_process() -> AwsEnv {
        AwsEnv {
            vars: std::env::vars()
                .filter(|(key, _)| key.starts_with("AWS_"))
                .collect(),
        }
    }

    /// Sets one variable (replacing an earlier value), e.g. `set("AWS_REGION", "us-east-1")`.
    pub fn set(mut self, key: &str, value: &str) -> AwsEnv {
        self.vars.retain(|(k, _)| k != key);
        self.vars.push((key.to_owned(), value.to_owned()));
        self
    }

    /// The value of one variable, if set.
    pub fn get(&self, key: &str) -> Option<&str> {
        self.vars
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }
}

/// Timeouts and retries of store requests.
#[derive(Debug, Clone)]
pub struct StoreOptions {
    /// Bound on one request, body included.
    pub request_timeout: Duration,
    /// Bound on opening a connection.
    pub connect_timeout: Duration,
    /// Retries of a failed idempotent request (GET, LIST, overwriting PUT, DELETE).
    pub max_retries: usize,
    /// No retry starts later than this after the first attempt.
    pub retry_timeout: Duration,
}

impl Default for StoreOptions {
    fn default() -> Self {
        // Short enough that a store outage is noticed (and reported) within seconds, long
        // enough for a segment or snapshot part on a slow link.
        StoreOptions {
            request_timeout: Duration::from_secs(60),
            connect_timeout: Duration::from_secs(5),
            max_retries: 4,
            retry_timeout: Duration::from_secs(20),
        }
    }
}

/// Opens the store at `url` with the settings of `env`; the result's paths are relative to the
/// prefix. Nothing is sent to the store yet (see [`probe`]).
///
/// `AWS_ENDPOINT_URL` (or `AWS_ENDPOINT`) selects an S3-compatible service; requests then use
/// path-style addressing (`ENDPOINT/BUCKET/KEY`), which every such service understands. A plain
/// `http://` endpoint is accepted only for a loopback host (a local test server), or when
/// `AWS_ALLOW_HTTP=true` says so explicitly.
pub fn open(
    url: &BackupUrl,
    env: &AwsEnv,
    options: &StoreOptions,
) -> Result<Arc<dyn ObjectStore>, StoreError> {
    let mut builder = AmazonS3Builder::new();
    for (key, value) in &env.vars {
        // Unknown AWS_* variables (AWS_PROFILE, AWS_PAGER, ...) are not the client's business.
        if let Ok(config_key) = key.to_ascii_lowercase().parse() {
            builder = builder.with_config(config_key, value);
        }
    }
    let explicit_http = env
        .get("AWS_ALLOW_HTTP")
        .is_some_and(|v| v.eq_ignore_ascii_case("true"));
    let endpoint = env
        .get("AWS_ENDPOINT_URL_S3")
        .or_else(|| env.get("AWS_ENDPOINT_URL"))
        .or_else(|| env.get("AWS_ENDPOINT"));
    let mut allow_http = explicit_http;
    if let Some(endpoint) = endpoint {
        allow_http |= check_endpoint(endpoint, explicit_http)?;
    }
    if env.get("AWS_REGION").is_none() && env.get("AWS_DEFAULT_REGION").is_none() {
        // S3-compatible services ignore the region but sign with it; AWS's default.
        builder = builder.with_region("us-east-1");
    }
    let client = ClientOptions::new()
        .with_allow_http(allow_http)
        .with_timeout(options.request_timeout)
        .with_connect_timeout(options.connect_timeout);
    let retry = RetryConfig {
        max_retries: options.max_retries,
        retry_timeout: options.retry_timeout,
        ..RetryConfig::default()
    };
    let s3 = builder
        .with_bucket_name(&url.bucket)
        .with_client_options(client)
        .with_retry(retry)
        .build()
        .map_err(StoreError::Config)?;
    if url.prefix.is_empty() {
        Ok(Arc::new(s3))
    } else {
        Ok(Arc::new(PrefixStore::new(
            s3,
            Path::from(url.prefix.as_str()),
        )))
    }
}

/// Opens `url` (a `s3://BUCKET/PREFIX` string) with this process's `AWS_*` variables and the
/// default options: what `skylite serve --backup` and `skylite restore --from` use.
pub fn open_from_env(url: &str) -> Result<Arc<dyn ObjectStore>, StoreError> {
    open(
        &BackupUrl::parse(url)?,
        &AwsEnv::from_process(),
        &StoreOptions::default(),
    )
}

/// Checks an endpoint URL; returns whether it needs plain HTTP allowed.
fn check_endpoint(endpoint: &str, explicit_http: bool) -> Result<bool, StoreError> {
    let invalid = |reason| StoreError::InvalidEndpoint {
        endpoint: endpoint.to_owned(),
        reason,
    };
    if endpoint.starts_with("https://") {
        return Ok(false);
    }
    let rest = endpoint
        .strip_prefix("http://")
        .ok_or_else(|| invalid("it must start with http:// or https://"))?;
    if explicit_http {
        return Ok(true);
    }
    let authority = rest.split('/').next().unwrap_or_default();
    let host = match authority.strip_prefix('[') {
        // [::1]:port
        Some(v6) => v6.split(']').next().unwrap_or_default(),
        None => authority.split(':').next().unwrap_or_default(),
    };
    let loopback = host.eq_ignore_ascii_case("localhost")
        || host.parse::<IpAddr>().is_ok_and(|ip| ip.is_loopback());
    if loopback {
        Ok(true)
    } else {
        Err(invalid(
            "plain http:// is allowed only to a loopback address (set AWS_ALLOW_HTTP=true to \
             allow it anyway)",
        ))
    }
}

/// What a create-only write found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Created {
    /// The object did not exist and now holds the bytes written.
    Yes,
    /// An object already had this key; nothing was written. (After a lost response and a
    /// retry this can also be our own earlier write: a caller that fences compares the
    /// existing object's header with what it meant to write.)
    AlreadyExists,
}

/// Writes `bytes` at `key` only if no object has that key (`If-None-Match: *`).
pub async fn put_create_only(
    store: &dyn ObjectStore,
    key: &Path,
    bytes: Bytes,
) -> Result<Created, StoreError> {
    let options = PutOptions {
        mode: PutMode::Create,
        ..PutOptions::default()
    };
    match store
        .put_opts(key, PutPayload::from_bytes(bytes), options)
        .await
    {
        Ok(_) => Ok(Created::Yes),
        Err(object_store::Error::AlreadyExists { .. }) => Ok(Created::AlreadyExists),
        Err(e) => Err(StoreError::Request(e)),
    }
}

/// Checks that the store is reachable with these credentials and honours create-only writes:
/// two concurrent creates of one fresh key (under `probe/`) must give exactly one winner. The
/// probe object is deleted afterwards.
pub async fn probe(store: &dyn ObjectStore) -> Result<(), StoreError> {
    let key = Path::from(format!("probe/{}", random_hex()));
    let (a, b) = futures_util::future::join(
        put_create_only(store, &key, Bytes::from_static(b"probe a")),
        put_create_only(store, &key, Bytes::from_static(b"probe b")),
    )
    .await;
    let outcome = [a, b];
    // Clean up whatever happened; a failed delete is not the probe's verdict.
    let _ = store.delete(&key).await;
    let mut winners = 0;
    for result in outcome {
        match result? {
            Created::Yes => winners += 1,
            Created::AlreadyExists => {}
        }
    }
    if winners == 1 {
        Ok(())
    } else {
        Err(StoreError::ConditionalPutIgnored { winners })
    }
}

/// 16 random hex digits (probe keys).
fn random_hex() -> String {
    let mut bytes = [0u8; 8];
    // Without OS randomness fall back to the clock: the key only has to be fresh.
    if getrandom::getrandom(&mut bytes).is_err() {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or_default();
        bytes = (nanos as u64).to_be_bytes();
    }
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_backup_urls() {
        let url = BackupUrl::parse("s3://my-bucket/some/prefix/").unwrap();
        assert_eq!(url.bucket, "my-bucket");
        assert_eq!(url.prefix, "some/prefix");
        assert_eq!(url.to_string(), "s3://my-bucket/some/prefix");
        let bare = BackupUrl::parse("s3://bucket").unwrap();
        assert_eq!(bare.prefix, "");
        for bad in [
            "http://bucket/x",
            "s3://",
            "s3://B/x",
            "s3://ab",
            "s3://bucket/a/../b",
            "s3://bucket/a//b",
        ] {
            assert!(BackupUrl::parse(bad).is_err(), "{bad} accepted");
        }
    }

    #[test]
    fn plain_http_only_to_loopback() {
        assert!(check_endpoint("http://127.0.0.1:8333", false).unwrap());
        assert!(check_endpoint("http://localhost:8333/", false).unwrap());
        assert!(check_endpoint("http://[::1]:8333", false).unwrap());
        assert!(!check_endpoint("https://s3.example.com", false).unwrap());
        assert!(check_endpoint("http://10.0.0.5:9000", false).is_err());
        assert!(check_endpoint("http://10.0.0.5:9000", true).unwrap());
        assert!(check_endpoint("ftp://x", true).is_err());
    }

    #[tokio::test]
    async fn in_memory_store_passes_the_probe() {
        let store = object_store::memory::InMemory::new();
        probe(&store).await.unwrap();
        let key = Path::from("k");
        assert_eq!(
            put_create_only(&store, &key, Bytes::from_static(b"1"))
                .await
                .unwrap(),
            Created::Yes
        );
        assert_eq!(
            put_create_only(&store, &key, Bytes::from_static(b"2"))
                .await
                .unwrap(),
            Created::AlreadyExists
        );
    }
}
