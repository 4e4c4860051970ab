//! `skylite-bench` (also run as `skylite bench`): measures a real `skylite serve` over Hrana over HTTP and Hrana over
//! WebSocket and, in the same run, the same engine called in-process, so the ratio of each
//! transport to the in-process figure is the cost of the network, the protocol and JSON.
//! The server runs as users run it, with authentication on (every HTTP request and every
//! WebSocket `hello` carries a token minted for the run); `--no-auth` measures without.
//!
//! It is its own crate and binary, outside the workspace's default members, so the server
//! binary does not ship the load generator; `skylite bench` runs this binary when it sits next
//! to `skylite`.
//!
//! This file owns the command line, the order of the run and the report. The pieces:
//! - [`workload`]: the requests (point reads, single-row inserts, batches of 100 inserts) and
//!   how their results are checked;
//! - [`server`]: the server as a child process (and its token) and the scratch folder;
//! - [`http`]: the HTTP load generator (one keep-alive connection per tokio task);
//! - [`ws`]: the WebSocket load generator (one socket with one stream per tokio task);
//! - [`inproc`]: the in-process baseline (one OS thread per "connection");
//! - [`stats`]: throughput and latency percentiles.

mod http;
mod inproc;
mod server;
mod stats;
mod workload;
mod ws;

use std::path::PathBuf;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use skylite_engine::Durability;

use self::server::{ScratchDir, ServerOptions, ServerProcess};
use self::stats::CellStats;
use self::workload::{Workload, BATCH_ROWS};

/// When a write counts as done, for both the server and the in-process baseline.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum BenchDurability {
    /// fsync the WAL before acknowledging a write (group commit shares fsyncs).
    Full,
    /// No fsync per write: survives a server crash, not a power loss.
    Normal,
}

impl BenchDurability {
    fn name(self) -> &'static str {
        match self {
            BenchDurability::Full => "full",
            BenchDurability::Normal => "normal",
        }
    }

    fn engine(self) -> Durability {
        match self {
            BenchDurability::Full => Durability::Full,
            BenchDurability::Normal => Durability::Normal,
        }
    }
}

/// How the load generator talks to the server.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Transport {
    /// Hrana over HTTP: one `POST /v2/pipeline` (the request, then `close`) per request, on
    /// keep-alive connections.
    Http,
    /// Hrana over WebSocket (`hrana3`, JSON): one stream per socket, one request message at a
    /// time on it.
    Ws,
}

impl Transport {
    /// Name used in the results table.
    fn label(self) -> &'static str {
        match self {
            Transport::Http => "http",
            Transport::Ws => "ws",
        }
    }
}

/// The command line: `skylite-bench [OPTIONS]` (the same options as `skylite bench`).
#[derive(clap::Parser)]
#[command(
    name = "skylite-bench",
    version,
    about = "Load a skylite server over HTTP and WebSocket and the same engine in-process, and \
             print the figures"
)]
struct Cli {
    #[command(flatten)]
    args: BenchArgs,
}

fn main() -> std::process::ExitCode {
    use clap::Parser;
    let cli = Cli::parse();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return std::process::ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(cli.args)) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            std::process::ExitCode::FAILURE
        }
    }
}

