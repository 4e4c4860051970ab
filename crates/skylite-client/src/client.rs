//! The async client: [`Client`] (cheap to clone, safe to share between tasks) and
//! [`Transaction`] (an interactive transaction on its own stream).
//!
//! Every call on a [`Client`] runs on a fresh stream that is closed in the same round trip
//! (remote: one HTTP request `{baton: null, requests: [..., close]}`), so calls are independent
//! and can run concurrently. A [`Transaction`] keeps its stream (its baton, or its engine
//! session for local files) until `commit`, `rollback` or drop.

use std::sync::Arc;

use crate::config::{Config, Target};
use crate::error::{Error, Result};
use crate::local::{on_worker, LocalDb};
use crate::params::{IntoParams, Statement};
use crate::remote::Remote;
use crate::rows::Rows;
use crate::stream::{
    atomic_batch, batch_rows, chained_batch, control_req, execute_req, expect_batch, expect_close,
    expect_rows, expect_sequence, sequence_req, Backend, Stream, TransactionBehavior,
};
use skylite_proto::StreamRequest;

/// A connection to one database, local or remote. Clone it freely: clones share the connection
/// pool (remote) or the open database (local).
#[derive(Debug, Clone)]
pub struct Client {
    backend: Backend,
    url: Arc<str>,
}

impl Client {
    /// Connects to `url` (see [`crate::config`] for the forms) with a token (`""`: none; ignored
    /// for local files). Remote connections are opened lazily, on the first request.
    pub async fn connect(url: &str, auth_token: &str) -> Result<Client> {
        Client::open(Config::new(url).auth_token(auth_token)).await
    }

    /// Connects as [`Config::from_env`] says (environment, then `./.env`).
    pub async fn from_env() -> Result<Client> {
        Client::open(Config::from_env()?).await
    }

    /// Connects with a full configuration.
    pub async fn open(config: Config) -> Result<Client> {
        let backend = match Target::parse(&config.url)? {
            Target::Local(path) => {
                let db = on_worker(move || LocalDb::open(&path)).await??;
                Backend::Local(db)
            }
            Target::Memory => Backend::Local(on_worker(LocalDb::open_private).await??),
            Target::Remote(url) => Backend::Remote(Arc::new(Remote::new(url, &config)?)),
        };
        Ok(Client {
            backend,
            url: config.url.into(),
        })
    }

    /// The URL this client was opened with.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// True for a server, false for a local file.
    pub fn is_remote(&self) -> bool {
        matches!(self.backend, Backend::Remote(_))
    }

    /// Runs `reqs` on a fresh stream and closes it in the same round trip.
    async fn one_shot(
        &self,
        mut reqs: Vec<StreamRequest>,
    ) -> Result<Vec<skylite_proto::StreamResult>> {
        reqs.push(StreamRequest::Close);
        let mut stream = Stream::new(&self.backend);
        let mut results = stream.run(reqs).await?;
        results.pop();
        Ok(results)
    }

    /// Executes one statement with parameters (`()`, a tuple, an array, [`crate::params!`],
    /// [`crate::named_params!`], ...) and returns its rows.
    pub async fn execute(&self, sql: &str, params: impl IntoParams) -> Result<Rows> {
        let req = execute_req(Statement::with_params(sql, params));
        let result = self.one_shot(vec![req]).await?.pop();
        expect_rows(result.ok_or_else(missing)?)
    }

    /// Executes statements atomically (like `@libsql/client`'s `batch`): inside one
    /// transaction, each only if the previous succeeded; the first failure rolls every one of
    /// them back and is returned. On success, one [`Rows`] per statement.
    pub async fn batch<S: Into<Statement>>(
        &self,
        stmts: impl IntoIterator<Item = S>,
    ) -> Result<Vec<Rows>> {
        self.batch_with(TransactionBehavior::Deferred, stmts).await
    }

    /// [`Client::batch`] with the transaction started as `behavior` says.
    pub async fn batch_with<S: Into<Statement>>(
        &self,
        behavior: TransactionBehavior,
        stmts: impl IntoIterator<Item = S>,
    ) -> Result<Vec<Rows>> {
        let stmts: Vec<Statement> = stmts.into_iter().map(Into::into).collect();
        let n = stmts.len();
        let batch = atomic_batch(stmts, behavior);
        let result = self
            .one_shot(vec![StreamRequest::Batch { batch }])
            .await?
            .pop();
        batch_rows(expect_batch(result.ok_or_else(missing)?)?, 1..n + 1)
    }

    /// Executes several `;`-separated statements in order, without their rows; stops at the
    /// first error (earlier statements stay done unless the SQL has its own transaction).
    pub async fn execute_multiple(&self, sql: &str) -> Result<()> {
        let result = self.one_shot(vec![sequence_req(sql)]).await?.pop();
        expect_sequence(result.ok_or_else(missing)?)
    }

