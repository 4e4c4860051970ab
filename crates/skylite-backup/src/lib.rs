//! Continuous backup of skylite databases to S3-compatible object storage, and restore.
//!
//! `store` builds the object store from `s3://BUCKET/PREFIX` and the `AWS_*` variables and
//! checks that it honours create-only writes; `testing` (feature `test-support`) runs a real
//! S3 server for the test suites.

pub mod store;
#[cfg(feature = "test-support")]
pub mod testing;
