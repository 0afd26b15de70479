//! `rclone:remote:path`: rclone serves the remote over restic's REST protocol on a
//! loopback port for as long as locksmith runs.

use std::net::{TcpListener, TcpStream};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use async_trait::async_trait;

use super::NetOptions;
use super::rest::RestBackend;
use super::{Backend, BackendError, Dir, Entry};

pub const DECLARED: super::Declared = super::Declared {
    scheme: "rclone",
    options: &["rclone.program"],
    env_prefixes: &["RCLONE_"],
    secrets: &[],
};

pub struct RcloneBackend {
    rest: RestBackend,
    child: Child,
}

fn free_port() -> std::io::Result<u16> {
    Ok(TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

impl RcloneBackend {
    /// Starts `PROGRAM serve restic --addr 127.0.0.1:PORT remote:path` (PROGRAM from
    /// `-o rclone.program`, default `rclone`) and waits until it listens.
    pub fn start(remote: &str, program: &str, net: NetOptions) -> Result<RcloneBackend, String> {
        let port = free_port().map_err(|e| format!("no free loopback port: {e}"))?;
        let mut cmd = Command::new(program);
        cmd.args(["serve", "restic", "--addr"])
            .arg(format!("127.0.0.1:{port}"))
            .arg(remote)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        let mut child = cmd
            .spawn()
            .map_err(|e| format!("cannot start {program}: {e}"))?;
        let start = Instant::now();
        while TcpStream::connect(("127.0.0.1", port)).is_err() {
            if let Ok(Some(st)) = child.try_wait() {
                return Err(format!("{program} serve restic exited ({st})"));
            }
            if start.elapsed() > Duration::from_secs(20) {
                let _ = child.kill();
                let _ = child.wait();
                return Err(format!("{program} serve restic did not listen within 20 s"));
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let rest = RestBackend::new(&format!("http://127.0.0.1:{port}/"), None, None, &[], net)?;
        Ok(RcloneBackend { rest, child })
    }
}

impl Drop for RcloneBackend {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[async_trait]
impl Backend for RcloneBackend {
    async fn read_config(&self) -> Result<Vec<u8>, BackendError> {
        self.rest.read_config().await
    }
    async fn list(&self, dir: Dir) -> Result<Vec<Entry>, BackendError> {
        self.rest.list(dir).await
    }
    async fn read(&self, dir: Dir, name: &str, limit: u64) -> Result<Vec<u8>, BackendError> {
        self.rest.read(dir, name, limit).await
    }
}
