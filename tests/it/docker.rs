//! No Docker engine runs here: the Dockerfile is parsed, its build command must be the
//! one the test script builds with, and the binary it builds answers as `/bin/unlock`.

use std::convert::TryInto;
use std::path::Path;
use std::process::Command;

use dockerfile_parser::{Dockerfile, FromInstruction, Instruction, RunInstruction};

/// The release build both the image and `scripts/test` run.
const BUILD_COMMAND: &str = "cargo build --release --locked --bin locksmith";

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

#[test]
fn dockerfile_parses_and_builds_like_the_tests() {
    let text = std::fs::read_to_string(root().join("Dockerfile")).unwrap();
    let df = Dockerfile::parse(&text).expect("the Dockerfile parses");
    let froms: Vec<&FromInstruction> = df
        .instructions
        .iter()
        .filter_map(|i| i.try_into().ok())
        .collect();
    assert_eq!(froms.len(), 2, "multi-stage");
    assert_eq!(froms[0].image_parsed.image, "rust");
    assert!(
        froms[0]
            .image_parsed
            .tag
            .as_deref()
            .unwrap()
            .contains("alpine")
    );
    let runtime = froms[1].image.to_string();
    assert_eq!(runtime, "restic/restic:${RESTIC_VERSION}");
    let pinned = df.get_global_arg("RESTIC_VERSION").unwrap();
    let version = pinned.value.as_ref().unwrap().to_string();
    let parts: Vec<u32> = version.split('.').map(|p| p.parse().unwrap()).collect();
    assert!(
        parts.len() == 3 && (parts[0], parts[1], parts[2]) >= (0, 18, 1),
        "the image carries restic 0.18.1 or newer, pinned: {version}"
    );
    assert!(
        text.contains("ENV RESTIC_BIN=/usr/bin/restic"),
        "restic by its path"
    );

    let runs: Vec<String> = df
        .instructions
        .iter()
        .filter_map(|i| match i {
            Instruction::Run(RunInstruction { expr, .. }) => {
                expr.as_shell().map(|s| s.to_string().trim().to_string())
            }
            _ => None,
        })
        .collect();
    assert!(runs.iter().any(|r| r == BUILD_COMMAND), "{runs:?}");
    assert!(
        runs.iter()
            .any(|r| r.contains("ln -s /usr/local/bin/locksmith /bin/unlock"))
    );
    let script = std::fs::read_to_string(root().join("scripts/test")).unwrap();
    assert!(
        script.lines().any(|l| l.trim() == BUILD_COMMAND),
        "scripts/test builds the same way"
    );
    let readme = std::fs::read_to_string(root().join("README.md")).unwrap();
    assert!(readme.contains("docker build -t locksmith ."));
    assert!(
        text.contains("ENTRYPOINT []"),
        "the restic image's entrypoint is reset"
    );
}

/// The binary that command builds, started as `unlock` as the image starts it.
#[test]
fn release_binary_answers_as_bin_unlock() {
    let bin = root().join("target/release/locksmith");
    if !bin.exists() {
        crate::common::skip(&format!(
            "{BUILD_COMMAND} has not run (scripts/test runs it)"
        ));
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let unlock = dir.path().join("unlock");
    std::os::unix::fs::symlink(&bin, &unlock).unwrap();
    let out = Command::new(&unlock).arg("--help").output().unwrap();
    assert!(out.status.success());
    let help = String::from_utf8(out.stdout).unwrap();
    assert!(help.starts_with("The audited restic unlock"), "{help}");
    assert!(help.contains("Usage: unlock [OPTIONS]"));
}
