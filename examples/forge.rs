//! Seals what restic cannot make on demand, for `fixtures/make-fixtures.sh`:
//!
//!   forge add-key REPO PASSWORD_FILE NEW_PASSWORD_FILE N r p   → prints the new key's ID
//!   forge seal-lock REPO PASSWORD_FILE LOCK_JSON               → prints the new lock's ID
//!
//! The repository is opened with the password in PASSWORD_FILE; files are written into it.

use std::path::Path;
use std::sync::Arc;

use locksmith::backend::LocalBackend;
use locksmith::crypto::KdfParams;
use locksmith::locks::Lock;
use locksmith::repo::Repository;
use locksmith::seal::Encoding;
use locksmith::secret::Secret;

fn read_trimmed(path: &str) -> String {
    std::fs::read_to_string(path)
        .unwrap_or_else(|e| panic!("{path}: {e}"))
        .trim()
        .to_string()
}

fn write_new(dir: &Path, id: &str, bytes: &[u8]) {
    std::fs::write(dir.join(id), bytes).expect("write into the repository");
    println!("{id}");
}

#[tokio::main]
async fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let (cmd, repo_dir, pw_file) = match args.as_slice() {
        [cmd, repo, pw, ..] => (cmd.as_str(), Path::new(repo), pw.as_str()),
        _ => {
            eprintln!("usage: forge add-key|seal-lock REPO PASSWORD_FILE …");
            std::process::exit(2);
        }
    };
    let repo = Repository::open(
        Arc::new(LocalBackend::new(repo_dir)),
        &Secret::new(read_trimmed(pw_file)),
        None,
    )
    .await
    .unwrap_or_else(|e| panic!("open {}: {e}", repo_dir.display()));
    match (cmd, &args[3..]) {
        ("add-key", [new_pw, n, r, p]) => {
            let params = KdfParams {
                n: n.parse().expect("N"),
                r: r.parse().expect("r"),
                p: p.parse().expect("p"),
            };
            let (id, bytes) = repo
                .new_key_file(&read_trimmed(new_pw), params, "fixture", "locksmith-forge")
                .expect("key");
            write_new(&repo_dir.join("keys"), &id, &bytes);
        }
        ("seal-lock", [json]) => {
            let lock: Lock = serde_json::from_str(json).expect("lock JSON");
            let enc = if repo.version >= 2 {
                Encoding::Zstd
            } else {
                Encoding::Json
            };
            let (id, bytes) = repo.seal_lock(&lock, enc);
            write_new(&repo_dir.join("locks"), &id, &bytes);
        }
        _ => {
            eprintln!("forge: unknown command or wrong arguments");
            std::process::exit(2);
        }
    }
}
