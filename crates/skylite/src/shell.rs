//! `skylite shell [URL]` (and `skylite db shell NAME`): an SQL shell on a local file
//! (`file:app.db` or a path), a skylite server or any Hrana server, through skylite-client.
//!
//! Interactive when standard input is a terminal: line editing and history (rustyline; the
//! history file is `$SKYLITE_HISTORY`, else `~/.skylite_history`), statements spanning lines
//! until SQLite says they are complete, Ctrl-C to drop the statement being typed, Ctrl-D or
//! `.quit` to leave. Otherwise it reads SQL from standard input, prints the results on standard
//! output and stops with a non-zero exit status at the first error, so it scripts well.
//!
//! Dot-commands: `.tables`, `.schema [TABLE]`, `.dump`, `.mode table|json|csv|line`,
//! `.read FILE`, `.timer on|off`, `.help`, `.quit`. `BEGIN` ... `COMMIT`/`ROLLBACK` run on one
//! stream (an interactive transaction). `.dump` asks a skylite server's dump endpoint when the
//! token is an admin's, and otherwise writes the dump itself from `sqlite_schema` and `SELECT`s
//! inside one read transaction (the data of virtual tables' shadow tables is not dumped: the
//! virtual table's own rows are, as `INSERT`s).

use std::io::{BufRead, IsTerminal, Write};
use std::path::PathBuf;
use std::time::Instant;

use anyhow::Context;
use clap::Args;
use skylite_client::{Client, Rows, Transaction, TransactionBehavior, Value};
use skylite_engine::dump::quote_ident;
use skylite_engine::sql_text::{first_word, is_blank, is_complete, txn_keyword, TxnKeyword};

use crate::remote::{Failure, Server, ServerArgs, ServerError, Target};
use crate::sql_split::split_complete;

#[derive(Args)]
pub struct ShellArgs {
    /// Database URL: file:app.db or a path, http://host:8080/db/app, libsql://..., https://...
    /// (default: --url, or SKYLITE_URL / TURSO_DATABASE_URL / LIBSQL_URL from the environment
    /// or .env).
    #[arg(value_name = "URL")]
    target: Option<String>,
    #[command(flatten)]
    server: ServerArgs,
}

/// `skylite shell`.
pub fn run(args: ShellArgs, rt: &tokio::runtime::Runtime) -> anyhow::Result<()> {
    let mut server = args.server;
    if let Some(t) = args.target {
        if server.url.is_some() {
            anyhow::bail!("give the URL once: as the argument or as --url");
        }
        server.url = Some(t);
    }
    run_target(server.resolve()?, rt)
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Mode {
    Table,
    Json,
    Csv,
    Line,
}

struct Shell<'a> {
    rt: &'a tokio::runtime::Runtime,
    client: Client,
    target: Target,
    tx: Option<Transaction>,
    mode: Mode,
    timer: bool,
    /// The kind of the last error the client reported (for the exit code of a script).
    last_failure: Option<Failure>,
}

enum Flow {
    Go,
    Quit,
}

/// Runs the shell on a resolved URL and token.
pub fn run_target(target: Target, rt: &tokio::runtime::Runtime) -> anyhow::Result<()> {
    let mut config = skylite_client::Config::new(target.url.clone());
    if let Some(t) = &target.token {
        config = config.auth_token(t.clone());
    }
    if let Some(ca) = &target.ca_file {
        config = config.ca_file(ca.clone());
    }
    let client = rt
        .block_on(Client::open(config))
        .with_context(|| format!("cannot open {}", target.url))?;
    let interactive = std::io::stdin().is_terminal();
    let mut shell = Shell {
        rt,
        client,
        target,
        tx: None,
        mode: Mode::Table,
        timer: false,
        last_failure: None,
    };
    let result = if interactive {
        shell.interactive_loop()
    } else {
        let stdin = std::io::stdin();
        shell.script(stdin.lock(), "standard input")
    };
    if let Some(tx) = shell.tx.take() {
        let _ = rt.block_on(tx.rollback());
        if interactive {
            eprintln!("the open transaction was rolled back");
        }
    }
    // A script that stopped on a client error exits with that error's kind (cannot connect,
    // token refused, not found); any other failure is a plain error.
    result.map_err(|text| match shell.last_failure {
        Some(failure) => ServerError::new(text, failure).into(),
        None => anyhow::Error::msg(text),
    })
}

