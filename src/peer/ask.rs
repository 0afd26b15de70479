//! Asking the peers: each host that holds a lock and has a peer is asked once, all at once,
//! within the run's time limit. Whatever goes wrong is a reason, never a failed run.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use serde::Serialize;

use super::answer::{HostAnswer, PATH, Question};
use super::memo::Wanted;
use super::view::PeerView;
use super::{Peer, Peers};

/// How a peer answered, for the report's `peers`.
#[derive(Debug, Clone, PartialEq, Serialize, serde::Deserialize)]
pub struct PeerStatus {
    pub hostname: String,
    /// The URL with any password masked.
    pub url: String,
    pub ok: bool,
    pub error: Option<String>,
    /// The peer's clock minus this host's.
    pub clock_offset_seconds: Option<f64>,
    pub rtt_seconds: Option<f64>,
}

/// The peers' answers of one run.
#[derive(Debug, Clone, Default)]
pub struct Consulted {
    views: BTreeMap<String, Result<PeerView, String>>,
    pub status: Vec<PeerStatus>,
}

/// Who answers for a host name's locks.
#[derive(Debug, Clone, PartialEq)]
pub enum Answering<'a> {
    /// No peer: this host judges alone (or its own kernel carries the name).
    Nobody,
    /// The peer named for it, or the one agent whose kernel carries the name.
    View(&'a PeerView),
    /// Why nobody can tell: the peer failed, or several agents claim the name.
    Failed(std::borrow::Cow<'a, str>),
}

impl Consulted {
    /// Who answers for `hostname`: the peer named for it, else the one agent whose kernel
    /// carries it (a container's or a Pod's name); two agents claiming it is an error.
    pub fn of(&self, hostname: &str) -> Answering<'_> {
        if let Some(got) = self.views.get(hostname) {
            return match got {
                Ok(v) => Answering::View(v),
                Err(e) => Answering::Failed(e.as_str().into()),
            };
        }
        let claims: Vec<(&str, &PeerView)> = self
            .views
            .iter()
            .filter_map(|(h, r)| Some((h.as_str(), r.as_ref().ok()?)))
            .filter(|(_, v)| v.answer.kernel.carries(hostname))
            .collect();
        match claims.as_slice() {
            [] => Answering::Nobody,
            [(_, v)] => Answering::View(v),
            more => Answering::Failed(
                format!(
                    "the agents of {} all claim this host name: none is believed",
                    more.iter()
                        .map(|(h, _)| format!("{h:?}"))
                        .collect::<Vec<_>>()
                        .join(" and ")
                )
                .into(),
            ),
        }
    }

    /// A consultation made of given answers (tests, and replaying a reading).
    pub fn from_views(views: impl IntoIterator<Item = (String, Result<PeerView, String>)>) -> Self {
        Consulted {
            views: views.into_iter().collect(),
            status: Vec::new(),
        }
    }
}

/// The peers in one line: `hostb ok (clock +0.2 s, 4 ms) · hostc: no answer within 2 s`.
pub fn summary(peers: &[PeerStatus]) -> String {
    peers
        .iter()
        .map(
            |s| match (&s.error, s.clock_offset_seconds, s.rtt_seconds) {
                (Some(e), _, _) => format!("{}: {e}", s.hostname),
                (None, Some(off), Some(rtt)) => format!(
                    "{} ok (clock {off:+.1} s, {:.0} ms)",
                    s.hostname,
                    rtt * 1000.0
                ),
                _ => format!("{} ok", s.hostname),
            },
        )
        .collect::<Vec<_>>()
        .join(" · ")
}

/// What to ask each host about its locks (`(hostname, pid)` pairs): the PIDs themselves,
/// and where restic's probe would land there.
pub fn questions<'a>(locks: impl Iterator<Item = (&'a str, i64)>) -> BTreeMap<&'a str, Question> {
    let mut out: BTreeMap<&str, Question> = BTreeMap::new();
    for (host, pid) in locks {
        out.entry(host).or_default().about(pid);
    }
    out
}

/// What to ask each peer: its own host's locks, and those of every host name no peer is
/// named for (a container or a Pod its kernel may carry). Peers with nothing to answer are
/// left out.
pub fn per_peer<'p, 'a>(
    peers: &'p Peers,
    locks: impl Iterator<Item = Asked<'a>>,
) -> Vec<(&'p Peer, Wanted)> {
    let mut by_host: BTreeMap<&str, Wanted> = BTreeMap::new();
    let mut unclaimed = Wanted::default();
    for a in locks {
        let to = match peers.get(a.hostname) {
            Some(_) => by_host.entry(a.hostname).or_default(),
            None => &mut unclaimed,
        };
        to.0.insert(a.id.to_string(), (a.pid, a.time));
    }
    peers
        .iter()
        .filter_map(|p| {
            let mut w = by_host.remove(p.hostname.as_str()).unwrap_or_default();
            w.0.extend(unclaimed.0.iter().map(|(i, p)| (i.clone(), *p)));
            (!w.0.is_empty()).then_some((p, w))
        })
        .collect()
}

/// A lock another host may answer for.
#[derive(Debug, Clone, Copy)]
pub struct Asked<'a> {
    pub hostname: &'a str,
    pub id: &'a str,
    pub pid: i64,
    /// Its time, in Unix seconds.
    pub time: i64,
}

