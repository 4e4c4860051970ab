//! `skylite db ...`: databases on a server through its admin API.
//!
//! | command | does |
//! |---|---|
//! | `skylite db import FILE [--name NAME] [--env-file .env]` | a local SQLite file or SQL dump → a new database ([`crate::transfer_cmd`]); without `--url`, a server on this machine is found through `--data-dir` ([`crate::local_server`]) |
//! | `skylite db export NAME -o FILE` | a consistent copy of the database as a file |
//! | `skylite db dump NAME` | the database as SQL text on standard output |
//! | `skylite db shell NAME` | the SQL shell on that database ([`crate::shell`]) |
//! | `skylite db env NAME [--write]` | the URL and a fresh token for an app, as `.env` lines |
//! | `skylite db create NAME [--max-size-bytes N ...]`, `list`, `destroy NAME` | manage databases |
//! | `skylite db set NAME --max-size-bytes N --statement-timeout-ms N --txn-timeout-ms N` | change a database's limits ([`crate::limits_cmd`]) |
//!
//! Every command takes `--url URL` (the server's base URL) and `--token TOKEN` (an admin
//! token), defaulting to the environment and `.env` ([`crate::remote`]).

use std::io::IsTerminal;
use std::path::{Path, PathBuf};

use clap::{Args, Subcommand};
use hyper::Method;

use crate::remote::{Server, ServerArgs};
use crate::transfer_cmd;

#[derive(Args)]
pub struct DbArgs {
    #[command(subcommand)]
    command: DbCommand,
}

#[derive(Subcommand)]
enum DbCommand {
    /// Copy a local SQLite database file (or an SQL text dump) into a new database on a server.
    Import(ImportArgs),
    /// Download a consistent copy of a database as an SQLite file.
    Export(ExportArgs),
    /// Print a database as SQL text (like `sqlite3 .dump`), streamed from the server.
    Dump(DumpArgs),
    /// Open the interactive SQL shell on a database of the server.
    Shell(DbShellArgs),
    /// Print (or append to .env) the URL and a fresh token for a database, for an app.
    Env(EnvArgs),
    /// Create an empty database (optionally with limits of its own).
    Create(CreateArgs),
    /// Change a database's limits (size, statement timeout, transaction timeout).
    Set(crate::limits_cmd::SetArgs),
    /// List the databases.
    List(ListArgs),
    /// Delete a database and its files.
    Destroy(DestroyArgs),
}

#[derive(Args)]
struct ImportArgs {
    /// The SQLite database file, or an SQL text dump (told apart by the SQLite header).
    file: PathBuf,
    /// Name of the new database (1-63 of a-z, 0-9, -, _). Default: made from the file name
    /// (`My App.db` -> `my-app`).
    #[arg(long)]
    name: Option<String>,
    /// Without --url: the data folder of a `skylite serve` on this machine, found through the
    /// file it writes there; an admin token is minted with the folder's key.
    #[arg(long, value_name = "DIR", default_value = "./skylite-data")]
    data_dir: PathBuf,
    /// Also write the new database's URL and a fresh read-write token (TURSO_*, LIBSQL_* and
    /// SKYLITE_* variables) to this .env file.
    #[arg(long, value_name = "FILE")]
    env_file: Option<PathBuf>,
    /// Have the server run the full `PRAGMA integrity_check` (every index against its table)
    /// instead of `quick_check`; much slower on large files.
    #[arg(long)]
    full_check: bool,
    #[command(flatten)]
    server: ServerArgs,
}

#[derive(Args)]
struct ExportArgs {
    /// The database.
    name: String,
    /// Output file (default: NAME.db).
    #[arg(short = 'o', long = "output", value_name = "FILE")]
    output: Option<PathBuf>,
    /// Replace the output file if it exists.
    #[arg(long)]
    force: bool,
    #[command(flatten)]
    server: ServerArgs,
}

#[derive(Args)]
struct DumpArgs {
    /// The database.
    name: String,
    /// Write to this file instead of standard output.
    #[arg(short = 'o', long = "output", value_name = "FILE")]
    output: Option<PathBuf>,
    #[command(flatten)]
    server: ServerArgs,
}

#[derive(Args)]
struct DbShellArgs {
    /// The database.
    name: String,
    #[command(flatten)]
    server: ServerArgs,
}