    /// Starts an interactive transaction (`BEGIN DEFERRED`).
    pub async fn transaction(&self) -> Result<Transaction> {
        self.transaction_with(TransactionBehavior::Deferred).await
    }

    /// Starts an interactive transaction as `behavior` says.
    pub async fn transaction_with(&self, behavior: TransactionBehavior) -> Result<Transaction> {
        let mut stream = Stream::new(&self.backend);
        let result = stream.run(vec![control_req(behavior.begin_sql())]).await;
        let begun = result.and_then(|mut r| expect_rows(r.pop().ok_or_else(missing)?));
        if let Err(e) = begun {
            stream.close_in_background(None);
            return Err(e);
        }
        Ok(Transaction {
            stream: tokio::sync::Mutex::new(Some(stream)),
            handle: tokio::runtime::Handle::try_current().ok(),
        })
    }
}

fn missing() -> Error {
    Error::Protocol("the server sent fewer results than requests".into())
}

/// An interactive transaction on its own stream.
///
/// End it with [`Transaction::commit`] or [`Transaction::rollback`]. **Dropping** it without
/// either rolls it back, without blocking: for a local file the rollback runs on an engine
/// worker thread; for a server a `close` request is sent from a background task on the tokio
/// runtime (the one current at the drop, else the one the transaction began on). Both happen
/// shortly after the drop, not before it returns; other writers wait for the lock until then.
/// If no runtime is left to send the `close`, the server rolls the transaction back itself when
/// the stream idles out (skylite: `--stream-idle-timeout`, 60 s; sooner if another writer waits
/// longer than `--txn-timeout`).
///
/// If a call on the transaction is cancelled (its future dropped) or its connection breaks
/// mid-request, the transaction is unusable afterwards ([`Error::TransactionLost`]) and is
/// rolled back as on drop.
pub struct Transaction {
    stream: tokio::sync::Mutex<Option<Stream>>,
    handle: Option<tokio::runtime::Handle>,
}

impl std::fmt::Debug for Transaction {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Transaction").finish_non_exhaustive()
    }
}

impl Transaction {
    /// Runs `reqs` on the transaction's stream. A failure in transit leaves the stream unusable.
    async fn run(&self, reqs: Vec<StreamRequest>) -> Result<Vec<skylite_proto::StreamResult>> {
        let mut guard = self.stream.lock().await;
        let stream = guard
            .as_mut()
            .ok_or_else(|| Error::TransactionLost("the transaction has ended".into()))?;
        stream.run(reqs).await
    }

    async fn run_one(&self, req: StreamRequest) -> Result<skylite_proto::StreamResult> {
        self.run(vec![req]).await?.pop().ok_or_else(missing)
    }

    /// Executes one statement inside the transaction.
    pub async fn execute(&self, sql: &str, params: impl IntoParams) -> Result<Rows> {
        expect_rows(
            self.run_one(execute_req(Statement::with_params(sql, params)))
                .await?,
        )
    }

    /// Executes statements in order inside the transaction, each only if the previous one
    /// succeeded; returns the first error (the transaction stays open: roll it back or go on).
    pub async fn batch<S: Into<Statement>>(
        &self,
        stmts: impl IntoIterator<Item = S>,
    ) -> Result<Vec<Rows>> {
        let stmts: Vec<Statement> = stmts.into_iter().map(Into::into).collect();
        let n = stmts.len();
        let batch = chained_batch(stmts);
        batch_rows(
            expect_batch(self.run_one(StreamRequest::Batch { batch }).await?)?,
            0..n,
        )
    }

    /// Executes several `;`-separated statements inside the transaction.
    pub async fn execute_multiple(&self, sql: &str) -> Result<()> {
        expect_sequence(self.run_one(sequence_req(sql)).await?)
    }

    /// Commits. If the commit fails the transaction is rolled back and the error returned.
    pub async fn commit(self) -> Result<()> {
        self.finish("COMMIT").await
    }

    /// Rolls back.
    pub async fn rollback(self) -> Result<()> {
        self.finish("ROLLBACK").await
    }

    async fn finish(self, sql: &str) -> Result<()> {
        let mut guard = self.stream.lock().await;
        let Some(mut stream) = guard.take() else {
            return Err(Error::TransactionLost("the transaction has ended".into()));
        };
        let outcome = stream
            .run(vec![control_req(sql), StreamRequest::Close])
            .await;
        if outcome.is_err() && stream.needs_close() {
            stream.close_in_background(self.handle.as_ref());
        }
        let mut results = outcome?;
        let close = results.pop().ok_or_else(missing)?;
        expect_rows(results.pop().ok_or_else(missing)?)?;
        expect_close(close)
    }
}

impl Drop for Transaction {
    fn drop(&mut self) {
        if let Some(mut stream) = self.stream.get_mut().take() {
            stream.close_in_background(self.handle.as_ref());
        }
    }
}
