//! Records the git revision for `entra_exporter_build_info`; builds outside a git checkout
//! (or with GIT_REVISION already set) keep what they have.

use std::process::Command;

fn main() {
    println!("cargo:rerun-if-env-changed=GIT_REVISION");
    println!("cargo:rerun-if-changed=.git/HEAD");
    println!("cargo:rerun-if-changed=.git/refs");
    if std::env::var_os("GIT_REVISION").is_some() {
        return;
    }
    let revision = Command::new("git")
        .args(["rev-parse", "--short=12", "HEAD"])
        .output()
        .ok()
        .filter(|out| out.status.success())
        .and_then(|out| String::from_utf8(out.stdout).ok())
        .map(|rev| rev.trim().to_owned())
        .filter(|rev| !rev.is_empty());
    if let Some(revision) = revision {
        println!("cargo:rustc-env=GIT_REVISION={revision}");
    }
}
