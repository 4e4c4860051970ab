//! The blocking flavour: the same API without `async`, for programs that have no tokio runtime
//! (scripts, CLI tools, sync web frameworks).
//!
//! A [`Client`] owns a small tokio runtime (one worker thread, shared by its clones and
//! transactions) and runs the async client on it. Calls block the calling thread; a client may
//! be shared between threads (each call blocks only its caller).
//!
//! **Not inside a tokio runtime.** Blocking a runtime's thread would stall it, and tokio panics
//! on nested `block_on`. Every call checks first and returns [`Error::InsideRuntime`] instead;
//! use the async [`crate::Client`] there (or call from `tokio::task::spawn_blocking`). Dropping
//! a client or a transaction inside a runtime is fine (it never blocks there).
//!
//! Dropping a [`Transaction`] without `commit`/`rollback` rolls it back before `drop` returns
//! (outside a runtime), so other connections can write as soon as it is gone.

use std::future::Future;
use std::sync::Arc;

use crate::config::Config;
use crate::error::{Error, Result};
use crate::params::{IntoParams, Statement};
use crate::rows::Rows;
use crate::stream::TransactionBehavior;

/// The runtime behind a blocking client; shut down without blocking when the last user goes.
struct Runtime(Option<tokio::runtime::Runtime>);

impl Runtime {
    fn new() -> Result<Runtime> {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .thread_name("skylite-client")
            .enable_all()
            .build()
            .map(|rt| Runtime(Some(rt)))
            .map_err(|e| Error::Config(format!("cannot start the client's runtime: {e}")))
    }

    fn block_on<F: Future>(&self, fut: F) -> Result<F::Output> {
        if tokio::runtime::Handle::try_current().is_ok() {
            return Err(Error::InsideRuntime);
        }
        match &self.0 {
            Some(rt) => Ok(rt.block_on(fut)),
            None => Err(Error::Config("the client's runtime has shut down".into())),
        }
    }
}

impl Drop for Runtime {
    fn drop(&mut self) {
        if let Some(rt) = self.0.take() {
            // Never blocks (dropping a runtime would, and panics inside another runtime).
            rt.shutdown_background();
        }
    }
}

/// A blocking connection to one database, local or remote. Cheap to clone.
#[derive(Clone)]
pub struct Client {
    inner: crate::Client,
    rt: Arc<Runtime>,
}

impl std::fmt::Debug for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("blocking::Client")
            .field("url", &self.inner.url())
            .finish()
    }
}

impl Client {
    /// Connects to `url` with a token (`""`: none). See [`crate::Client::connect`].
    pub fn connect(url: &str, auth_token: &str) -> Result<Client> {
        Client::open(Config::new(url).auth_token(auth_token))
    }

    /// Connects as [`Config::from_env`] says (environment, then `./.env`).
    pub fn from_env() -> Result<Client> {
        Client::open(Config::from_env()?)
    }

    /// Connects with a full configuration.
    pub fn open(config: Config) -> Result<Client> {
        if tokio::runtime::Handle::try_current().is_ok() {
            return Err(Error::InsideRuntime);
        }
        let rt = Arc::new(Runtime::new()?);
        let inner = rt.block_on(crate::Client::open(config))??;
        Ok(Client { inner, rt })
    }

    /// The async client behind this one (for code that has both).
    pub fn as_async(&self) -> &crate::Client {
        &self.inner
    }

    /// The URL this client was opened with.
    pub fn url(&self) -> &str {
        self.inner.url()
    }

    /// True for a server, false for a local file.
    pub fn is_remote(&self) -> bool {
        self.inner.is_remote()
    }

    /// Executes one statement. See [`crate::Client::execute`].
    pub fn execute(&self, sql: &str, params: impl IntoParams) -> Result<Rows> {
        self.rt.block_on(self.inner.execute(sql, params))?
    }

    /// Executes statements atomically. See [`crate::Client::batch`].
    pub fn batch<S: Into<Statement>>(
        &self,
        stmts: impl IntoIterator<Item = S>,
    ) -> Result<Vec<Rows>> {
        self.rt.block_on(self.inner.batch(stmts))?
    }

    /// [`Client::batch`] with the transaction started as `behavior` says.
    pub fn batch_with<S: Into<Statement>>(
        &self,
        behavior: TransactionBehavior,
        stmts: impl IntoIterator<Item = S>,
    ) -> Result<Vec<Rows>> {
        self.rt.block_on(self.inner.batch_with(behavior, stmts))?
    }

    /// Executes several `;`-separated statements. See [`crate::Client::execute_multiple`].
    pub fn execute_multiple(&self, sql: &str) -> Result<()> {
        self.rt.block_on(self.inner.execute_multiple(sql))?
    }

    /// Starts an interactive transaction (`BEGIN DEFERRED`).
    pub fn transaction(&self) -> Result<Transaction> {
        self.transaction_with(TransactionBehavior::Deferred)
    }

    /// Starts an interactive transaction as `behavior` says.
    pub fn transaction_with(&self, behavior: TransactionBehavior) -> Result<Transaction> {
        let inner = self.rt.block_on(self.inner.transaction_with(behavior))??;
        Ok(Transaction {
            inner: Some(inner),
            rt: self.rt.clone(),
        })
    }
}

/// A blocking interactive transaction. Dropping it rolls back (see the module docs).
pub struct Transaction {
    inner: Option<crate::Transaction>,
    rt: Arc<Runtime>,
}

impl std::fmt::Debug for Transaction {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("blocking::Transaction")
            .finish_non_exhaustive()
    }
}

impl Transaction {
    fn inner(&self) -> Result<&crate::Transaction> {
        self.inner
            .as_ref()
            .ok_or_else(|| Error::TransactionLost("the transaction has ended".into()))
    }

    /// Executes one statement inside the transaction.
    pub fn execute(&self, sql: &str, params: impl IntoParams) -> Result<Rows> {
        self.rt.block_on(self.inner()?.execute(sql, params))?
    }

    /// Executes statements in order inside the transaction. See [`crate::Transaction::batch`].
    pub fn batch<S: Into<Statement>>(
        &self,
        stmts: impl IntoIterator<Item = S>,
    ) -> Result<Vec<Rows>> {
        self.rt.block_on(self.inner()?.batch(stmts))?
    }

    /// Executes several `;`-separated statements inside the transaction.
    pub fn execute_multiple(&self, sql: &str) -> Result<()> {
        self.rt.block_on(self.inner()?.execute_multiple(sql))?
    }

    /// Commits.
    pub fn commit(mut self) -> Result<()> {
        let inner = self.take()?;
        self.rt.block_on(inner.commit())?
    }

    /// Rolls back.
    pub fn rollback(mut self) -> Result<()> {
        let inner = self.take()?;
        self.rt.block_on(inner.rollback())?
    }

    fn take(&mut self) -> Result<crate::Transaction> {
        if tokio::runtime::Handle::try_current().is_ok() {
            return Err(Error::InsideRuntime);
        }
        self.inner
            .take()
            .ok_or_else(|| Error::TransactionLost("the transaction has ended".into()))
    }
}

impl Drop for Transaction {
    fn drop(&mut self) {
        let Some(inner) = self.inner.take() else {
            return;
        };
        if tokio::runtime::Handle::try_current().is_ok() {
            // Cannot block here: the async transaction's drop rolls back in the background.
            drop(inner);
            return;
        }
        let _ = self.rt.block_on(inner.rollback());
    }
}
