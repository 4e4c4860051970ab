//! `skylite keygen` and `skylite token create|revoke|inspect`: making Ed25519 key pairs and the
//! tokens a server checks, in one command each.
//!
//! Environment variables: `SKYLITE_DATA_DIR` (as for `serve`), `SKYLITE_KEYGEN_OUT_DIR`, and for
//! `token create` `SKYLITE_TOKEN_KEY_FILE`, `SKYLITE_TOKEN_DB` (comma-separated),
//! `SKYLITE_TOKEN_READ_ONLY`, `SKYLITE_TOKEN_EXPIRES`, `SKYLITE_TOKEN_ADMIN` (prefixed with
//! `TOKEN_` so that a stray `SKYLITE_ADMIN` in a shell never mints admin tokens).

use std::io::Read as _;
use std::path::PathBuf;

use clap::{Args, Subcommand};
use skylite_auth::{
    decode_unverified, format_unix, generate_keypair, load_or_create_keypair, load_signing_key,
    mint, parse_lifetime, Level, RevocationList, TokenSpec,
};

#[derive(Args)]
pub struct KeygenArgs {
    /// Folder to write `jwt.key` (private, mode 0600) and `jwt.pub` (public) into.
    #[arg(long, env = "SKYLITE_KEYGEN_OUT_DIR", default_value = ".")]
    out_dir: PathBuf,
}

#[derive(Args)]
pub struct TokenArgs {
    #[command(subcommand)]
    command: TokenCommand,
}

#[derive(Subcommand)]
enum TokenCommand {
    /// Print a new token signed with the data folder's key (made if missing).
    Create(CreateArgs),
    /// Revoke one token (by its `jti`, or the token itself) in a data folder.
    Revoke(RevokeArgs),
    /// Print a token's header and claims (decoded, NOT verified).
    Inspect(InspectArgs),
}

#[derive(Args)]
struct CreateArgs {
    /// Data folder whose key signs the token (`.skylite/jwt.key`).
    #[arg(long, env = "SKYLITE_DATA_DIR", default_value = "./skylite-data")]
    data_dir: PathBuf,
    /// Sign with this private key (PKCS#8 PEM, e.g. from `skylite keygen`) instead.
    #[arg(long, env = "SKYLITE_TOKEN_KEY_FILE")]
    key_file: Option<PathBuf>,
    /// Database the token opens; repeat (or separate with commas) for several.
    #[arg(
        long = "db",
        env = "SKYLITE_TOKEN_DB",
        value_delimiter = ',',
        default_value = "default"
    )]
    databases: Vec<String>,
    /// Reads only.
    #[arg(long, env = "SKYLITE_TOKEN_READ_ONLY")]
    read_only: bool,
    /// Lifetime: 30d, 12h, 90m, 3600s, 2w, or never.
    #[arg(long, env = "SKYLITE_TOKEN_EXPIRES", default_value = "30d")]
    expires: String,
    /// The admin API and every database (read-write).
    #[arg(long, env = "SKYLITE_TOKEN_ADMIN", conflicts_with_all = ["read_only", "databases"])]
    admin: bool,
}

#[derive(Args)]
struct RevokeArgs {
    /// Data folder whose revocation list (`.skylite/revoked.json`) gets the token.
    #[arg(long, env = "SKYLITE_DATA_DIR", default_value = "./skylite-data")]
    data_dir: PathBuf,
    /// The token's `jti`, or the whole token.
    jti: String,
}

#[derive(Args)]
struct InspectArgs {
    /// The token (`-` reads it from standard input).
    token: String,
}

/// `skylite keygen`.
pub fn keygen(args: KeygenArgs) -> anyhow::Result<()> {
    let pair = generate_keypair(&args.out_dir)?;
    println!("private key: {}", pair.private_path.display());
    println!("public key: {}", pair.public_path.display());
    println!("public key (base64url): {}", pair.public_raw());
    eprintln!(
        "keep the private key secret. A server trusts tokens signed with it given\n  \
         skylite serve --auth-jwt-key-file {}\n\
         (sqld takes the same file, or the base64url line). Mint a token with\n  \
         skylite token create --key-file {} --db NAME",
        pair.public_path.display(),
        pair.private_path.display()
    );
    Ok(())
}