fn history_path() -> Option<PathBuf> {
    if let Some(p) = std::env::var_os("SKYLITE_HISTORY") {
        return Some(PathBuf::from(p));
    }
    std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".skylite_history"))
}

impl Shell<'_> {
    fn interactive_loop(&mut self) -> Result<(), String> {
        use rustyline::error::ReadlineError;
        let mut editor = rustyline::DefaultEditor::new()
            .map_err(|e| format!("cannot start the line editor: {e}"))?;
        let history = history_path();
        if let Some(h) = &history {
            let _ = editor.load_history(h);
        }
        println!(
            "skylite {} shell on {}\nEnter \".help\" for usage hints.",
            env!("CARGO_PKG_VERSION"),
            self.target.url
        );
        let mut buf = String::new();
        loop {
            let prompt = if is_blank(&buf) {
                "skylite> "
            } else {
                "   ...> "
            };
            match editor.readline(prompt) {
                Ok(line) => {
                    if !line.trim().is_empty() {
                        let _ = editor.add_history_entry(line.as_str());
                    }
                    match self.feed(&mut buf, &line) {
                        Ok(Flow::Quit) => break,
                        Ok(Flow::Go) => {}
                        Err(e) => eprintln!("error: {e}"),
                    }
                }
                Err(ReadlineError::Interrupted) => {
                    buf.clear();
                }
                Err(ReadlineError::Eof) => break,
                Err(e) => return Err(format!("cannot read the terminal: {e}")),
            }
        }
        if let Some(h) = &history {
            let _ = editor.save_history(h);
        }
        Ok(())
    }

    /// Runs SQL and dot-commands from a reader; the first error stops it.
    fn script(&mut self, input: impl BufRead, what: &str) -> Result<(), String> {
        let mut buf = String::new();
        for (n, line) in input.lines().enumerate() {
            let line = line.map_err(|e| format!("cannot read {what}: {e}"))?;
            match self.feed(&mut buf, &line) {
                Ok(Flow::Quit) => return Ok(()),
                Ok(Flow::Go) => {}
                Err(e) => return Err(format!("{what} line {}: {e}", n + 1)),
            }
        }
        if !is_blank(&buf) {
            self.run_sql(&std::mem::take(&mut buf))
                .map_err(|e| format!("{what}, last statement: {e}"))?;
        }
        Ok(())
    }

    /// Takes one line of input.
    fn feed(&mut self, buf: &mut String, line: &str) -> Result<Flow, String> {
        if is_blank(buf) && line.trim_start().starts_with('.') {
            buf.clear();
            return self.dot(line.trim());
        }
        buf.push_str(line);
        buf.push('\n');
        if is_complete(buf) {
            let text = std::mem::take(buf);
            self.run_sql(&text)?;
        }
        Ok(Flow::Go)
    }

    fn run_sql(&mut self, text: &str) -> Result<(), String> {
        for stmt in split_complete(text) {
            let started = Instant::now();
            let rows = self.exec(&stmt)?;
            if let Some(rows) = rows {
                if !rows.columns().is_empty() {
                    self.print(&rows)?;
                }
            }
            if self.timer {
                println!("Run Time: real {:.3}", started.elapsed().as_secs_f64());
            }
        }
        Ok(())
    }

    /// Runs one statement, on the open transaction if there is one.
    fn exec(&mut self, stmt: &str) -> Result<Option<Rows>, String> {
        let word = first_word(stmt).to_ascii_uppercase();
        let behavior = match txn_keyword(stmt) {
            TxnKeyword::BeginDeferred => Some(TransactionBehavior::Deferred),
            TxnKeyword::BeginImmediate => {
                Some(if stmt.to_ascii_uppercase().contains("EXCLUSIVE") {
                    TransactionBehavior::Exclusive
                } else {
                    TransactionBehavior::Immediate
                })
            }
            TxnKeyword::BeginReadOnly => Some(TransactionBehavior::ReadOnly),
            TxnKeyword::Other => None,
        };
        let rt = self.rt;
        if let Some(b) = behavior {
            if self.tx.is_some() {
                return Err("cannot start a transaction within a transaction".into());
            }
            self.tx = Some(
                rt.block_on(self.client.transaction_with(b))
                    .map_err(|e| self.client_error(e))?,
            );
            return Ok(None);
        }
        let is_rollback_to = word == "ROLLBACK" && {
            let up = stmt.to_ascii_uppercase();
            up.split_whitespace().any(|w| w == "TO")
        };
        if (word == "COMMIT" || word == "END") || (word == "ROLLBACK" && !is_rollback_to) {
            let Some(tx) = self.tx.take() else {
                return Err(format!(
                    "cannot {} - no transaction is active",
                    if word == "ROLLBACK" {
                        "rollback"
                    } else {
                        "commit"
                    }
                ));
            };
            let r = if word == "ROLLBACK" {
                rt.block_on(tx.rollback())
            } else {
                rt.block_on(tx.commit())
            };
            return r.map(|_| None).map_err(|e| self.client_error(e));
        }
        let result = match &self.tx {
            Some(tx) => rt.block_on(tx.execute(stmt, ())),
            None => rt.block_on(self.client.execute(stmt, ())),
        };
        result.map(Some).map_err(|e| self.client_error(e))
    }

    fn query(&mut self, sql: &str, params: Vec<Value>) -> Result<Rows, String> {
        let rt = self.rt;
        let result = match &self.tx {
            Some(tx) => rt.block_on(tx.execute(sql, params)),
            None => rt.block_on(self.client.execute(sql, params)),
        };
        result.map_err(|e| self.client_error(e))
    }

    /// A client error as the shell prints it; its kind is kept for the exit code.
    fn client_error(&mut self, e: skylite_client::Error) -> String {
        self.last_failure = Failure::of(&e);
        e.to_string()
    }

    fn dot(&mut self, line: &str) -> Result<Flow, String> {
        let mut parts = line.split_whitespace();
        let cmd = parts.next().unwrap_or(".");
        let arg = parts.next();
        match cmd {
            ".quit" | ".exit" | ".q" => return Ok(Flow::Quit),
            ".help" => print!("{HELP}"),
            ".tables" => {
                let rows = self.query(
                    "SELECT name FROM sqlite_schema WHERE type IN ('table', 'view') \
                     AND name NOT LIKE 'sqlite\\_%' ESCAPE '\\' ORDER BY name",
                    vec![],
                )?;
                let names: Vec<String> = rows.iter().map(|r| text_of(&r.values()[0])).collect();
                if !names.is_empty() {
                    println!("{}", names.join("  "));
                }
            }
            ".schema" => {
                let rows = match arg {
                    Some(t) => self.query(
                        "SELECT sql FROM sqlite_schema WHERE sql IS NOT NULL AND \
                         (tbl_name = ?1 COLLATE NOCASE OR name = ?1 COLLATE NOCASE) \
                         ORDER BY type = 'table' DESC, rowid",
                        vec![Value::Text(t.to_owned())],
                    )?,
                    None => self.query(
                        "SELECT sql FROM sqlite_schema WHERE sql IS NOT NULL AND name NOT LIKE \
                         'sqlite\\_%' ESCAPE '\\' ORDER BY rowid",
                        vec![],
                    )?,
                };
                for r in rows.iter() {
                    println!("{};", text_of(&r.values()[0]));
                }
            }
            ".mode" => {
                self.mode = match arg {
                    Some("table") | Some("box") => Mode::Table,
                    Some("json") => Mode::Json,
                    Some("csv") => Mode::Csv,
                    Some("line") => Mode::Line,
                    Some(other) => {
                        return Err(format!(
                            "unknown mode {other:?}: use table, json, csv or line"
                        ))
                    }
                    None => {
                        println!(
                            "current output mode: {}",
                            match self.mode {
                                Mode::Table => "table",
                                Mode::Json => "json",
                                Mode::Csv => "csv",
                                Mode::Line => "line",
                            }
                        );
                        self.mode
                    }
                }
            }
            ".timer" => {
                self.timer = match arg {
                    Some("on") => true,
                    Some("off") => false,
                    _ => return Err("usage: .timer on|off".into()),
                }
            }
            ".read" => {
                let Some(path) = arg else {
                    return Err("usage: .read FILE".into());
                };
                let file =
                    std::fs::File::open(path).map_err(|e| format!("cannot open {path}: {e}"))?;
                self.script(std::io::BufReader::new(file), path)?;
            }
            ".dump" => self.dump()?,
            other => {
                return Err(format!(
                    "unknown command {other:?}: enter \".help\" for the list"
                ))
            }
        }
        Ok(Flow::Go)
    }

    fn print(&self, rows: &Rows) -> Result<(), String> {
        let stdout = std::io::stdout();
        let mut out = std::io::BufWriter::new(stdout.lock());
        let text = render(self.mode, rows);
        out.write_all(text.as_bytes())
            .and_then(|_| out.flush())
            .map_err(|e| format!("cannot write the output: {e}"))
    }

    /// `.dump`: the server's dump endpoint when it is a skylite server and the token may use
    /// it, else a dump made here through SQL.
    fn dump(&mut self) -> Result<(), String> {
        if self.tx.is_none() && self.client.is_remote() {
            if let Some((server, name)) = skylite_database(&self.target) {
                let stdout = std::io::stdout();
                let mut out = stdout.lock();
                match self
                    .rt
                    .block_on(crate::transfer_cmd::dump_to(&server, &name, &mut out))
                {
                    Ok(_) => return Ok(()),
                    Err(crate::transfer_cmd::DumpFailure::Refused(401 | 403 | 404 | 405, _)) => {}
                    Err(e) => return Err(format!("{:#}", e.into_error())),
                }
            }
        }
        let text = self.dump_through_sql()?;
        let stdout = std::io::stdout();
        let mut out = stdout.lock();
        out.write_all(text.as_bytes())
            .and_then(|_| out.flush())
            .map_err(|e| format!("cannot write the dump: {e}"))
    }

    fn dump_through_sql(&mut self) -> Result<String, String> {
        let rt = self.rt;
        let own_tx = self.tx.is_none();
        if own_tx {
            self.tx = Some(
                rt.block_on(self.client.transaction_with(TransactionBehavior::Deferred))
                    .map_err(|e| self.client_error(e))?,
            );
        }
        let result = self.dump_body();
        if own_tx {
            if let Some(tx) = self.tx.take() {
                let _ = rt.block_on(tx.rollback());
            }
        }
        result
    }

    fn dump_body(&mut self) -> Result<String, String> {
        let mut out = String::from("PRAGMA foreign_keys=OFF;\nBEGIN TRANSACTION;\n");
        let objects = self.query(
            "SELECT type, name, sql FROM sqlite_schema WHERE sql IS NOT NULL ORDER BY rowid",
            vec![],
        )?;
        let objects: Vec<(String, String, String)> = objects
            .iter()
            .map(|r| {
                let v = r.values();
                (text_of(&v[0]), text_of(&v[1]), text_of(&v[2]))
            })
            .collect();
        let virtual_tables: Vec<String> = objects
            .iter()
            .filter(|(t, _, sql)| {
                t == "table" && sql.to_ascii_uppercase().starts_with("CREATE VIRTUAL TABLE")
            })
            .map(|(_, n, _)| n.clone())
            .collect();
        let is_shadow = |name: &str| {
            virtual_tables.iter().any(|v| {
                name.len() > v.len() + 1
                    && name.starts_with(v.as_str())
                    && name.as_bytes()[v.len()] == b'_'
            })
        };
        let mut sequence = false;
        for (kind, name, sql) in objects.iter().filter(|(t, _, _)| t == "table") {
            if name == "sqlite_sequence" {
                sequence = true;
                continue;
            }
            if name.starts_with("sqlite_stat") || is_shadow(name) {
                continue;
            }
            let _ = kind;
            out.push_str(sql);
            out.push_str(";\n");
            self.dump_rows(name, &mut out)?;
        }
        if sequence {
            out.push_str("DELETE FROM sqlite_sequence;\n");
            self.dump_rows("sqlite_sequence", &mut out)?;
        }
        for (_, name, sql) in objects.iter().filter(|(t, _, _)| t != "table") {
            if is_shadow(name) {
                continue;
            }
            out.push_str(sql);
            out.push_str(";\n");
        }
        out.push_str("COMMIT;\n");
        Ok(out)
    }

    fn dump_rows(&mut self, table: &str, out: &mut String) -> Result<(), String> {
        const PAGE: i64 = 1000;
        let quoted = quote_ident(table);
        let mut offset = 0i64;
        loop {
            let rows = self.query(
                &format!("SELECT * FROM {quoted} LIMIT {PAGE} OFFSET {offset}"),
                vec![],
            )?;
            for r in rows.iter() {
                let values: Vec<String> = r.values().iter().map(sql_literal).collect();
                out.push_str(&format!(
                    "INSERT INTO {quoted} VALUES({});\n",
                    values.join(",")
                ));
            }
            if (rows.len() as i64) < PAGE {
                return Ok(());
            }
            offset += PAGE;
        }
    }
}

