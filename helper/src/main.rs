//! `mlbackup-helper`: the static binary the plugin uploads into the DataRobot app pod. This
//! skeleton only reports its versions; the deployment commands arrive with the DataRobot engine.

use std::process::ExitCode;

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.first().map(String::as_str) {
        Some("--version") | Some("version") => {
            println!(
                "mlbackup-helper {} (protocol {})",
                env!("CARGO_PKG_VERSION"),
                mlbackup_helper::PROTOCOL_VERSION
            );
            ExitCode::SUCCESS
        }
        _ => {
            eprintln!("usage: mlbackup-helper --version");
            ExitCode::from(2)
        }
    }
}