/// `skylite token ...`.
pub fn token(args: TokenArgs) -> anyhow::Result<()> {
    match args.command {
        TokenCommand::Create(a) => create(a),
        TokenCommand::Revoke(a) => revoke(a),
        TokenCommand::Inspect(a) => inspect(a),
    }
}

fn create(args: CreateArgs) -> anyhow::Result<()> {
    let lifetime = parse_lifetime(&args.expires).map_err(|e| anyhow::anyhow!("--expires: {e}"))?;
    let databases: Vec<String> = if args.admin {
        Vec::new()
    } else {
        args.databases
            .iter()
            .map(|d| d.trim().to_owned())
            .filter(|d| !d.is_empty())
            .collect()
    };
    let spec = TokenSpec {
        databases,
        read_only: args.read_only,
        admin: args.admin,
        lifetime,
    };
    let key = match &args.key_file {
        Some(path) => load_signing_key(path)?,
        None => {
            let pair = load_or_create_keypair(&args.data_dir)?;
            if pair.created {
                eprintln!(
                    "made a key pair in {} (the server trusts it)",
                    pair.private_path
                        .parent()
                        .unwrap_or(&args.data_dir)
                        .display()
                );
            }
            pair.signing
        }
    };
    let (token, claims) = mint(&key, &spec).map_err(anyhow::Error::msg)?;
    println!("{token}");
    let what = if claims.skylite_admin {
        "the admin API and every database".to_owned()
    } else {
        let level = match claims.a {
            Some(Level::ReadWrite) => "read-write",
            _ => "read-only",
        };
        let names: Vec<String> = spec.databases.iter().map(|d| format!("`{d}`")).collect();
        format!("{level} on {}", names.join(", "))
    };
    let until = match claims.exp {
        Some(exp) => format!("expires {}", format_unix(exp)),
        None => "never expires".to_owned(),
    };
    eprintln!(
        "token: {what}; {until}; jti {}",
        claims.jti.as_deref().unwrap_or("-")
    );
    Ok(())
}

fn revoke(args: RevokeArgs) -> anyhow::Result<()> {
    let arg = args.jti.trim();
    let (jti, exp) = if arg.contains('.') {
        let (_, payload) = decode_unverified(arg)?;
        let jti = payload["jti"]
            .as_str()
            .ok_or_else(|| {
                anyhow::anyhow!("this token has no `jti` claim, so it cannot be revoked on its own")
            })?
            .to_owned();
        (jti, payload["exp"].as_i64())
    } else {
        (arg.to_owned(), None)
    };
    if jti.is_empty() {
        return Err(anyhow::anyhow!(
            "give the token's jti (see `skylite token inspect`)"
        ));
    }
    let list = RevocationList::for_data_dir(&args.data_dir)?;
    let added = list.revoke(&jti, exp)?;
    if added {
        println!("revoked {jti}");
        eprintln!(
            "written to {}; a running server refuses the token within a second",
            list.path().display()
        );
    } else {
        println!("{jti} was already revoked");
    }
    Ok(())
}

fn inspect(args: InspectArgs) -> anyhow::Result<()> {
    let token = if args.token == "-" {
        let mut s = String::new();
        std::io::stdin()
            .read_to_string(&mut s)
            .map_err(|e| anyhow::anyhow!("cannot read standard input: {e}"))?;
        s
    } else {
        args.token
    };
    let (header, payload) = decode_unverified(&token)?;
    let out = serde_json::json!({"header": header, "payload": payload});
    println!("{}", serde_json::to_string_pretty(&out)?);
    eprintln!("(decoded only: the signature was NOT checked)");
    for claim in ["iat", "nbf", "exp"] {
        if let Some(t) = payload[claim].as_i64() {
            eprintln!("{claim}: {}", format_unix(t));
        }
    }
    Ok(())
}
