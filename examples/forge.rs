//! Seals what restic cannot make on demand, for `fixtures/make-fixtures.sh`:
//!
//!   forge add-key REPO PASSWORD_FILE NEW_PASSWORD_FILE N r p   → prints the new key's ID
//!   forge seal-lock REPO PASSWORD_FILE LOCK_JSON               → prints the new lock's ID
//!   forge seal-many REPO PASSWORD_FILE COUNT                   → COUNT varied locks
//!   forge kdf-time  KEY_FILE PASSWORD_FILE                     → seconds per derivation
//!
//! The repository is opened with the password in PASSWORD_FILE; files are written into it.

use std::path::Path;
use std::sync::Arc;

use locksmith::backend::LocalBackend;
use locksmith::locks::Lock;
use locksmith::repo::Repository;
use locksmith::restic::kdf::KdfParams;
use locksmith::seal::Encoding;
use locksmith::secret::Secret;

/// As the binary does, so that key derivation is timed as locksmith runs it.
#[global_allocator]
static ALLOCATOR: locksmith::Allocator = locksmith::Allocator;

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

/// Best of five derivations (the least disturbed by other load) with the key file's own parameters (run it with
/// `RAYON_NUM_THREADS=1` for the single-threaded time).
fn kdf_time(key_file: &str, pw_file: &str) {
    use base64::Engine as _;
    let kf: locksmith::repo::KeyFile =
        serde_json::from_slice(&std::fs::read(key_file).expect("key file")).expect("key JSON");
    let salt = base64::engine::general_purpose::STANDARD
        .decode(&kf.salt)
        .expect("salt");
    let pw = read_trimmed(pw_file);
    let mut t: Vec<f64> = (0..5)
        .map(|_| {
            let start = std::time::Instant::now();
            kf.params().derive(pw.as_bytes(), &salt).expect("derive");
            start.elapsed().as_secs_f64()
        })
        .collect();
    t.sort_by(f64::total_cmp);
    println!("{:.4} N={} r={} p={}", t[0], kf.n, kf.r, kf.p);
}

/// Locks as a busy fleet leaves them: several hosts, both kinds, the last 20 minutes.
fn varied_lock(i: usize) -> Lock {
    let t = chrono::Utc::now() - chrono::Duration::seconds((i * 7 % 1200) as i64);
    Lock {
        time: t.fixed_offset(),
        exclusive: i.is_multiple_of(10),
        hostname: format!("bench-host-{}", i % 7),
        username: "backup".into(),
        pid: 10_000 + i as i64,
        uid: 1000,
        gid: 1000,
    }
}

#[tokio::main]
async fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if let [cmd, key_file, pw_file] = args.as_slice()
        && cmd == "kdf-time"
    {
        return kdf_time(key_file, pw_file);
    }
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
            let lock = Lock::from_go_json(json.as_bytes()).expect("lock JSON");
            let enc = if repo.version >= 2 {
                Encoding::Zstd
            } else {
                Encoding::Json
            };
            let (id, bytes) = repo.seal_lock(&lock, enc);
            write_new(&repo_dir.join("locks"), &id, &bytes);
        }
        ("seal-many", [count]) => {
            let enc = if repo.version >= 2 {
                Encoding::Zstd
            } else {
                Encoding::Json
            };
            let dir = repo_dir.join("locks");
            std::fs::create_dir_all(&dir).expect("locks dir");
            for i in 0..count.parse::<usize>().expect("COUNT") {
                let (id, bytes) = repo.seal_lock(&varied_lock(i), enc);
                std::fs::write(dir.join(id), bytes).expect("write lock");
            }
        }
        _ => {
            eprintln!("forge: unknown command or wrong arguments");
            std::process::exit(2);
        }
    }
}
