//! docs/cli.md is every command's `--help` as the binary prints it: this test runs the binary
//! for each command (with an empty environment, so no `[env: …=value]` shows) and compares.
//! `LOGIN_ETL_UPDATE_DOCS=1 cargo test --test cli_reference` rewrites the page.

use std::process::Command;

use clap::CommandFactory;
use login_etl::commands::Cli;

const PAGE: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/docs/cli.md");

/// `login-etl [command…] --help`, as a user sees it.
fn help(path: &[&str]) -> String {
    let output = Command::new(env!("CARGO_BIN_EXE_login-etl"))
        .env_clear()
        .args(path)
        .arg("--help")
        .output()
        .unwrap();
    assert!(output.status.success(), "{path:?} --help failed");
    String::from_utf8(output.stdout).unwrap()
}

/// A section per command, then per subcommand of it (the generated `help` left out).
fn sections(command: &clap::Command, path: &mut Vec<String>, page: &mut String) {
    let args: Vec<&str> = path.iter().map(String::as_str).collect();
    let title = ["login-etl"]
        .iter()
        .chain(&args)
        .copied()
        .collect::<Vec<_>>()
        .join(" ");
    *page += &format!("\n## {title}\n\n```text\n{}```\n", help(&args));
    for sub in command
        .get_subcommands()
        .filter(|c| !c.is_hide_set() && c.get_name() != "help")
    {
        path.push(sub.get_name().to_string());
        sections(sub, path, page);
        path.pop();
    }
}

/// The page: the top-level help, then each visible command's, depth first.
fn reference() -> String {
    let mut page = String::from(
        "# CLI reference\n\n\
         Every command's `--help`, generated from the binary (do not edit: \
         `LOGIN_ETL_UPDATE_DOCS=1 cargo test --test cli_reference` rewrites this page, and fails \
         when it is out of step). Each flag can also be set from the environment variable named \
         in its `[env: …]`. Man pages and shell completions come from the same definitions \
         (`cargo run --example generate -- OUT_DIR`; installed by the .deb, docs/deploy.md).\n",
    );
    sections(&Cli::command(), &mut Vec::new(), &mut page);
    page
}

#[test]
fn docs_cli_md_is_the_help_the_binary_prints() {
    let expected = reference();
    if std::env::var_os("LOGIN_ETL_UPDATE_DOCS").is_some() {
        std::fs::write(PAGE, &expected).unwrap();
    }
    let page = std::fs::read_to_string(PAGE).unwrap_or_default();
    assert!(
        page == expected,
        "docs/cli.md is out of step with --help: LOGIN_ETL_UPDATE_DOCS=1 cargo test --test cli_reference"
    );
}
