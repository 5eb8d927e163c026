//! Man pages and shell completions from the clap definitions, for the .deb (scripts/deb-test.sh)
//! and anyone packaging login-etl: an example, so the binary carries no generator.
//! Usage: `cargo run --example generate -- OUT_DIR` → `OUT_DIR/man/*.1` (one page per command)
//! and `OUT_DIR/completions/` (`login-etl.bash`, `_login-etl` for zsh, `login-etl.fish`).

use std::path::PathBuf;

use clap::CommandFactory;
use clap_complete::Shell;
use login_etl::commands::Cli;

fn main() -> std::io::Result<()> {
    let Some(out) = std::env::args_os().nth(1).map(PathBuf::from) else {
        eprintln!("usage: generate OUT_DIR");
        std::process::exit(2);
    };
    let man = out.join("man");
    let completions = out.join("completions");
    std::fs::create_dir_all(&man)?;
    std::fs::create_dir_all(&completions)?;
    clap_mangen::generate_to(Cli::command(), &man)?;
    for shell in [Shell::Bash, Shell::Zsh, Shell::Fish] {
        clap_complete::generate_to(shell, &mut Cli::command(), "login-etl", &completions)?;
    }
    println!("{}", out.display());
    Ok(())
}
