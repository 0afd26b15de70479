//! Reading this kernel's [`Kernel`] from `/proc`, once per reading: two link reads per
//! process (its PID and UTS namespaces), `status` only for processes of other PID
//! namespaces, and `comm` and `stat` only at the PIDs asked about. Host names of other UTS
//! namespaces are read by entering each once, on a thread of its own (`setns` moves only
//! the calling thread), which needs root; what cannot be read is said, never guessed.

use std::collections::{BTreeSet, HashMap};
use std::path::Path;

use super::{Kernel, NsProcess};
use crate::process::{HostView, ThisHost};

/// The inode the kernel gives the initial PID namespace (`PROC_PID_INIT_INO`).
const INITIAL_PID_NS: &str = "pid:[4026531836]";

/// This kernel as seen from here, for the processes whose own PID is in `asked`; with
/// `names`, every UTS host name it carries too (one more link read per process: only
/// when a lock names a host other than this one, or an agent answers).
pub fn read(host: &ThisHost, asked: &BTreeSet<i32>, names: bool) -> Kernel {
    read_from(Path::new("/proc"), host, asked, names)
}

/// `/proc`, opened once: links are read relative to it, without building paths.
struct Proc {
    dir: std::fs::File,
}

impl Proc {
    fn link(&self, pid: &str, ns: &str) -> Option<String> {
        let l = rustix::fs::readlinkat(&self.dir, format!("{pid}/ns/{ns}"), Vec::new()).ok()?;
        Some(l.to_string_lossy().into_owned())
    }
}

/// The `NSpid` line of `status`: the PID in each namespace, outermost first.
fn nspid(proc: &Path, pid: &str) -> Option<Vec<i32>> {
    let status = std::fs::read_to_string(proc.join(pid).join("status")).ok()?;
    let line = status.lines().find_map(|l| l.strip_prefix("NSpid:"))?;
    line.split_whitespace().map(|n| n.parse().ok()).collect()
}

/// One process's place: its own PID, whether it is in the reader's PID namespace, and
/// that namespace (where its link can be read).
fn place(
    (proc, dir): (&Path, &Proc),
    name: &str,
    own_ns: Option<&str>,
    own_depth: usize,
) -> Option<(i32, bool, Option<String>)> {
    let outer: i32 = name.parse().ok()?;
    let ns = dir.link(name, "pid");
    if ns.is_some() && ns.as_deref() == own_ns {
        return Some((outer, true, ns));
    }
    let chain = nspid(proc, name)?;
    Some((*chain.last()?, chain.len() <= own_depth, ns))
}

fn read_from(proc: &Path, host: &ThisHost, asked: &BTreeSet<i32>, with_names: bool) -> Kernel {
    let Ok(dir) = std::fs::File::open(proc).map(|dir| Proc { dir }) else {
        return Kernel {
            unseen: vec![format!("{} could not be read", proc.display())],
            ..Kernel::default()
        };
    };
    let own_ns = dir.link("self", "pid");
    let own_uts = dir.link("self", "uts");
    let own_depth = nspid(proc, "self").map_or(1, |c| c.len());
    let mut processes = Vec::new();
    // Each UTS namespace once: one process to enter it by, and the processes it names.
    let mut uts: HashMap<String, (String, Vec<usize>)> = HashMap::new();
    let mut hidden = 0usize;
    // The kernel's host names are read through the first process of each PID namespace
    // (a container's, a Pod's): a name missed that way leaves its locks `unknown`, never
    // judged wrong. A process at an asked PID has its own read.
    let mut pid_namespaces: std::collections::HashSet<String> = Default::default();
    let entries = std::fs::read_dir(proc).into_iter().flatten().flatten();
    for e in entries {
        let name = e.file_name().to_string_lossy().into_owned();
        if !name.bytes().all(|b| b.is_ascii_digit()) {
            continue;
        }
        let Some((pid, here, pid_ns)) = place((proc, &dir), &name, own_ns.as_deref(), own_depth)
        else {
            // Gone since the listing, or not ours to read (its PID namespace unknown).
            hidden += usize::from(proc.join(&name).exists());
            continue;
        };
        let index = asked.contains(&pid).then(|| {
            let outer: i32 = name.parse().unwrap_or(0);
            processes.push(NsProcess {
                pid,
                hostname: None,
                here,
                started: host.started(outer),
                restic: host.command(outer).is_some_and(|c| c.contains("restic")),
            });
            processes.len() - 1
        });
        let first_of_its_namespace = with_names && pid_ns.is_some_and(|n| pid_namespaces.insert(n));
        if index.is_none() && !first_of_its_namespace {
            continue;
        }
        if let Some(ns) = dir.link(&name, "uts") {
            let slot = uts.entry(ns).or_insert_with(|| (name.clone(), Vec::new()));
            slot.1.extend(index);
        }
    }
    let mut names = BTreeSet::from([host.hostname().to_string()]);
    let reps: Vec<(String, String)> = uts
        .iter()
        .filter(|(ns, _)| Some(ns.as_str()) != own_uts.as_deref())
        .map(|(ns, (rep, _))| (ns.clone(), rep.clone()))
        .collect();
    let mut read_names = uts_names(proc, &reps);
    if let Some(own) = &own_uts {
        read_names.insert(own.clone(), host.hostname().to_string());
    }
    // A namespace whose name cannot be read hides no holder (a restic there with the
    // lock's PID counts as alive); only whether it carries a name, which then stays
    // `unknown`.
    for (ns, (_, members)) in &uts {
        if let Some(n) = read_names.get(ns) {
            names.insert(n.clone());
            for &i in members {
                processes[i].hostname = Some(n.clone());
            }
        }
    }
    Kernel {
        names,
        processes,
        unseen: unseen(proc, own_ns.as_deref(), hidden),
    }
}