/// Benchmark options.
///
/// Each workload runs at each concurrency for `--duration-secs`, over each transport against a
/// freshly started server, then in-process on the same engine (one OS thread per connection).
/// Both sides use scratch databases that are deleted at the end.
#[derive(clap::Args, Debug)]
pub struct BenchArgs {
    /// Durability of the server and of the in-process baseline.
    #[arg(long, value_enum, default_value = "full")]
    durability: BenchDurability,
    /// Seconds each (workload, concurrency) cell runs, on each side.
    #[arg(long, default_value_t = 5)]
    duration_secs: u64,
    /// Concurrent connections (HTTP), sockets (WebSocket) and threads (in-process),
    /// comma-separated.
    #[arg(long, value_delimiter = ',', default_value = "1,8,64")]
    connections: Vec<usize>,
    /// Rows in the table the point reads pick from.
    #[arg(long, default_value_t = 100_000)]
    rows: u64,
    /// Workloads to run, comma-separated: reads (point SELECT by primary key), inserts
    /// (single-row autocommit INSERT), batches (one Hrana batch of 100 INSERTs in a transaction).
    #[arg(
        long,
        value_enum,
        value_delimiter = ',',
        default_value = "reads,inserts,batches"
    )]
    workloads: Vec<Workload>,
    /// Transports to measure, comma-separated: http (Hrana over HTTP), ws (Hrana over
    /// WebSocket). The in-process baseline runs once per cell whatever this says.
    #[arg(long, value_enum, value_delimiter = ',', default_value = "http,ws")]
    transports: Vec<Transport>,
    /// The skylite binary to start as the server (default: `skylite` next to this executable).
    #[arg(long)]
    server_bin: Option<PathBuf>,
    /// Pin the server process to this CPU (`taskset -c N`; ignored with a warning if taskset
    /// is missing). The load generator is not pinned: on a small machine, pinning keeps the
    /// server on its own core while the client and the in-process threads use the rest.
    #[arg(long, value_name = "N")]
    server_cpu: Option<usize>,
    /// Folder for the scratch databases (default: the system temp folder). Put it on the disk
    /// you want to measure: fsync cost depends on it.
    #[arg(long)]
    work_dir: Option<PathBuf>,
    /// Smoke test: 1 s per cell and 10,000 rows (overrides --duration-secs and --rows).
    #[arg(long)]
    quick: bool,
    /// Start the server with `--no-auth` and send no token. By default auth is on, as in a
    /// real deployment: a read-write token for `default` is minted for the run and sent with
    /// every HTTP request (`Authorization: Bearer`) and every WebSocket `hello`.
    #[arg(long)]
    no_auth: bool,
}

/// The settings of a run, after `--quick` and validation.
struct Plan {
    durability: BenchDurability,
    duration: Duration,
    rows: u64,
    connections: Vec<usize>,
    workloads: Vec<Workload>,
    transports: Vec<Transport>,
    auth: bool,
}

impl Plan {
    fn from_args(args: &BenchArgs) -> Result<Plan, String> {
        let (secs, rows) = if args.quick {
            (1, 10_000)
        } else {
            (args.duration_secs, args.rows)
        };
        if secs == 0 {
            return Err("--duration-secs must be at least 1".into());
        }
        if rows == 0 {
            return Err("--rows must be at least 1".into());
        }
        let connections = dedup(&args.connections);
        if connections.is_empty() || connections.iter().any(|&c| c == 0 || c > 1000) {
            return Err("--connections takes numbers from 1 to 1000, e.g. 1,8,64".into());
        }
        let workloads = dedup(&args.workloads);
        if workloads.is_empty() {
            return Err("--workloads needs at least one of reads, inserts, batches".into());
        }
        let transports = dedup(&args.transports);
        if transports.is_empty() {
            return Err("--transports needs at least one of http, ws".into());
        }
        Ok(Plan {
            durability: args.durability,
            duration: Duration::from_secs(secs),
            rows,
            connections,
            workloads,
            transports,
            auth: !args.no_auth,
        })
    }
}

/// One transport's figures for one (workload, concurrency), beside the in-process baseline
/// of that (workload, concurrency) (one measurement, shared by the transports).
struct Row {
    workload: Workload,
    conns: usize,
    transport: Transport,
    net: CellStats,
    inproc: CellStats,
}