#[derive(Args)]
struct EnvArgs {
    /// The database.
    name: String,
    /// Append the lines to the .env file (replacing earlier lines that set the same variables).
    #[arg(long)]
    write: bool,
    /// The file --write writes.
    #[arg(long, default_value = ".env", value_name = "FILE")]
    env_file: PathBuf,
    /// A read-only token.
    #[arg(long)]
    read_only: bool,
    /// Token lifetime: 30d, 12h, 90m, 3600s, 2w, or never.
    #[arg(long, default_value = "30d")]
    expires: String,
    /// Mint the token locally with this data folder's key instead of asking the server
    /// (`POST /v1/admin/tokens`, which needs an admin token).
    #[arg(long, value_name = "DIR")]
    data_dir: Option<PathBuf>,
    #[command(flatten)]
    server: ServerArgs,
}

#[derive(Args)]
struct CreateArgs {
    /// The database.
    name: String,
    #[command(flatten)]
    limits: crate::limits_cmd::LimitArgs,
    #[command(flatten)]
    server: ServerArgs,
}

#[derive(Args)]
struct ListArgs {
    /// Print the server's JSON answer.
    #[arg(long)]
    json: bool,
    #[command(flatten)]
    server: ServerArgs,
}

#[derive(Args)]
struct DestroyArgs {
    /// The database.
    name: String,
    /// Do not ask for confirmation.
    #[arg(long, short = 'y')]
    yes: bool,
    #[command(flatten)]
    server: ServerArgs,
}

/// `skylite db ...`.
pub fn run(args: DbArgs, rt: &tokio::runtime::Runtime) -> anyhow::Result<()> {
    match args.command {
        DbCommand::Import(a) => {
            let name = match &a.name {
                Some(name) => name.clone(),
                None => name_from_file(&a.file)?,
            };
            let (target, local_dir) = import_target(&a)?;
            rt.block_on(transfer_cmd::import(&a.file, &name, &target, a.full_check))?;
            match a.env_file {
                Some(env_file) => rt.block_on(env(EnvArgs {
                    name,
                    write: true,
                    env_file,
                    read_only: false,
                    expires: "30d".into(),
                    data_dir: local_dir,
                    server: ServerArgs {
                        url: Some(target.url),
                        token: target.token,
                    },
                })),
                None => Ok(()),
            }
        }
        DbCommand::Export(a) => {
            let target = a.server.resolve()?;
            let output = a
                .output
                .unwrap_or_else(|| PathBuf::from(format!("{}.db", a.name)));
            rt.block_on(transfer_cmd::export(&a.name, &output, a.force, &target))
        }
        DbCommand::Dump(a) => {
            let target = a.server.resolve()?;
            rt.block_on(transfer_cmd::dump(&a.name, a.output.as_deref(), &target))
        }
        DbCommand::Shell(a) => {
            let mut target = a.server.resolve()?;
            let server = Server::new(&target)?;
            target.url = server.database_url(&a.name);
            crate::shell::run_target(target, rt)
        }
        DbCommand::Env(a) => rt.block_on(env(a)),
        DbCommand::Set(a) => rt.block_on(crate::limits_cmd::set(a)),
        DbCommand::Create(a) => rt.block_on(async {
            let limits = a.limits.to_json().map_err(anyhow::Error::msg)?;
            let server = Server::new(&a.server.resolve()?)?;
            server
                .json(
                    Method::POST,
                    "/v1/admin/databases",
                    Some(serde_json::json!({ "name": a.name, "limits": limits })),
                )
                .await
                .map_err(|e| e.doing(format_args!("cannot create database `{}`", a.name)))?;
            println!("created database `{}` on {}", a.name, server.base);
            Ok(())
        }),
        DbCommand::List(a) => rt.block_on(list(a)),
        DbCommand::Destroy(a) => rt.block_on(destroy(a)),
    }
}

/// Where `db import` goes: `--url` (and the token from the flags or the environment) if given;
/// else a server running on `--data-dir` on this machine, with an admin token minted from the
/// folder's key ([`crate::local_server`]); else the URL and token from the environment.
/// Returns the data folder too when the server is local.
fn import_target(args: &ImportArgs) -> anyhow::Result<(crate::remote::Target, Option<PathBuf>)> {
    if args.server.url.is_none() {
        if let Some(mut target) =
            crate::local_server::discover(&args.data_dir).map_err(anyhow::Error::msg)?
        {
            if let Some(token) = args.server.token.clone() {
                target.token = Some(token);
            }
            eprintln!(
                "using the local server {} (data folder {})",
                target.url,
                args.data_dir.display()
            );
            return Ok((target, Some(args.data_dir.clone())));
        }
    }
    let target = args.server.resolve().map_err(|e| {
        anyhow::anyhow!(
            "{e}; or run it on the machine of a `skylite serve` whose data folder is \
             --data-dir (default ./skylite-data)"
        )
    })?;
    Ok((target, None))
}

