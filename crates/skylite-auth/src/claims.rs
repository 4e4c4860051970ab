//! The claims of a token and what they allow: sqld's `id`, `a` and `p`, the registered `exp`,
//! `nbf`, `iat`, `jti`, and skylite's `skylite_admin`; [`Claims::authorize`] turns them into a
//! [`Grant`] for one database, or an [`AuthError`] that says why not.

use serde::{Deserialize, Deserializer, Serialize};

use crate::error::AuthError;

/// An access level as sqld writes it in `a` and as the keys of `p`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Level {
    /// Read only.
    #[serde(rename = "ro")]
    ReadOnly,
    /// Read and write.
    #[serde(rename = "rw")]
    ReadWrite,
    /// sqld's "read only, also when attached to another database"; here simply read only.
    #[serde(rename = "roa")]
    ReadOnlyAttach,
}

impl Level {
    fn grant(self) -> Grant {
        match self {
            Level::ReadWrite => Grant::ReadWrite,
            Level::ReadOnly | Level::ReadOnlyAttach => Grant::ReadOnly,
        }
    }
}

/// One permission list of `p`: the databases (sqld: namespaces) it names.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Scope {
    /// Database names.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ns: Option<Vec<String>>,
    /// sqld's group tags (matched against its `LIBSQL_GID`); skylite has no groups, so a tag
    /// grants nothing here. Kept so that such tokens still parse.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tags: Option<Vec<String>>,
}

impl Scope {
    /// A scope naming these databases.
    pub fn databases<I: IntoIterator<Item = S>, S: Into<String>>(names: I) -> Scope {
        Scope {
            ns: Some(names.into_iter().map(Into::into).collect()),
            tags: None,
        }
    }

    fn contains(&self, db: &str) -> bool {
        self.ns
            .as_ref()
            .is_some_and(|ns| ns.iter().any(|n| n == db))
    }

    fn names(&self) -> impl Iterator<Item = &str> {
        self.ns.iter().flatten().map(String::as_str)
    }
}

/// The `p` claim: per-database permission lists, exactly sqld's shape:
/// `{"ro": {"ns": [...]}, "rw": {"ns": [...]}, "roa": ..., "rwa": ..., "ddl": ...}`.
/// Unknown keys are ignored, as sqld does.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Permissions {
    /// Read only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ro: Option<Scope>,
    /// Read and write.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rw: Option<Scope>,
    /// sqld: read only, also as an attached database. Here: read only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub roa: Option<Scope>,
    /// sqld: read-write, and attachable. Here: read-write.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rwa: Option<Scope>,
    /// sqld: DDL on shared-schema databases, which implies write. Here: read-write.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ddl: Option<Scope>,
}

impl Permissions {
    fn writable(&self) -> [&Option<Scope>; 3] {
        [&self.rw, &self.rwa, &self.ddl]
    }

    fn readable(&self) -> [&Option<Scope>; 2] {
        [&self.ro, &self.roa]
    }

    /// The best grant `p` gives on `db`, if any.
    pub fn grant_for(&self, db: &str) -> Option<Grant> {
        let has = |s: &Option<Scope>| s.as_ref().is_some_and(|s| s.contains(db));
        if self.writable().into_iter().any(has) {
            Some(Grant::ReadWrite)
        } else if self.readable().into_iter().any(has) {
            Some(Grant::ReadOnly)
        } else {
            None
        }
    }

    /// Every database named, for messages (sorted, without duplicates).
    pub fn database_names(&self) -> Vec<&str> {
        let mut names: Vec<&str> = self
            .writable()
            .into_iter()
            .chain(self.readable())
            .flatten()
            .flat_map(Scope::names)
            .collect();
        names.sort_unstable();
        names.dedup();
        names
    }
}

/// What a request wants to do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// Open a database and run reads (and, if the grant allows, writes). Ask for this when the
    /// statements are not known yet, then enforce the returned [`Grant`].
    Read,
    /// Write to a database (refused to read-only tokens).
    Write,
    /// Use the admin API (create, list, delete, fork databases). The database name is ignored.
    Admin,
}

/// What a token may do on the database it was authorized for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Grant {
    /// Reads only: run the session read-only (the engine's authorizer refuses writes).
    ReadOnly,
    /// Reads and writes.
    ReadWrite,
}

impl Grant {
    /// `true` for [`Grant::ReadWrite`].
    pub fn can_write(self) -> bool {
        self == Grant::ReadWrite
    }
}

