//! Stand-ins for [`crate::local`] in a build without the `local` feature (no engine, no bundled
//! libSQL C): opening a local file or `:memory:` is a configuration error, and the local types
//! are uninhabited, so the code that handles both backends compiles unchanged and its local
//! arms can never run.

use skylite_proto::{StreamRequest, StreamResult};

use crate::error::{Error, Result};

/// No value of this type exists without the `local` feature.
#[derive(Debug)]
pub(crate) enum LocalDb {}

/// Holds a [`LocalDb`], so no value of it exists either (an `Arc` keeps the callers' code free
/// of unreachable-code warnings).
pub(crate) struct LocalStream(std::sync::Arc<LocalDb>);

/// The error every local URL gets.
fn not_built() -> Error {
    Error::Config(
        "local files (file:..., a path, :memory:) need skylite-client's `local` feature; this \
         build has only `remote` (http://, https://, libsql://)"
            .into(),
    )
}

impl LocalDb {
    pub(crate) fn open(_path: &std::path::Path) -> Result<std::sync::Arc<LocalDb>> {
        Err(not_built())
    }

    pub(crate) fn open_private() -> Result<std::sync::Arc<LocalDb>> {
        Err(not_built())
    }
}

/// Runs `job` here and now: without local databases there is no blocking work to move off the
/// runtime (the only jobs are the refusals above).
pub(crate) async fn on_worker<T: Send + 'static>(
    job: impl FnOnce() -> T + Send + 'static,
) -> Result<T> {
    Ok(job())
}

impl LocalStream {
    pub(crate) fn new(db: std::sync::Arc<LocalDb>) -> LocalStream {
        LocalStream(db)
    }

    pub(crate) async fn run(&mut self, _reqs: Vec<StreamRequest>) -> Result<Vec<StreamResult>> {
        match *self.0 {}
    }

    pub(crate) fn is_usable(&self) -> bool {
        match *self.0 {}
    }

    pub(crate) fn in_transaction(&self) -> bool {
        match *self.0 {}
    }

    pub(crate) fn close_in_background(&mut self) {
        match *self.0 {}
    }
}