/// A database name made from a file name: lowercase, runs of other characters as `-`, at most
/// 63 characters (`My App.db` -> `my-app`).
fn name_from_file(file: &Path) -> anyhow::Result<String> {
    let stem = file
        .file_stem()
        .map(|s| s.to_string_lossy().to_lowercase())
        .unwrap_or_default();
    let mut name = String::new();
    for c in stem.chars() {
        if c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_' || c == '-' {
            name.push(c);
        } else if !name.ends_with('-') {
            name.push('-');
        }
    }
    let name: String = name
        .trim_matches(|c| c == '-' || c == '_')
        .chars()
        .take(63)
        .collect();
    if name.is_empty() {
        anyhow::bail!(
            "cannot make a database name from {}: pass --name NAME",
            file.display()
        );
    }
    Ok(name)
}

async fn list(args: ListArgs) -> anyhow::Result<()> {
    let server = Server::new(&args.server.resolve()?)?;
    let answer = server
        .json(Method::GET, "/v1/admin/databases", None)
        .await
        .map_err(|e| e.doing("cannot list the databases"))?;
    if args.json {
        println!("{answer}");
        return Ok(());
    }
    let empty = Vec::new();
    let dbs = answer["databases"].as_array().unwrap_or(&empty);
    let width = dbs
        .iter()
        .filter_map(|d| d["name"].as_str())
        .map(str::len)
        .max()
        .unwrap_or(4)
        .max(4);
    println!("{:<width$}  {:>12}  {:>6}", "NAME", "SIZE", "TABLES");
    for db in dbs {
        println!(
            "{:<width$}  {:>12}  {:>6}",
            db["name"].as_str().unwrap_or("?"),
            indicatif::HumanBytes(db["size_bytes"].as_u64().unwrap_or(0)).to_string(),
            db["tables"]
                .as_u64()
                .map(|n| n.to_string())
                .unwrap_or_else(|| "-".into()),
        );
    }
    Ok(())
}

async fn destroy(args: DestroyArgs) -> anyhow::Result<()> {
    let server = Server::new(&args.server.resolve()?)?;
    if !args.yes && std::io::stdin().is_terminal() {
        eprint!(
            "delete database `{}` on {} and all its data? type its name to confirm: ",
            args.name, server.base
        );
        if transfer_cmd::read_answer() != args.name {
            return Err(anyhow::anyhow!("not confirmed; nothing was deleted"));
        }
    }
    server
        .json(
            Method::DELETE,
            &format!("/v1/admin/databases/{}", args.name),
            None,
        )
        .await
        .map_err(|e| e.doing(format_args!("cannot destroy database `{}`", args.name)))?;
    println!("destroyed database `{}` on {}", args.name, server.base);
    Ok(())
}

/// The variables `db env` prints, URL first.
const ENV_VARS: [(&str, &str); 3] = [
    ("SKYLITE_URL", "SKYLITE_AUTH_TOKEN"),
    ("TURSO_DATABASE_URL", "TURSO_AUTH_TOKEN"),
    ("LIBSQL_URL", "LIBSQL_AUTH_TOKEN"),
];