/// The host name of each UTS namespace, entered through a process in it; namespaces that
/// cannot be entered (not root) are left out.
fn uts_names(proc: &Path, reps: &[(String, String)]) -> HashMap<String, String> {
    if reps.is_empty() {
        return HashMap::new();
    }
    let proc = proc.to_path_buf();
    let reps = reps.to_vec();
    std::thread::spawn(move || {
        let mut out = HashMap::new();
        for (ns, rep) in reps {
            let Ok(f) = std::fs::File::open(proc.join(&rep).join("ns").join("uts")) else {
                continue;
            };
            use std::os::fd::AsFd;
            let entered = rustix::thread::move_into_link_name_space(
                f.as_fd(),
                Some(rustix::thread::LinkNameSpaceType::HostNameAndNISDomainName),
            );
            if entered.is_ok() {
                let name = rustix::system::uname()
                    .nodename()
                    .to_string_lossy()
                    .into_owned();
                out.insert(ns, name);
            }
        }
        out
    })
    .join()
    .unwrap_or_default()
}

/// What this reader cannot see, each as a sentence.
fn unseen(proc: &Path, own_ns: Option<&str>, hidden: usize) -> Vec<String> {
    let mut out = Vec::new();
    if own_ns.is_some_and(|ns| ns != INITIAL_PID_NS) {
        out.push(
            "this runs in a PID namespace of its own: other containers of this host are not visible from here"
                .to_string(),
        );
    }
    if hidepid(proc) && !rustix::process::geteuid().is_root() {
        out.push(
            "/proc is mounted with hidepid: other users' processes are not visible to this user"
                .to_string(),
        );
    }
    if hidden > 0 {
        out.push(format!(
            "{hidden} process{} could not be read from here (root can)",
            if hidden == 1 { "" } else { "es" }
        ));
    }
    out
}

/// Whether `/proc` hides other users' processes (`hidepid=1|2|invisible|noaccess`).
fn hidepid(proc: &Path) -> bool {
    let Ok(info) = std::fs::read_to_string(proc.join("self/mountinfo")) else {
        return false;
    };
    info.lines()
        .filter(|l| l.split(' ').nth(4) == Some("/proc"))
        .filter_map(|l| l.split(" - ").nth(1))
        .flat_map(|super_opts| super_opts.split([',', ' ']))
        .filter_map(|o| o.strip_prefix("hidepid="))
        .any(|v| !matches!(v, "0" | "off"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn this_process_is_found_under_this_host_name() {
        let host = ThisHost::new();
        let me = std::process::id() as i32;
        let k = read(&host, &BTreeSet::from([me]), true);
        assert!(k.carries(host.hostname()), "{k:?}");
        let mine: Vec<_> = k.processes.iter().filter(|p| p.pid == me).collect();
        assert_eq!(mine.len(), 1, "{k:?}");
        assert!(mine[0].here);
        assert_eq!(mine[0].hostname.as_deref(), Some(host.hostname()));
        assert!(mine[0].started.is_some());
    }

    #[test]
    fn nothing_asked_indexes_no_process() {
        let k = read(&ThisHost::new(), &BTreeSet::new(), true);
        assert!(k.processes.is_empty());
        assert!(!k.names.is_empty());
    }
}