/// The payload of a token.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Claims {
    /// sqld's database (namespace) of a single-database token.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    /// sqld's access level: `ro` caps everything the token grants to reads.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub a: Option<Level>,
    /// sqld's per-database permissions; when present it alone says which databases are granted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub p: Option<Permissions>,
    /// Expiry, seconds since 1970 (absent: never expires).
    #[serde(
        default,
        deserialize_with = "numeric_date",
        skip_serializing_if = "Option::is_none"
    )]
    pub exp: Option<i64>,
    /// Not valid before, seconds since 1970.
    #[serde(
        default,
        deserialize_with = "numeric_date",
        skip_serializing_if = "Option::is_none"
    )]
    pub nbf: Option<i64>,
    /// Issued at, seconds since 1970 (informational).
    #[serde(
        default,
        deserialize_with = "numeric_date",
        skip_serializing_if = "Option::is_none"
    )]
    pub iat: Option<i64>,
    /// Token id: for audit logs and revocation.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub jti: Option<String>,
    /// skylite's admin marker: the admin API and every database.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub skylite_admin: bool,
}

/// A JWT NumericDate: an integer or (RFC 7519 allows it) a fractional number of seconds.
fn numeric_date<'de, D: Deserializer<'de>>(de: D) -> Result<Option<i64>, D::Error> {
    let value = Option::<serde_json::Number>::deserialize(de)?;
    let Some(n) = value else { return Ok(None) };
    if let Some(i) = n.as_i64() {
        return Ok(Some(i));
    }
    match n.as_f64() {
        Some(f) if f.is_finite() && f.abs() < 1e15 => Ok(Some(f.floor() as i64)),
        _ => Err(serde::de::Error::custom(format!("date {n} out of range"))),
    }
}

impl Claims {
    /// Does this token have any claim that scopes it (`id`, `p` or `skylite_admin`)? A token
    /// without one is sqld's "full access" token, refused unless legacy full access is on.
    pub fn is_scoped(&self) -> bool {
        self.id.is_some() || self.p.is_some() || self.skylite_admin
    }

    /// `true` when `a` caps the token to reads.
    pub fn is_read_capped(&self) -> bool {
        matches!(self.a, Some(Level::ReadOnly | Level::ReadOnlyAttach))
    }