async fn env(args: EnvArgs) -> anyhow::Result<()> {
    let target = args.server.resolve()?;
    let server = Server::new(&target)?;
    let url = server.database_url(&args.name);
    let (token, about) = match &args.data_dir {
        Some(dir) => {
            let (token, exp) = mint_locally(dir, &args)?;
            (Some(token), exp)
        }
        None => {
            server
                .json(
                    Method::GET,
                    &format!("/v1/admin/databases/{}", args.name),
                    None,
                )
                .await
                .map_err(|e| e.doing(format_args!("cannot look up database `{}`", args.name)))?;
            let answer = server
                .json(
                    Method::POST,
                    "/v1/admin/tokens",
                    Some(serde_json::json!({
                        "db": args.name,
                        "read_only": args.read_only,
                        "expires": args.expires,
                    })),
                )
                .await;
            match answer {
                Ok(v) => {
                    let token = v["token"]
                        .as_str()
                        .ok_or_else(|| anyhow::anyhow!("the server's token answer has no token"))?
                        .to_owned();
                    (Some(token), expiry_text(v["exp"].as_i64()))
                }
                Err(e) if e.code.as_deref() == Some("AUTH_DISABLED") => {
                    eprintln!("note: the server runs without authentication; no token is needed");
                    (None, String::new())
                }
                Err(e) => {
                    return Err(e
                        .doing("cannot mint a token (or mint one locally with --data-dir DIR)")
                        .into())
                }
            }
        }
    };
    let mut text = format!(
        "# skylite database `{}` on {}{}\n",
        args.name,
        server.base,
        if token.is_some() {
            format!(
                ", {} token, {about}",
                if args.read_only {
                    "read-only"
                } else {
                    "read-write"
                }
            )
        } else {
            String::new()
        }
    );
    for (url_var, token_var) in ENV_VARS {
        text.push_str(&format!("{url_var}={url}\n"));
        if let Some(t) = &token {
            text.push_str(&format!("{token_var}={t}\n"));
        }
    }
    if args.write {
        write_env_file(&args.env_file, &text)?;
        eprintln!(
            "wrote {} to {} (SKYLITE_*, TURSO_* and LIBSQL_* variables)",
            if token.is_some() {
                "the URL and a token"
            } else {
                "the URL"
            },
            args.env_file.display()
        );
    } else {
        print!("{text}");
    }
    Ok(())
}

fn expiry_text(exp: Option<i64>) -> String {
    match exp {
        Some(t) => format!("expires {}", skylite_auth::format_unix(t)),
        None => "never expires".into(),
    }
}

fn mint_locally(dir: &Path, args: &EnvArgs) -> anyhow::Result<(String, String)> {
    let key_path = dir.join(".skylite").join("jwt.key");
    if !key_path.is_file() {
        return Err(anyhow::anyhow!(
            "{} has no signing key ({} is missing): is it the server's data folder?",
            dir.display(),
            key_path.display()
        ));
    }
    let key = skylite_auth::load_signing_key(&key_path)?;
    let lifetime = skylite_auth::parse_lifetime(&args.expires)
        .map_err(|e| anyhow::anyhow!("--expires: {e}"))?;
    let spec = skylite_auth::TokenSpec {
        databases: vec![args.name.clone()],
        read_only: args.read_only,
        admin: false,
        lifetime,
    };
    let (token, claims) = skylite_auth::mint(&key, &spec).map_err(anyhow::Error::msg)?;
    Ok((token, expiry_text(claims.exp)))
}

/// Appends `block` to the .env file, dropping earlier lines that set the same variables;
/// written to a temporary file and renamed, so the file is never half-written.
fn write_env_file(path: &Path, block: &str) -> anyhow::Result<()> {
    let old = match std::fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => String::new(),
        Err(e) => return Err(anyhow::anyhow!("cannot read {}: {e}", path.display())),
    };
    let ours = |line: &str| {
        let l = line.trim_start();
        let l = l.strip_prefix("export ").unwrap_or(l).trim_start();
        ENV_VARS.iter().any(|(u, t)| {
            [u, t].iter().any(|k| {
                l.strip_prefix(**k)
                    .is_some_and(|rest| rest.trim_start().starts_with('='))
            })
        })
    };
    let mut text: String = old
        .lines()
        .filter(|l| !ours(l))
        .map(|l| format!("{l}\n"))
        .collect();
    if !text.is_empty() && !text.ends_with("\n\n") {
        text.push('\n');
    }
    text.push_str(block);
    let dir = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_owned(),
        _ => PathBuf::from("."),
    };
    let mut tmp = tempfile::Builder::new()
        .prefix(".env-skylite-")
        .tempfile_in(&dir)
        .map_err(|e| anyhow::anyhow!("cannot write in {}: {e}", dir.display()))?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(path)
            .map(|m| m.permissions().mode() & 0o777)
            .unwrap_or(0o600);
        let _ = std::fs::set_permissions(tmp.path(), std::fs::Permissions::from_mode(mode));
    }
    std::io::Write::write_all(&mut tmp, text.as_bytes())
        .map_err(|e| anyhow::anyhow!("cannot write {}: {e}", path.display()))?;
    tmp.persist(path)
        .map_err(|e| anyhow::anyhow!("cannot write {}: {}", path.display(), e.error))?;
    Ok(())
}