/// The skylite server and database name of a remote target, if its URL has the shape of one
/// (`<base>` or `<base>/db/<name>`).
fn skylite_database(target: &Target) -> Option<(Server, String)> {
    let url = target.url.trim();
    let (_, rest) = url.split_once("://")?;
    let path = rest.find('/').map(|i| &rest[i..]).unwrap_or("");
    let path = path
        .split(['?', '#'])
        .next()
        .unwrap_or("")
        .trim_end_matches('/');
    let name = if path.is_empty() {
        "default".to_owned()
    } else {
        let mut parts = path.rsplit('/');
        let name = parts.next()?;
        if !matches!(parts.next(), Some("db") | Some("dev")) {
            return None;
        }
        name.to_owned()
    };
    Some((Server::new(target).ok()?, name))
}

const HELP: &str = "\
.dump               print the database as SQL text
.help               show this message
.mode MODE          output mode: table, json, csv or line
.quit               leave (also Ctrl-D)
.read FILE          run the SQL and dot-commands in FILE
.schema [TABLE]     show the CREATE statements (of TABLE and its indexes and triggers)
.tables             list the tables and views
.timer on|off       print how long each statement took
Statements end with ';' and may span lines; BEGIN ... COMMIT works as usual.
";

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02X}")).collect()
}