/// Runs the benchmark.
async fn run(args: BenchArgs) -> Result<(), String> {
    let plan = Plan::from_args(&args)?;
    let binary = match &args.server_bin {
        Some(p) => p.clone(),
        None => default_server_bin()?,
    };
    let parent = args.work_dir.clone().unwrap_or_else(std::env::temp_dir);
    // Declared before the server so that it is removed after the server is killed.
    let scratch = ScratchDir::create(&parent)?;
    let seed = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(1);

    eprintln!("starting the server ({})", binary.display());
    let mut server = ServerProcess::start(ServerOptions {
        binary,
        data_dir: scratch.path().join("server"),
        durability: plan.durability.name(),
        cpu: args.server_cpu,
        auth: plan.auth,
    })
    .await?;
    let target = server.target.clone();

    eprintln!("loading {} rows over HTTP and in-process", plan.rows);
    let began = Instant::now();
    http::setup(&target, plan.rows).await?;
    let db_path = scratch.path().join("inproc").join("bench.db");
    let (durability, rows) = (plan.durability.engine(), plan.rows);
    let db = blocking(move || {
        let db = inproc::open(&db_path, durability)?;
        inproc::setup(&db, rows)?;
        Ok(db)
    })
    .await?;
    eprintln!("loaded in {:.1} s", began.elapsed().as_secs_f64());

    let mut table = Vec::new();
    let mut inproc_errors = 0;
    for &workload in &plan.workloads {
        for &conns in &plan.connections {
            let (duration, rows) = (plan.duration, plan.rows);
            let mut nets = Vec::with_capacity(plan.transports.len());
            for &transport in &plan.transports {
                let stats = match transport {
                    Transport::Http => {
                        http::run_cell(&target, workload, conns, duration, rows, seed).await?
                    }
                    Transport::Ws => {
                        ws::run_cell(&target, workload, conns, duration, rows, seed).await?
                    }
                };
                server.check_alive()?;
                nets.push((transport, stats));
            }
            let cell_db = db.clone();
            let inproc =
                blocking(move || inproc::run_cell(&cell_db, workload, conns, duration, rows, seed))
                    .await?;
            inproc_errors += inproc.errors;
            let mut line = format!("  {:<13} x{:<4}", workload.label(), conns);
            for (transport, stats) in &nets {
                line.push_str(&format!(
                    " {:>4} {:>9.0} req/s  ",
                    transport.label(),
                    stats.per_sec
                ));
            }
            eprintln!("{line} in-process {:>9.0} req/s", inproc.per_sec);
            for (transport, net) in nets {
                table.push(Row {
                    workload,
                    conns,
                    transport,
                    net,
                    inproc: inproc.clone(),
                });
            }
        }
    }
    drop(db);
    let pinned = server.pinned_cpu;
    drop(server);

    print_report(&table, &plan, pinned, &scratch);
    let errors: u64 = table.iter().map(|r| r.net.errors).sum::<u64>() + inproc_errors;
    if errors > 0 {
        return Err(format!(
            "{errors} requests failed (see the errors column); the figures are not valid"
        ));
    }
    Ok(())
}

/// Runs blocking work off the async workers.
async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, String> + Send + 'static,
) -> Result<T, String> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| format!("benchmark thread failed: {e}"))?
}