    /// Decides whether this token may do `want` on database `db`.
    ///
    /// The rules, in order:
    /// 1. [`Access::Admin`] needs `skylite_admin: true` and no `"a": "ro"`.
    /// 2. `skylite_admin: true` grants every database.
    /// 3. Else `p`, when present, alone decides (sqld ignores `id` next to `p`; so do we).
    /// 4. Else `id` grants that one database.
    /// 5. Else (no `id`, `p` or admin marker) the token grants nothing, unless
    ///    `legacy_full_access`, when it grants every database as sqld does.
    /// 6. `"a": "ro"` (or `roa`) caps whatever was granted to reads, and then a [`Access::Write`]
    ///    on a read-only grant is refused.
    pub fn authorize(
        &self,
        db: &str,
        want: Access,
        legacy_full_access: bool,
    ) -> Result<Grant, AuthError> {
        if want == Access::Admin {
            return match (self.skylite_admin, self.is_read_capped()) {
                (true, false) => Ok(Grant::ReadWrite),
                (true, true) => Err(AuthError::ReadOnlyAdmin),
                (false, _) => Err(AuthError::NotAdmin),
            };
        }
        let granted = if self.skylite_admin {
            Grant::ReadWrite
        } else if let Some(p) = &self.p {
            p.grant_for(db).ok_or_else(|| {
                let names = p.database_names();
                if let (Some(id), [only]) = (&self.id, names.as_slice()) {
                    if id == only {
                        return AuthError::WrongDatabase {
                            token_db: id.clone(),
                            db: db.to_owned(),
                        };
                    }
                }
                AuthError::DatabaseNotGranted {
                    db: db.to_owned(),
                    granted: if names.is_empty() {
                        "no database".to_owned()
                    } else {
                        names
                            .iter()
                            .map(|n| format!("`{n}`"))
                            .collect::<Vec<_>>()
                            .join(", ")
                    },
                }
            })?
        } else if let Some(id) = &self.id {
            if id != db {
                return Err(AuthError::WrongDatabase {
                    token_db: id.clone(),
                    db: db.to_owned(),
                });
            }
            self.a.map_or(Grant::ReadWrite, Level::grant)
        } else if legacy_full_access {
            self.a.map_or(Grant::ReadWrite, Level::grant)
        } else {
            return Err(AuthError::Unscoped);
        };
        let grant = if self.is_read_capped() {
            Grant::ReadOnly
        } else {
            granted
        };
        if want == Access::Write && grant == Grant::ReadOnly {
            return Err(AuthError::ReadOnly(db.to_owned()));
        }
        Ok(grant)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn claims(v: serde_json::Value) -> Claims {
        serde_json::from_value(v).unwrap()
    }

    #[test]
    fn id_grants_one_database() {
        let c = claims(json!({"id": "app"}));
        assert_eq!(
            c.authorize("app", Access::Write, false),
            Ok(Grant::ReadWrite)
        );
        let err = c.authorize("other", Access::Read, false).unwrap_err();
        assert_eq!(err.to_string(), "token is for database `app`, not `other`");
        assert_eq!(err.status(), 403);
        assert_eq!(
            c.authorize("app", Access::Admin, false),
            Err(AuthError::NotAdmin)
        );
    }

    #[test]
    fn read_only_cannot_write() {
        let c = claims(json!({"id": "app", "a": "ro"}));
        assert_eq!(c.authorize("app", Access::Read, false), Ok(Grant::ReadOnly));
        let err = c.authorize("app", Access::Write, false).unwrap_err();
        assert_eq!(
            err.to_string(),
            "read-only token cannot write (database `app`)"
        );
        assert_eq!(err.status(), 403);
        let c = claims(json!({"id": "app", "a": "roa"}));
        assert_eq!(c.authorize("app", Access::Read, false), Ok(Grant::ReadOnly));
    }

    #[test]
    fn p_grants_per_database_and_overrides_id() {
        let c = claims(json!({
            "id": "ignored",
            "p": {"rw": {"ns": ["a"]}, "ro": {"ns": ["b", "a"]}, "roa": {"ns": ["c"]},
                  "rwa": {"ns": ["d"]}, "ddl": {"ns": ["e"]}, "future": {"ns": ["f"]}}
        }));
        assert_eq!(c.authorize("a", Access::Write, false), Ok(Grant::ReadWrite));
        assert_eq!(c.authorize("b", Access::Read, false), Ok(Grant::ReadOnly));
        assert!(matches!(
            c.authorize("b", Access::Write, false),
            Err(AuthError::ReadOnly(_))
        ));
        assert_eq!(c.authorize("c", Access::Read, false), Ok(Grant::ReadOnly));
        assert_eq!(c.authorize("d", Access::Write, false), Ok(Grant::ReadWrite));
        assert_eq!(c.authorize("e", Access::Write, false), Ok(Grant::ReadWrite));
        let err = c.authorize("ignored", Access::Read, false).unwrap_err();
        assert_eq!(
            err.to_string(),
            "token does not grant database `ignored` (it grants `a`, `b`, `c`, `d`, `e`)"
        );
        assert!(c.authorize("f", Access::Read, true).is_err());
    }

    #[test]
    fn a_ro_caps_p() {
        let c = claims(json!({"a": "ro", "p": {"rw": {"ns": ["a"]}}}));
        assert_eq!(c.authorize("a", Access::Read, false), Ok(Grant::ReadOnly));
        assert!(c.authorize("a", Access::Write, false).is_err());
    }

    #[test]
    fn tags_grant_nothing() {
        let c = claims(json!({"p": {"rw": {"tags": ["group"]}}}));
        let err = c.authorize("a", Access::Read, false).unwrap_err();
        assert_eq!(
            err.to_string(),
            "token does not grant database `a` (it grants no database)"
        );
    }

    #[test]
    fn admin_grants_everything() {
        let c = claims(json!({"skylite_admin": true}));
        assert_eq!(c.authorize("x", Access::Admin, false), Ok(Grant::ReadWrite));
        assert_eq!(c.authorize("y", Access::Write, false), Ok(Grant::ReadWrite));
        let c = claims(json!({"skylite_admin": true, "a": "ro"}));
        assert_eq!(
            c.authorize("x", Access::Admin, false),
            Err(AuthError::ReadOnlyAdmin)
        );
        assert_eq!(c.authorize("y", Access::Read, false), Ok(Grant::ReadOnly));
    }

    #[test]
    fn unscoped_tokens_get_nothing_unless_legacy() {
        for v in [json!({}), json!({"a": "rw"}), json!({"exp": 1, "jti": "x"})] {
            let c = claims(v);
            let err = c.authorize("db", Access::Read, false).unwrap_err();
            assert_eq!(err, AuthError::Unscoped);
            assert_eq!(err.status(), 403);
            assert!(err.to_string().contains("--auth-legacy-full-access"));
            assert_eq!(c.authorize("db", Access::Write, true), Ok(Grant::ReadWrite));
            assert_eq!(
                c.authorize("db", Access::Admin, true),
                Err(AuthError::NotAdmin)
            );
        }
        let c = claims(json!({"a": "ro"}));
        assert_eq!(c.authorize("db", Access::Read, true), Ok(Grant::ReadOnly));
        assert!(c.authorize("db", Access::Write, true).is_err());
    }

    #[test]
    fn dates_parse_as_numbers() {
        let c = claims(json!({"exp": 1700000000, "nbf": 1.5e9, "iat": null}));
        assert_eq!(c.exp, Some(1_700_000_000));
        assert_eq!(c.nbf, Some(1_500_000_000));
        assert_eq!(c.iat, None);
        assert!(serde_json::from_value::<Claims>(json!({"exp": "soon"})).is_err());
        assert!(serde_json::from_value::<Claims>(json!({"a": "admin"})).is_err());
    }

    #[test]
    fn serializes_compactly() {
        let c = Claims {
            id: Some("app".into()),
            a: Some(Level::ReadOnly),
            ..Claims::default()
        };
        assert_eq!(
            serde_json::to_value(&c).unwrap(),
            json!({"id": "app", "a": "ro"})
        );
    }
}