/// A value as an SQL literal (for `.dump`): the engine's dump printer, so both dumps read back
/// to the same values.
fn sql_literal(v: &Value) -> String {
    use rusqlite::types::ValueRef;
    let value = match v {
        Value::Null => ValueRef::Null,
        Value::Integer(i) => ValueRef::Integer(*i),
        Value::Float(f) => ValueRef::Real(*f),
        Value::Text(s) => ValueRef::Text(s.as_bytes()),
        Value::Blob(b) => ValueRef::Blob(b),
    };
    let mut out = String::new();
    skylite_engine::dump::push_value(&mut out, value);
    out
}

/// A value as text (table, line and csv modes).
fn text_of(v: &Value) -> String {
    match v {
        Value::Null => String::new(),
        Value::Integer(i) => i.to_string(),
        Value::Float(f) => {
            let s = format!("{f:?}");
            s
        }
        Value::Text(s) => s.clone(),
        Value::Blob(b) => format!("X'{}'", hex(b)),
    }
}

fn json_of(v: &Value) -> serde_json::Value {
    match v {
        Value::Null => serde_json::Value::Null,
        Value::Integer(i) => (*i).into(),
        Value::Float(f) => serde_json::Number::from_f64(*f)
            .map(serde_json::Value::Number)
            .unwrap_or(serde_json::Value::Null),
        Value::Text(s) => s.clone().into(),
        Value::Blob(b) => format!("X'{}'", hex(b)).into(),
    }
}

