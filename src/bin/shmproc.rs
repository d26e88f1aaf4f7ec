//! `shmproc`: list, inspect and remove the named shared-memory segments of
//! this user (`/dev/shm/shmproc.*`).
//!
//! ```text
//! shmproc ls                 every segment: kind, type, size, creator, users, state
//! shmproc inspect NAME       header, kind-specific state and counters
//! shmproc rm NAME...         remove segments by name
//! shmproc clean [--corrupt]  remove segments whose creator is dead and that nobody uses
//! ```
//!
//! Install with `cargo install --path .`, or run with `cargo run --bin shmproc -- ls`.
//! Built on the public API only ([`shmproc::inspect`]).

use std::process::ExitCode;

use clap::{Parser, Subcommand};
use shmproc::inspect::{self, Entry, SegmentInfo, Status};

/// Named shmproc segments of this user: list, inspect, remove, clean up.
#[derive(Parser, Debug)]
#[command(name = "shmproc", version, about)]
struct Cli {
    /// Print lifecycle events (segments opened, removed) on stderr.
    #[arg(short, long, global = true)]
    verbose: bool,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// List every named segment: kind, element type, size, creator and
    /// whether it is alive, processes using it, and a state summary.
    Ls,
    /// Show one segment's header, kind-specific state and counters.
    Inspect {
        /// The segment name (without the `shmproc.` prefix).
        name: String,
    },
    /// Remove named segments (processes that map one keep their mapping).
    Rm {
        /// Segment names (without the `shmproc.` prefix).
        #[arg(required = true)]
        names: Vec<String>,
    },
    /// Remove every segment whose creator is dead and which no live process
    /// maps or holds open.
    Clean {
        /// Also remove files whose header names no creator (corrupt or
        /// foreign files under the `shmproc.` prefix) that nobody uses.
        #[arg(long)]
        corrupt: bool,
        /// Only say what would be removed.
        #[arg(long)]
        dry_run: bool,
        /// Only consider segments whose name starts with this.
        #[arg(long, default_value = "")]
        prefix: String,
    },
}

/// Prints `log` records on stderr (`-v`).
struct StderrLog;

impl log::Log for StderrLog {
    fn enabled(&self, _: &log::Metadata<'_>) -> bool {
        true
    }
    fn log(&self, record: &log::Record<'_>) {
        eprintln!("[{}] {}", record.level(), record.args());
    }
    fn flush(&self) {}
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    if cli.verbose {
        static LOGGER: StderrLog = StderrLog;
        if log::set_logger(&LOGGER).is_ok() {
            log::set_max_level(log::LevelFilter::Debug);
        }
    }
    let result = match cli.command {
        Command::Ls => ls(),
        Command::Inspect { name } => show(&name),
        Command::Rm { names } => rm(&names),
        Command::Clean {
            corrupt,
            dry_run,
            prefix,
        } => clean(&prefix, corrupt, dry_run),
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("shmproc: error: {e}");
            ExitCode::FAILURE
        }
    }
}

fn alive(info: &SegmentInfo) -> &'static str {
    match info.creator_alive {
        Some(true) => "yes",
        Some(false) => "no",
        None => "-",
    }
}

fn creator(info: &SegmentInfo) -> String {
    info.creator.map_or("-".into(), |pid| pid.to_string())
}

fn users(info: &SegmentInfo) -> String {
    if info.users.is_empty() {
        "-".into()
    } else {
        info.users
            .iter()
            .map(u32::to_string)
            .collect::<Vec<_>>()
            .join(",")
    }
}

