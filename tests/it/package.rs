//! The Debian package `scripts/package` builds (scripts/test builds it before the tests):
//! its contents, the installed binary run from an extracted copy, the unit verified.

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::common::*;

fn built_deb() -> Option<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("target/debian");
    let found = std::fs::read_dir(&dir).ok()?.find_map(|e| {
        let p = e.ok()?.path();
        let name = p.file_name()?.to_str()?.to_string();
        (name.starts_with("locksmith_") && name.ends_with(".deb")).then_some(p)
    });
    if found.is_none() {
        skip("no target/debian/locksmith_*.deb: scripts/package builds it");
    }
    found
}

/// The built package unpacked into a temp dir, as `dpkg` would install it.
fn extracted() -> Option<tempfile::TempDir> {
    let deb = built_deb()?;
    let root = tempfile::tempdir().unwrap();
    ok(Command::new("dpkg-deb")
        .arg("-x")
        .arg(&deb)
        .arg(root.path()));
    Some(root)
}

fn ok(cmd: &mut Command) -> String {
    let out = cmd.output().unwrap();
    assert!(out.status.success(), "{cmd:?}: {}", text(&out));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn deb_holds_binary_man_page_completions_unit_and_example() {
    crate::needs!("dpkg-deb");
    let Some(deb) = built_deb() else { return };
    let listing = ok(Command::new("dpkg-deb").arg("-c").arg(&deb));
    for path in [
        "./usr/bin/locksmith",
        "./usr/share/man/man1/locksmith.1.gz",
        "./usr/share/bash-completion/completions/locksmith",
        "./usr/share/zsh/vendor-completions/_locksmith",
        "./usr/share/fish/vendor_completions.d/locksmith.fish",
        "./usr/lib/systemd/system/locksmith.service",
        "./etc/locksmith/locksmith.toml",
        "./usr/share/doc/locksmith/README.md",
        "./usr/share/doc/locksmith/copyright",
        "./usr/share/doc/locksmith/examples/locksmith.rules.yml",
    ] {
        assert!(
            listing.lines().any(|l| l.ends_with(path)),
            "{path} missing:\n{listing}"
        );
    }
    // A host keeps the generic name `unlock` free; only the image has it.
    assert!(!listing.contains("/unlock"), "{listing}");
    let tree = tempfile::tempdir().unwrap();
    ok(Command::new("dpkg-deb")
        .arg("-x")
        .arg(&deb)
        .arg(tree.path()));
    let copyright =
        std::fs::read_to_string(tree.path().join("usr/share/doc/locksmith/copyright")).unwrap();
    for needed in [
        "License: MIT or Apache-2.0",
        "Permission is hereby granted",
        "common-licenses/Apache-2.0",
    ] {
        assert!(
            copyright.contains(needed),
            "copyright lacks {needed:?}:\n{copyright}"
        );
    }

    let info = ok(Command::new("dpkg-deb").arg("-I").arg(&deb));
    assert!(info.contains("Package: locksmith"), "{info}");
    assert!(info.contains("adduser"), "{info}");
    let control = tempfile::tempdir().unwrap();
    ok(Command::new("dpkg-deb")
        .arg("-e")
        .arg(&deb)
        .arg(control.path()));
    let conffiles = std::fs::read_to_string(control.path().join("conffiles")).unwrap();
    assert!(
        conffiles.contains("/etc/locksmith/locksmith.toml"),
        "{conffiles}"
    );
    let postinst = control.path().join("postinst");
    let script = std::fs::read_to_string(&postinst).unwrap();
    assert!(script.contains("adduser --system"), "{script}");
    assert!(script.contains("deb-systemd-helper"), "{script}");
    ok(Command::new("sh").arg("-n").arg(&postinst));
}

#[test]
fn installed_binary_runs_from_an_extracted_package() {
    crate::needs!("dpkg-deb", "man");
    let Some(root) = extracted() else { return };
    let bin = root.path().join("usr/bin/locksmith");
    let version = ok(Command::new(&bin).arg("--version"));
    assert!(version.starts_with("locksmith "), "{version}");
    let t = TestRepo::new(2);
    let out = Command::new(&bin)
        .args(["locks", "--json"])
        .env("RESTIC_REPOSITORY", &t.path)
        .env("RESTIC_PASSWORD", &t.password)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out));
    let page = ok(Command::new("man")
        .arg("-l")
        .arg(root.path().join("usr/share/man/man1/locksmith.1.gz"))
        .env("MANPAGER", "cat")
        .env("MANWIDTH", "100"));
    assert!(
        page.contains("EXIT STATUS") && page.contains("serve"),
        "{page}"
    );
    let completion = root
        .path()
        .join("usr/share/bash-completion/completions/locksmith");
    let loaded = ok(Command::new("bash").arg("-c").arg(format!(
        "source {} && complete -p locksmith",
        completion.display()
    )));
    assert!(loaded.contains("locksmith"), "{loaded}");
    // The example fleet file is one `serve --config` accepts as it stands (its password
    // file aside, which is the operator's to write).
    let fleet = root.path().join("etc/locksmith/locksmith.toml");
    let members = locksmith::fleet::load(
        &fleet,
        &Default::default(),
        locksmith::fleet::Defaults::default(),
    )
    .unwrap();
    assert_eq!(members.len(), 1);
}

#[test]
fn service_unit_passes_systemd_analyze_verify() {
    crate::needs!("dpkg-deb", "systemd-analyze");
    let Some(root) = extracted() else { return };
    let unit =
        std::fs::read_to_string(root.path().join("usr/lib/systemd/system/locksmith.service"))
            .unwrap();
    for line in [
        "User=locksmith",
        "NoNewPrivileges=yes",
        "ProtectSystem=strict",
        "PrivateTmp=yes",
        "Restart=on-failure",
        "StateDirectory=locksmith",
        "StateDirectoryMode=0700",
        "ExecStart=/usr/bin/locksmith serve --config /etc/locksmith/locksmith.toml",
    ] {
        assert!(unit.lines().any(|l| l == line), "{line} missing:\n{unit}");
    }
    // verify wants the program where ExecStart says: point it at the extracted one.
    let bin = root.path().join("usr/bin/locksmith");
    let dir = tempfile::tempdir().unwrap();
    let copy = dir.path().join("locksmith.service");
    std::fs::write(
        &copy,
        unit.replace("/usr/bin/locksmith", bin.to_str().unwrap()),
    )
    .unwrap();
    let out = Command::new("systemd-analyze")
        .args(["verify", "--man=no"])
        .arg(&copy)
        .output()
        .unwrap();
    let said = text(&out);
    assert!(out.status.success(), "{said}");
    assert!(!said.contains("locksmith.service:"), "{said}");
}

/// deploy/kubernetes validates against Kubernetes' own schemas, strictly (no field the
/// API would drop), and the agent there sees the node's processes and host name.
#[test]
fn the_kubernetes_manifests_validate() {
    crate::needs!("kubernetes-validate");
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("deploy/kubernetes");
    let files: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "yaml"))
        .collect();
    assert!(files.len() >= 2, "{files:?}");
    let out = std::process::Command::new("kubernetes-validate")
        .args(["--strict", "--no-warn"])
        .args(&files)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", crate::common::text(&out));
    let agent = std::fs::read_to_string(dir.join("agent.yaml")).unwrap();
    for needed in [
        "hostPID: true",
        "hostNetwork: true",
        "SYS_ADMIN",
        "--web-config",
    ] {
        assert!(agent.contains(needed), "agent.yaml lacks {needed}");
    }
}