fn csv_field(s: &str) -> String {
    if s.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s.to_owned()
    }
}

fn render(mode: Mode, rows: &Rows) -> String {
    let cols = rows.columns();
    let mut out = String::new();
    match mode {
        Mode::Csv => {
            let head: Vec<String> = cols.iter().map(|c| csv_field(c)).collect();
            out.push_str(&head.join(","));
            out.push_str("\r\n");
            for r in rows.iter() {
                let f: Vec<String> = r.values().iter().map(|v| csv_field(&text_of(v))).collect();
                out.push_str(&f.join(","));
                out.push_str("\r\n");
            }
        }
        Mode::Json => {
            out.push('[');
            for (i, r) in rows.iter().enumerate() {
                let mut obj = serde_json::Map::new();
                for (c, v) in cols.iter().zip(r.values()) {
                    obj.insert(c.clone(), json_of(v));
                }
                if i > 0 {
                    out.push_str(",\n");
                }
                out.push_str(&serde_json::Value::Object(obj).to_string());
            }
            out.push_str("]\n");
        }
        Mode::Line => {
            let w = cols.iter().map(|c| c.chars().count()).max().unwrap_or(0);
            for (i, r) in rows.iter().enumerate() {
                if i > 0 {
                    out.push('\n');
                }
                for (c, v) in cols.iter().zip(r.values()) {
                    let pad = w - c.chars().count();
                    out.push_str(&format!("{}{c} = {}\n", " ".repeat(pad), text_of(v)));
                }
            }
        }
        Mode::Table => {
            let cells: Vec<Vec<String>> = rows
                .iter()
                .map(|r| {
                    r.values()
                        .iter()
                        .map(|v| match v {
                            Value::Null => "NULL".to_owned(),
                            v => text_of(v).replace('\n', "\\n"),
                        })
                        .collect()
                })
                .collect();
            let mut widths: Vec<usize> = cols.iter().map(|c| c.chars().count()).collect();
            for row in &cells {
                for (w, c) in widths.iter_mut().zip(row) {
                    *w = (*w).max(c.chars().count());
                }
            }
            let rule: String = {
                let parts: Vec<String> = widths.iter().map(|w| "-".repeat(w + 2)).collect();
                format!("+{}+\n", parts.join("+"))
            };
            let line = |vals: &[String], numeric: &[bool]| {
                let parts: Vec<String> = vals
                    .iter()
                    .zip(&widths)
                    .zip(numeric)
                    .map(|((v, w), num)| {
                        let pad = " ".repeat(w - v.chars().count());
                        if *num {
                            format!(" {pad}{v} ")
                        } else {
                            format!(" {v}{pad} ")
                        }
                    })
                    .collect();
                format!("|{}|\n", parts.join("|"))
            };
            out.push_str(&rule);
            out.push_str(&line(cols, &vec![false; cols.len()]));
            out.push_str(&rule);
            for (r, row) in rows.iter().zip(&cells) {
                let numeric: Vec<bool> = r
                    .values()
                    .iter()
                    .map(|v| matches!(v, Value::Integer(_) | Value::Float(_)))
                    .collect();
                out.push_str(&line(row, &numeric));
            }
            if !cells.is_empty() {
                out.push_str(&rule);
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn literals_round_trip_shapes() {
        assert_eq!(sql_literal(&Value::Text("it's".into())), "'it''s'");
        assert_eq!(sql_literal(&Value::Blob(vec![0, 255])), "X'00ff'");
        assert_eq!(
            sql_literal(&Value::Text("a\nb".into())),
            "replace('a\\nb','\\n',char(10))"
        );
        assert_eq!(sql_literal(&Value::Float(1.0)), "1.0");
        assert_eq!(
            sql_literal(&Value::Integer(i64::MIN)),
            "-9223372036854775808"
        );
        assert_eq!(csv_field("a,\"b\""), "\"a,\"\"b\"\"\"");
    }
}