fn ls() -> shmproc::Result<ExitCode> {
    let entries = inspect::list()?;
    let rows: Vec<[String; 8]> = entries
        .iter()
        .map(|Entry { info, summary }| {
            let state = match &info.status {
                Status::Ready => summary.clone(),
                other => other.to_string(),
            };
            [
                info.name.clone(),
                info.kind.map_or("?".into(), |k| k.name().replace(' ', "-")),
                if info.type_name.is_empty() {
                    "?".into()
                } else {
                    info.type_name.clone()
                },
                info.file_len.to_string(),
                creator(info),
                alive(info).into(),
                users(info),
                state,
            ]
        })
        .collect();
    let header = [
        "NAME", "KIND", "TYPE", "SIZE", "CREATOR", "ALIVE", "USERS", "STATE",
    ];
    let mut widths: Vec<usize> = header.iter().map(|h| h.len()).collect();
    for r in &rows {
        for (w, cell) in widths.iter_mut().zip(r) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let line = |cells: Vec<&str>| {
        let mut out = String::new();
        for (i, (c, w)) in cells.iter().zip(&widths).enumerate() {
            if i + 1 == cells.len() {
                out.push_str(c);
            } else {
                out.push_str(&format!("{c:<w$}  "));
            }
        }
        println!("{}", out.trim_end());
    };
    line(header.to_vec());
    for r in &rows {
        line(r.iter().map(String::as_str).collect());
    }
    Ok(ExitCode::SUCCESS)
}

fn show(name: &str) -> shmproc::Result<ExitCode> {
    let info = inspect::info(name)?;
    let mut fields: Vec<(String, String)> = vec![
        ("name".into(), info.name.clone()),
        (
            "file".into(),
            format!("/dev/shm/shmproc.{} ({} bytes)", info.name, info.file_len),
        ),
        ("status".into(), info.status.to_string()),
    ];
    if let Some(kind) = info.kind {
        fields.push(("kind".into(), kind.to_string()));
    }
    if info.version != 0 {
        fields.push(("layout version".into(), info.version.to_string()));
    }
    if !info.type_name.is_empty() || info.type_size != 0 {
        fields.push((
            "element type".into(),
            format!("{} ({} bytes)", info.type_name, info.type_size),
        ));
    }
    fields.push((
        "creator".into(),
        match info.creator {
            Some(pid) => format!(
                "pid {} ({})",
                pid,
                if info.creator_alive == Some(true) {
                    "alive"
                } else {
                    "dead"
                }
            ),
            None => "unknown".into(),
        },
    ));
    fields.push(("users".into(), users(&info)));
    if info.status == Status::Ready {
        fields.push(("params".into(), format!("{:?}", info.params)));
        match inspect::details(name) {
            Ok(d) => fields.extend(d.into_iter().map(|(k, v)| (k.to_owned(), v))),
            Err(e) => fields.push(("details".into(), format!("error: {e}"))),
        }
    }
    let w = fields.iter().map(|(k, _)| k.len()).max().unwrap_or(0) + 1;
    for (k, v) in fields {
        println!("{:<w$} {v}", format!("{k}:"));
    }
    Ok(ExitCode::SUCCESS)
}

fn rm(names: &[String]) -> shmproc::Result<ExitCode> {
    let mut code = ExitCode::SUCCESS;
    for name in names {
        match inspect::remove(name) {
            Ok(()) => println!("removed {name}"),
            Err(e) => {
                eprintln!("shmproc: cannot remove {name}: {e}");
                code = ExitCode::FAILURE;
            }
        }
    }
    Ok(code)
}

fn clean(prefix: &str, corrupt: bool, dry_run: bool) -> shmproc::Result<ExitCode> {
    if dry_run {
        for e in inspect::list()?
            .into_iter()
            .filter(|e| e.info.name.starts_with(prefix))
        {
            let s = &e.info;
            if s.is_orphan(corrupt) {
                println!(
                    "would remove {} (creator {}, {})",
                    s.name,
                    creator(s),
                    s.status
                );
            } else {
                println!("keep {}", s.name);
            }
        }
        return Ok(ExitCode::SUCCESS);
    }
    let mut removed = 0;
    for c in inspect::clean(prefix, corrupt)? {
        if c.removed {
            removed += 1;
            println!("removed {}: {}", c.name, c.reason);
        } else {
            println!("kept {}: {}", c.name, c.reason);
        }
    }
    println!("{removed} removed");
    Ok(ExitCode::SUCCESS)
}