/// Asks every peer with something to answer, at once, each within `timeout`, or reads
/// this round's answer where one covers these locks.
pub async fn consult<'a>(
    peers: &Peers,
    locks: impl Iterator<Item = Asked<'a>>,
    timeout: Duration,
) -> Consulted {
    if peers.is_empty() {
        return Consulted::default();
    }
    let asks: Vec<_> = per_peer(peers, locks)
        .into_iter()
        .map(|(p, w)| async move {
            let ask = |q: Question| async move { ask_within(p, &q, timeout).await };
            (p, peers.memo().answer(&p.hostname, w, ask).await)
        })
        .collect();
    let mut out = Consulted::default();
    for (peer, got) in futures::future::join_all(asks).await {
        let (view, rtt) = match got {
            Ok((v, rtt)) => (Ok(v), Some(rtt)),
            Err(e) => (Err(e), None),
        };
        out.status.push(PeerStatus {
            hostname: peer.hostname.clone(),
            url: peer.masked.clone(),
            ok: view.is_ok(),
            error: view.as_ref().err().cloned(),
            clock_offset_seconds: view
                .as_ref()
                .ok()
                .map(|v| v.offset.num_milliseconds() as f64 / 1000.0),
            rtt_seconds: rtt.map(|d: Duration| d.as_secs_f64()),
        });
        out.views.insert(peer.hostname.clone(), view);
    }
    out
}

async fn ask_within(
    peer: &Peer,
    q: &Question,
    limit: Duration,
) -> Result<(PeerView, Duration), String> {
    let got = match tokio::time::timeout(limit, ask_all(peer, q, limit)).await {
        Ok(got) => got,
        Err(_) => Err(format!(
            "no answer within {} s (--timeout)",
            limit.as_secs_f64()
        )),
    };
    got.map_err(|e| {
        let mut r = crate::secret::Redactor::default();
        let mut one = Peers::default();
        one.add(peer.clone());
        one.secrets_into(&mut r);
        r.scrub(&e)
    })
}

/// Asks `q` in batches the agent accepts, one after another, and joins the answers: a
/// host with ten thousand locks is judged whole, never refused for its size.
async fn ask_all(
    peer: &Peer,
    q: &Question,
    limit: Duration,
) -> Result<(PeerView, Duration), String> {
    let mut batches = q.batches(BATCH).into_iter();
    let first = batches.next().unwrap_or_default();
    let (mut view, mut rtt) = ask(peer, &first, limit).await?;
    for b in batches {
        let (more, took) = ask(peer, &b, limit).await?;
        view.absorb(more.answer);
        rtt = rtt.max(took);
    }
    Ok((view, rtt))
}

/// PIDs and groups per request: well under the agent's [`super::answer::MAX_ASKED`], and a
/// query string of a few kilobytes.
const BATCH: usize = 1000;

async fn ask(peer: &Peer, q: &Question, limit: Duration) -> Result<(PeerView, Duration), String> {
    let client = crate::backend::http::client(&crate::backend::http::ClientSpec {
        timeout: Some(limit),
        connect_timeout: limit,
        cacerts: peer.ca_file.iter().cloned().collect(),
        identity: peer.cert_file.clone().zip(peer.key_file.clone()),
        idle_per_host: Some(1),
        follow_redirects: false,
    })
    .map_err(|e| e.replacen("RESTIC_CACERT", "ca_file", 1))?;
    let mut url = url::Url::parse(peer.url.expose()).map_err(|e| e.to_string())?;
    let _ = url.set_username("");
    let _ = url.set_password(None);
    let asked_as = url.host_str().unwrap_or("?").to_string();
    url.set_path(&format!("{}{PATH}", url.path().trim_end_matches('/')));
    url.set_query(Some(&q.query()));
    let mut req = client.get(url);
    if let Some(user) = &peer.username {
        req = req.basic_auth(user, peer.password.as_ref().map(|p| p.expose()));
    }
    let sent = Instant::now();
    let sent_at = chrono::Utc::now();
    let resp = req.send().await.map_err(|e| words(&e, limit))?;
    let status = resp.status();
    let body = bounded_body(resp, limit).await?;
    let rtt = sent.elapsed();
    if !status.is_success() {
        return Err(match status.as_u16() {
            401 | 403 => format!("refused the credentials ({status})"),
            421 => format!(
                "refused the name {asked_as:?} it was asked by ({status}): start that agent with --allowed-hosts {asked_as}, or have it listen beyond loopback"
            ),
            300..=399 => {
                format!("answered {status}, a redirect: peers are never followed elsewhere")
            }
            _ => format!("answered {status}"),
        });
    }
    let answer: HostAnswer = serde_json::from_slice(&body)
        .map_err(|e| format!("answered something that is not a host answer ({e})"))?;
    Ok((
        PeerView::measured(answer, &peer.hostname, sent_at, rtt)?,
        rtt,
    ))
}

/// An answer's body, up to [`MAX_ANSWER`]: a peer gone wrong must not fill the memory.
async fn bounded_body(mut resp: reqwest::Response, limit: Duration) -> Result<Vec<u8>, String> {
    let mut body = Vec::new();
    while let Some(chunk) = resp.chunk().await.map_err(|e| words(&e, limit))? {
        if body.len() + chunk.len() > MAX_ANSWER {
            return Err(format!("answered more than {} MiB", MAX_ANSWER >> 20));
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}

/// The most an answer may hold: [`super::answer::MAX_ASKED`] processes are well under it.
const MAX_ANSWER: usize = 4 << 20;

/// A transport error in words, without its URL.
fn words(e: &reqwest::Error, limit: Duration) -> String {
    if e.is_timeout() {
        return format!("no answer within {} s (--timeout)", limit.as_secs_f64());
    }
    let mut text = if e.is_connect() {
        "cannot connect".to_string()
    } else {
        "request failed".to_string()
    };
    let mut source = std::error::Error::source(e);
    while let Some(s) = source {
        text.push_str(": ");
        text.push_str(&s.to_string());
        source = s.source();
    }
    text
}