fn print_report(table: &[Row], plan: &Plan, pinned: Option<usize>, scratch: &ScratchDir) {
    println!();
    println!(
        "{:<14} {:>5} {:>9} {:>10} {:>8} {:>8}   {:>13} {:>8} {:>8}  {:>6}  {:>8}",
        "workload",
        "conns",
        "transport",
        "req/s",
        "p50(ms)",
        "p99(ms)",
        "in-proc req/s",
        "p50(ms)",
        "p99(ms)",
        "ratio",
        "errors"
    );
    for r in table {
        let ratio = if r.inproc.per_sec > 0.0 {
            format!("{:.2}", r.net.per_sec / r.inproc.per_sec)
        } else {
            "-".into()
        };
        println!(
            "{:<14} {:>5} {:>9} {:>10.0} {:>8.3} {:>8.3}   {:>13.0} {:>8.3} {:>8.3}  {:>6}  {:>8}",
            r.workload.label(),
            r.conns,
            r.transport.label(),
            r.net.per_sec,
            r.net.p50_ms,
            r.net.p99_ms,
            r.inproc.per_sec,
            r.inproc.p50_ms,
            r.inproc.p99_ms,
            ratio,
            format!("{}/{}", r.net.errors, r.inproc.errors),
        );
    }
    let mut shown_inproc = Vec::new();
    for r in table {
        if let Some(e) = &r.net.first_error {
            println!(
                "first error, {} x{} {}: {e}",
                r.workload.label(),
                r.conns,
                r.transport.label()
            );
        }
        if let Some(e) = &r.inproc.first_error {
            if !shown_inproc.contains(&(r.workload, r.conns)) {
                shown_inproc.push((r.workload, r.conns));
                println!(
                    "first error, {} x{} in-process: {e}",
                    r.workload.label(),
                    r.conns
                );
            }
        }
    }
    let cpus = std::thread::available_parallelism()
        .map(|n| n.get().to_string())
        .unwrap_or_else(|_| "unknown".into());
    println!();
    println!("req/s: successful requests per second. http: one request is one pipeline (the statement, then close) on a new stream,");
    println!("  over conns keep-alive connections. ws: one request is one request message (hrana3, JSON) on a stream opened once per socket,");
    println!("  over conns sockets, each waiting for its response before the next request.");
    println!(
        "  For \"{}\" a request is one batch of {BATCH_ROWS} inserted rows (BEGIN, {BATCH_ROWS} INSERTs, COMMIT), so req/s = batches/s and rows/s = {BATCH_ROWS} x req/s.",
        Workload::Batches.label()
    );
    println!("in-proc: the same engine, requests and checks called from conns OS threads in this process, without network, HTTP/WebSocket and JSON;");
    println!("  measured once per workload and conns, and shown beside each transport.");
    println!("ratio: transport req/s / in-process req/s. p50/p99: latency of one request. errors: transport/in-process failed requests.");
    println!("command:    {}", command_line());
    println!(
        "durability: {} (server and in-process)",
        plan.durability.name()
    );
    println!(
        "auth:       {}",
        if plan.auth {
            "on (a read-write token for `default`, sent with every HTTP request and WebSocket hello)"
        } else {
            "off (--no-auth: the server checks no token)"
        }
    );
    println!(
        "duration:   {} s per cell and side; bench_kv has {} rows",
        plan.duration.as_secs(),
        plan.rows
    );
    println!(
        "CPUs:       {cpus}; server {}; the load generator shares the machine with it",
        match pinned {
            Some(cpu) => format!("pinned to CPU {cpu}"),
            None => "not pinned".into(),
        }
    );
    println!(
        "engine:     skylite {}, SQLite {}; scratch folder {}",
        env!("CARGO_PKG_VERSION"),
        skylite_engine::sqlite_version(),
        scratch.path().display()
    );
}

/// The `skylite` binary next to this executable (cargo builds both into the same folder).
fn default_server_bin() -> Result<PathBuf, String> {
    let exe = std::env::current_exe()
        .map_err(|e| format!("cannot find this executable (use --server-bin): {e}"))?;
    let name = format!("skylite{}", std::env::consts::EXE_SUFFIX);
    let path = exe.with_file_name(name);
    if path.is_file() {
        Ok(path)
    } else {
        Err(format!(
            "no server binary at {} (build it with `cargo build --release -p skylite`, or pass \
             --server-bin PATH)",
            path.display()
        ))
    }
}

/// This process's command line, quoted for a POSIX shell where needed.
fn command_line() -> String {
    std::env::args()
        .map(|a| {
            let plain = !a.is_empty()
                && a.chars()
                    .all(|c| c.is_ascii_alphanumeric() || "-_./=:,@%+".contains(c));
            if plain {
                a
            } else {
                format!("'{}'", a.replace('\'', r"'\''"))
            }
        })
        .collect::<Vec<_>>()
        .join(" ")
}

/// The distinct items of `items`, in their first order.
fn dedup<T: PartialEq + Copy>(items: &[T]) -> Vec<T> {
    let mut out = Vec::with_capacity(items.len());
    for &item in items {
        if !out.contains(&item) {
            out.push(item);
        }
    }
    out
}
