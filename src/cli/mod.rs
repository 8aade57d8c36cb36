//! The `loa` command line. **Invariant:** the only module that uses `anyhow`; every subcommand
//! lives in its own file, owns its arguments, and returns an exit code (0 ok, 1 runtime failure,
//! 2 invalid input such as a schedule with errors).

use clap::{Parser, Subcommand};
use std::process::ExitCode;

pub mod bulletin;
pub mod check;
pub mod collector;
pub mod content;
pub mod devices;
pub mod enrol;
pub mod export;
pub mod keygen;
pub mod plan;
pub mod play;
pub mod register;
pub mod render;
pub mod station;
pub mod status;
pub mod store;
pub mod up;
pub mod user;
pub mod verify;

/// loa — airs the broadcast plan on time and proves what aired.
#[derive(Debug, Parser)]
#[command(name = "loa", version, about)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

/// Subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Validate schedule files like `nginx -t`.
    Check(check::CheckArgs),
    /// List the planned airings of a station.
    Plan(plan::PlanArgs),
    /// Air files now and print the evidence.
    Play(play::PlayArgs),
    /// Render a session offline to a WAV file.
    Render(render::RenderArgs),
    /// List audio output devices.
    Devices(devices::DevicesArgs),
    /// Make a station key pair.
    Keygen(keygen::KeygenArgs),
    /// Run the station daemon.
    Station(station::StationArgs),
    /// Run the central collector server.
    Collector(collector::CollectorArgs),
    /// Export a month's airing log from the collector database.
    Export(export::ExportArgs),
    /// Verify an exported JSON airing log offline.
    Verify(verify::VerifyArgs),
    /// Register (enrol) a station's public key with the collector.
    Register(register::RegisterArgs),
    /// Enrol this station box with the centre using a one-time code.
    Enrol(enrol::EnrolArgs),
    /// Show station status from the collector.
    Status(status::StatusArgs),
    /// Bring the whole system up on this host (collector + every station).
    Up(up::UpArgs),
    /// Office accounts: add, passwd, disable, enable, list, token.
    User(user::UserArgs),
    /// The collector's content library: upload (and assign) audio files.
    Content(content::ContentArgs),
    /// Bulletins from the centre: send one to stations, cancel one (admins).
    Bulletin(bulletin::BulletinArgs),
    /// The collector's database: migrate (move) it from SQLite to PostgreSQL.
    Store(store::StoreArgs),
}

/// Entry point used by `main.rs`.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Check(a) => check::run(a),
        Command::Plan(a) => plan::run(a),
        Command::Play(a) => play::run(a),
        Command::Render(a) => render::run(a),
        Command::Devices(a) => devices::run(a),
        Command::Keygen(a) => keygen::run(a),
        Command::Station(a) => station::run(a),
        Command::Collector(a) => collector::run(a),
        Command::Export(a) => export::run(a),
        Command::Verify(a) => verify::run(a),
        Command::Register(a) => register::run(a),
        Command::Enrol(a) => enrol::run(a),
        Command::Status(a) => status::run(a),
        Command::Up(a) => up::run(a),
        Command::User(a) => user::run(a),
        Command::Content(a) => content::run(a),
        Command::Bulletin(a) => bulletin::run(a),
        Command::Store(a) => store::run(a),
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("loa: error: {e:#}");
            ExitCode::FAILURE
        }
    }
}
