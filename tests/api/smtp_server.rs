//! An SMTP server for tests: real SMTP over TCP on 127.0.0.1, with faults that can be injected
//! at run time (rejections by recipient, transient failures, throttling, connections cut in the
//! middle of DATA, mail taken without a reply, stalls, a refused STARTTLS, AUTH with credentials
//! to check or refuse).

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Notify;
use tokio::task::JoinSet;

/// Longest command line accepted, and largest message.
const MAX_LINE: usize = 1000;
const MAX_MESSAGE: usize = 10 * 1024 * 1024;

#[derive(Debug, Clone)]
pub struct ReceivedMail {
    pub mail_from: String,
    pub rcpt_to: Vec<String>,
    /// The message as received, dot-unstuffed, without the final ".\r\n".
    pub data: Vec<u8>,
    /// The name the client greeted with (EHLO or HELO).
    pub helo: String,
    #[allow(dead_code)] // read by the sending-engine tests
    pub connection_id: u64,
    /// When the end of DATA arrived.
    pub received_at: Instant,
    /// When its MAIL FROM arrived: the start of the transaction, closest to the moment the
    /// sender decided to send (rate-limit tests measure this).
    #[allow(dead_code)] // read by the engine tests
    pub started_at: Instant,
    /// The user name of a successful AUTH on its connection, if any.
    #[allow(dead_code)] // read by the delivery-fault tests
    pub authenticated_as: Option<String>,
}

/// Faults to inject; `Default` is a well-behaved relay. Substring rules match recipient addresses.
#[derive(Debug, Clone, Default)]
pub struct Faults {
    /// Reply to the greeting with this and close (e.g. 421).
    pub greeting: Option<(u16, String)>,
    /// RCPT for a matching recipient always gets this reply.
    pub rcpt: Vec<(String, u16, String)>,
    /// RCPT for a matching recipient gets this reply the first N times, then is accepted.
    pub rcpt_transient_times: Vec<(String, u32, u16, String)>,
    /// After the body of a mail to a matching recipient, reply this instead of 250.
    pub data_reply: Vec<(String, u16, String)>,
    /// Once N mails were accepted in total, answer MAIL FROM with this and close.
    pub throttle_after: Option<(usize, u16, String)>,
    /// The first N mails to a matching recipient: drop the connection in the middle of DATA.
    pub cut_in_data_times: Vec<(String, u32)>,
    /// The first N mails to a matching recipient: take the whole message, then drop the
    /// connection without the 250 (the mail is recorded in `ambiguous()`).
    pub close_before_250_times: Vec<(String, u32)>,
    /// Wait this long before each reply after the greeting.
    pub stall: Option<Duration>,
    /// Wait this long before answering RCPT for a matching recipient (that connection only).
    pub stall_rcpt: Vec<(String, Duration)>,
    /// Advertise STARTTLS and answer it with `454 4.7.0` (TLS not available).
    pub refuse_starttls: bool,
    /// Advertise `AUTH PLAIN LOGIN`, accept only this (user, password), and answer MAIL FROM
    /// with `530 5.7.0` until a client authenticated.
    pub require_auth: Option<(String, String)>,
    /// The first N AUTH attempts get `535 5.7.8` whatever the credentials.
    pub refuse_auth_times: u32,
    /// Do not offer SMTPUTF8, and refuse a non-ASCII address in MAIL FROM or RCPT TO with
    /// `553 5.6.7`, as such a relay does (RFC 6531 §3.5).
    pub no_smtputf8: bool,
}

#[derive(Default)]
struct State {
    accepted: Mutex<Vec<ReceivedMail>>,
    ambiguous: Mutex<Vec<ReceivedMail>>,
    faults: Mutex<Faults>,
    /// How many times each counted rule fired, by rule kind and index.
    fired: Mutex<HashMap<(&'static str, usize), u32>>,
    arrived: Notify,
    /// Wakes every connection waiting for a command, to say 421 and close.
    closing: Notify,
    connections: AtomicU64,
    open: AtomicUsize,
    max_open: AtomicUsize,
}

#[derive(Clone)]
pub struct TestSmtp {
    addr: SocketAddr,
    state: Arc<State>,
    tasks: Arc<Mutex<Option<JoinSet<()>>>>,
}

impl TestSmtp {
    pub async fn start() -> TestSmtp {
        Self::bind("127.0.0.1:0")
            .await
            .expect("binding the test SMTP server")
    }

    /// Listens on a given port again, e.g. to bring a relay back up.
    pub async fn start_on(port: u16) -> std::io::Result<TestSmtp> {
        Self::bind(&format!("127.0.0.1:{port}")).await
    }

    async fn bind(addr: &str) -> std::io::Result<TestSmtp> {
        let listener = TcpListener::bind(addr).await?;
        let addr = listener.local_addr()?;
        let state = Arc::new(State::default());
        let mut tasks = JoinSet::new();
        let accept_state = Arc::clone(&state);
        let tasks_handle: Arc<Mutex<Option<JoinSet<()>>>> = Arc::new(Mutex::new(None));
        let conn_tasks = Arc::clone(&tasks_handle);
        tasks.spawn(async move {
            let mut connections = JoinSet::new();
            loop {
                tokio::select! {
                    accepted = listener.accept() => {
                        let Ok((stream, _)) = accepted else { continue };
                        let _ = stream.set_nodelay(true);
                        let state = Arc::clone(&accept_state);
                        connections.spawn(serve(stream, state));
                    }
                    Some(_) = connections.join_next(), if !connections.is_empty() => {}
                }
            }
        });
        *conn_tasks.lock().unwrap() = Some(tasks);
        Ok(TestSmtp {
            addr,
            state,
            tasks: tasks_handle,
        })
    }

    pub fn port(&self) -> u16 {
        self.addr.port()
    }

    /// A lettre connection URL for this server (plain SMTP, no TLS).
    pub fn url(&self) -> String {
        format!("smtp://127.0.0.1:{}", self.port())
    }

    pub fn messages(&self) -> Vec<ReceivedMail> {
        self.state.accepted.lock().unwrap().clone()
    }

    /// The first recipient (RCPT TO) of each mail accepted so far, sorted; a mail received
    /// twice appears twice.
    pub fn recipients_sorted(&self) -> Vec<String> {
        let mut recipients: Vec<String> = self
            .messages()
            .into_iter()
            .map(|m| m.rcpt_to[0].clone())
            .collect();
        recipients.sort();
        recipients
    }

    pub fn count(&self) -> usize {
        self.state.accepted.lock().unwrap().len()
    }

    #[allow(dead_code)] // read by the sending-engine tests
    pub fn ambiguous(&self) -> Vec<ReceivedMail> {
        self.state.ambiguous.lock().unwrap().clone()
    }

    pub fn set_faults(&self, faults: Faults) {
        *self.state.faults.lock().unwrap() = faults;
        self.state.fired.lock().unwrap().clear();
    }

    #[allow(dead_code)] // read by the sending-engine tests
    pub fn connections_accepted(&self) -> u64 {
        self.state.connections.load(Ordering::SeqCst)
    }

    #[allow(dead_code)] // read by the sending-engine tests
    pub fn max_concurrent_connections(&self) -> usize {
        self.state.max_open.load(Ordering::SeqCst)
    }

    /// Waits until at least `n` mails were accepted; panics after `timeout` saying how many came.
    pub async fn wait_for(&self, n: usize, timeout: Duration) -> Vec<ReceivedMail> {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let notified = self.state.arrived.notified();
            let count = self.count();
            if count >= n {
                return self.messages();
            }
            if tokio::time::timeout_at(deadline, notified).await.is_err() {
                panic!(
                    "expected {n} mails within {timeout:?}, {} arrived",
                    self.count()
                );
            }
        }
    }

    /// Every connection waiting for a command gets `421 4.4.2` and is closed, as a relay
    /// does with idle clients; the server keeps listening.
    #[allow(dead_code)] // used by the api tests
    pub fn close_idle_connections(&self) {
        self.state.closing.notify_waiters();
    }

    /// Stops listening and drops every open connection: the relay is down, its port free.
    pub async fn stop(&self) {
        let tasks = self.tasks.lock().unwrap().take();
        if let Some(mut tasks) = tasks {
            tasks.abort_all();
            while tasks.join_next().await.is_some() {}
        }
    }
}

/// Counts a firing of the `index`th rule of `kind`; true while it has fired fewer than `times`.
fn fire(state: &State, kind: &'static str, index: usize, times: u32) -> bool {
    let mut fired = state.fired.lock().unwrap();
    let n = fired.entry((kind, index)).or_insert(0);
    if *n < times {
        *n += 1;
        true
    } else {
        false
    }
}

struct OpenGuard<'a>(&'a State);

impl Drop for OpenGuard<'_> {
    fn drop(&mut self) {
        self.0.open.fetch_sub(1, Ordering::SeqCst);
    }
}

async fn serve(stream: TcpStream, state: Arc<State>) {
    let id = state.connections.fetch_add(1, Ordering::SeqCst) + 1;
    let open = state.open.fetch_add(1, Ordering::SeqCst) + 1;
    state.max_open.fetch_max(open, Ordering::SeqCst);
    let _guard = OpenGuard(&state);
    let _ = session(stream, &state, id).await;
}

enum After {
    Continue,
    Close,
}

async fn session(stream: TcpStream, state: &State, id: u64) -> std::io::Result<()> {
    let (read, mut write) = stream.into_split();
    let mut reader = BufReader::new(read);
    let greeting = state.faults.lock().unwrap().greeting.clone();
    if let Some((code, text)) = greeting {
        write
            .write_all(format!("{code} {text}\r\n").as_bytes())
            .await?;
        return Ok(());
    }
    write.write_all(b"220 test-smtp ESMTP ready\r\n").await?;
    let mut mail_from: Option<String> = None;
    let mut started_at = Instant::now();
    let mut rcpt_to: Vec<String> = Vec::new();
    let mut authenticated_as: Option<String> = None;
    let mut helo = String::new();
    let mut line = Vec::new();
    loop {
        line.clear();
        let mut limited = (&mut reader).take(MAX_LINE as u64 + 2);
        let n = tokio::select! {
            n = limited.read_until(b'\n', &mut line) => n?,
            _ = state.closing.notified() => {
                write.write_all(b"421 4.4.2 test-smtp closing idle connection\r\n").await?;
                return Ok(());
            }
        };
        if n == 0 {
            return Ok(());
        }
        let stall = state.faults.lock().unwrap().stall;
        if let Some(stall) = stall {
            tokio::time::sleep(stall).await;
        }
        if !line.ends_with(b"\n") {
            write.write_all(b"500 5.5.2 line too long\r\n").await?;
            return Ok(());
        }
        let text = String::from_utf8_lossy(&line).trim_end().to_owned();
        let upper = text.to_ascii_uppercase();
        let verb = upper.split_whitespace().next().unwrap_or("");
        if verb == "EHLO" || verb == "HELO" {
            helo = text.split_whitespace().nth(1).unwrap_or("").to_owned();
        }
        let reply: String = match verb {
            "EHLO" => ehlo_reply(&state.faults.lock().unwrap()),
            "STARTTLS" if state.faults.lock().unwrap().refuse_starttls => {
                "454 4.7.0 TLS not available due to temporary reason".into()
            }
            "AUTH" if state.faults.lock().unwrap().require_auth.is_some() => {
                match authenticate(&mut reader, &mut write, state, &text).await? {
                    Some(user) => {
                        authenticated_as = Some(user);
                        "235 2.7.0 authentication successful".into()
                    }
                    None => "535 5.7.8 authentication credentials invalid".into(),
                }
            }
            "HELO" => "250 test-smtp".into(),
            "NOOP" => "250 2.0.0 ok".into(),
            "RSET" => {
                mail_from = None;
                rcpt_to.clear();
                "250 2.0.0 ok".into()
            }
            "QUIT" => {
                write.write_all(b"221 2.0.0 bye\r\n").await?;
                return Ok(());
            }
            "MAIL"
                if authenticated_as.is_none()
                    && state.faults.lock().unwrap().require_auth.is_some() =>
            {
                "530 5.7.0 authentication required".into()
            }
            "MAIL" => {
                let throttle = state.faults.lock().unwrap().throttle_after.clone();
                if let Some((after, code, msg)) = throttle {
                    if state.accepted.lock().unwrap().len() >= after {
                        write
                            .write_all(format!("{code} {msg}\r\n").as_bytes())
                            .await?;
                        return Ok(());
                    }
                }
                mail_from = Some(angle_address(&text));
                started_at = Instant::now();
                rcpt_to.clear();
                "250 2.1.0 ok".into()
            }
            "RCPT" if mail_from.is_some() => {
                let rcpt = angle_address(&text);
                let stall = state
                    .faults
                    .lock()
                    .unwrap()
                    .stall_rcpt
                    .iter()
                    .find(|(m, _)| rcpt.contains(m.as_str()))
                    .map(|(_, d)| *d);
                if let Some(stall) = stall {
                    tokio::time::sleep(stall).await;
                }
                let ascii_only = state.faults.lock().unwrap().no_smtputf8;
                match rcpt_reply(state, &rcpt).or_else(|| {
                    (ascii_only && !rcpt.is_ascii())
                        .then(|| "553 5.6.7 non-ASCII address without SMTPUTF8".to_owned())
                }) {
                    Some(reply) => reply,
                    None => {
                        rcpt_to.push(rcpt);
                        "250 2.1.5 ok".into()
                    }
                }
            }
            "DATA" if mail_from.is_some() && !rcpt_to.is_empty() => {
                write
                    .write_all(b"354 end data with <CR><LF>.<CR><LF>\r\n")
                    .await?;
                let mail = ReceivedMail {
                    mail_from: mail_from.take().unwrap_or_default(),
                    rcpt_to: std::mem::take(&mut rcpt_to),
                    data: Vec::new(),
                    helo: helo.clone(),
                    connection_id: id,
                    received_at: Instant::now(),
                    started_at,
                    authenticated_as: authenticated_as.clone(),
                };
                match receive_data(&mut reader, &mut write, state, mail).await? {
                    After::Continue => continue,
                    After::Close => return Ok(()),
                }
            }
            "RCPT" | "DATA" => "503 5.5.1 bad sequence of commands".into(),
            _ => "500 5.5.1 command not recognized".into(),
        };
        write.write_all(format!("{reply}\r\n").as_bytes()).await?;
    }
}

fn ehlo_reply(faults: &Faults) -> String {
    let mut reply = String::from("250-test-smtp\r\n250-8BITMIME\r\n");
    if !faults.no_smtputf8 {
        reply.push_str("250-SMTPUTF8\r\n");
    }
    if faults.refuse_starttls {
        reply.push_str("250-STARTTLS\r\n");
    }
    if faults.require_auth.is_some() {
        reply.push_str("250-AUTH PLAIN LOGIN\r\n");
    }
    reply.push_str("250 SIZE 10485760");
    reply
}

/// Runs one AUTH exchange (PLAIN with an initial response or after a 334, or LOGIN); the user
/// name when the credentials match and no refusal is due.
async fn authenticate(
    reader: &mut BufReader<tokio::net::tcp::OwnedReadHalf>,
    write: &mut tokio::net::tcp::OwnedWriteHalf,
    state: &State,
    command: &str,
) -> std::io::Result<Option<String>> {
    use base64::Engine;
    let b64 = base64::engine::general_purpose::STANDARD;
    let mut ask = async |prompt: &str| -> std::io::Result<Vec<u8>> {
        write
            .write_all(format!("334 {prompt}\r\n").as_bytes())
            .await?;
        let mut answer = String::new();
        (&mut *reader)
            .take(MAX_LINE as u64)
            .read_line(&mut answer)
            .await?;
        Ok(b64.decode(answer.trim_end()).unwrap_or_default())
    };
    let mut words = command.split_whitespace().skip(1);
    let (user, password) = match words.next().map(str::to_ascii_uppercase).as_deref() {
        Some("PLAIN") => {
            let blob = match words.next() {
                Some(initial) => b64.decode(initial).unwrap_or_default(),
                None => ask("").await?,
            };
            let mut parts = blob.split(|b| *b == 0).skip(1);
            let field =
                |p: Option<&[u8]>| String::from_utf8_lossy(p.unwrap_or_default()).into_owned();
            (field(parts.next()), field(parts.next()))
        }
        Some("LOGIN") => {
            let user = ask(&b64.encode("Username:")).await?;
            let password = ask(&b64.encode("Password:")).await?;
            (
                String::from_utf8_lossy(&user).into_owned(),
                String::from_utf8_lossy(&password).into_owned(),
            )
        }
        _ => return Ok(None),
    };
    let times = state.faults.lock().unwrap().refuse_auth_times;
    if fire(state, "refuse_auth", 0, times) {
        return Ok(None);
    }
    let expected = state.faults.lock().unwrap().require_auth.clone();
    Ok(expected
        .filter(|(u, p)| *u == user && *p == password)
        .map(|(u, _)| u))
}

fn rcpt_reply(state: &State, rcpt: &str) -> Option<String> {
    let faults = state.faults.lock().unwrap().clone();
    if let Some((_, code, msg)) = faults
        .rcpt
        .iter()
        .find(|(m, _, _)| rcpt.contains(m.as_str()))
    {
        return Some(format!("{code} {msg}"));
    }
    for (i, (m, times, code, msg)) in faults.rcpt_transient_times.iter().enumerate() {
        if rcpt.contains(m.as_str()) && fire(state, "rcpt_transient", i, *times) {
            return Some(format!("{code} {msg}"));
        }
    }
    None
}

async fn receive_data(
    reader: &mut BufReader<tokio::net::tcp::OwnedReadHalf>,
    write: &mut tokio::net::tcp::OwnedWriteHalf,
    state: &State,
    mut mail: ReceivedMail,
) -> std::io::Result<After> {
    let faults = state.faults.lock().unwrap().clone();
    let matches = |m: &String| mail.rcpt_to.iter().any(|r| r.contains(m.as_str()));
    let cut = faults
        .cut_in_data_times
        .iter()
        .enumerate()
        .any(|(i, (m, times))| matches(m) && fire(state, "cut", i, *times));
    let mut line = Vec::new();
    let mut too_big = false;
    loop {
        line.clear();
        let n = reader.read_until(b'\n', &mut line).await?;
        if n == 0 {
            return Ok(After::Close);
        }
        if cut {
            return Ok(After::Close);
        }
        if line == b".\r\n" || line == b".\n" {
            break;
        }
        let content = line.strip_prefix(b".").unwrap_or(&line);
        if mail.data.len() + content.len() > MAX_MESSAGE {
            too_big = true;
        } else {
            mail.data.extend_from_slice(content);
        }
    }
    mail.received_at = Instant::now();
    if too_big {
        write.write_all(b"552 5.3.4 message too big\r\n").await?;
        return Ok(After::Continue);
    }
    let ambiguous = faults
        .close_before_250_times
        .iter()
        .enumerate()
        .any(|(i, (m, times))| matches(m) && fire(state, "close_before_250", i, *times));
    if ambiguous {
        state.ambiguous.lock().unwrap().push(mail);
        return Ok(After::Close);
    }
    if let Some((_, code, msg)) = faults.data_reply.iter().find(|(m, _, _)| matches(m)) {
        write
            .write_all(format!("{code} {msg}\r\n").as_bytes())
            .await?;
        return Ok(After::Continue);
    }
    state.accepted.lock().unwrap().push(mail);
    state.arrived.notify_waiters();
    write.write_all(b"250 2.0.0 ok: queued\r\n").await?;
    Ok(After::Continue)
}

/// The address between angle brackets in `MAIL FROM:<a@b> SIZE=1`.
fn angle_address(line: &str) -> String {
    let start = line.find('<').map_or(0, |i| i + 1);
    let end = line[start..].find('>').map_or(line.len(), |i| start + i);
    line[start..end].to_owned()
}

#[cfg(test)]
mod self_checks {
    use super::*;

    async fn command(stream: &mut BufReader<TcpStream>, line: &str) -> String {
        stream
            .get_mut()
            .write_all(format!("{line}\r\n").as_bytes())
            .await
            .unwrap();
        read_reply(stream).await
    }

    async fn read_reply(stream: &mut BufReader<TcpStream>) -> String {
        let mut all = String::new();
        loop {
            let mut line = String::new();
            stream.read_line(&mut line).await.unwrap();
            all.push_str(&line);
            if line.len() < 4 || line.as_bytes()[3] != b'-' {
                return all;
            }
        }
    }

    async fn connect(smtp: &TestSmtp) -> BufReader<TcpStream> {
        let mut s = BufReader::new(
            TcpStream::connect(("127.0.0.1", smtp.port()))
                .await
                .unwrap(),
        );
        assert!(read_reply(&mut s).await.starts_with("220"));
        s
    }

    #[tokio::test]
    async fn smtp_server_unstuffs_dots_and_records_the_message() {
        let smtp = TestSmtp::start().await;
        let mut s = connect(&smtp).await;
        assert!(command(&mut s, "EHLO me").await.starts_with("250"));
        assert!(command(&mut s, "MAIL FROM:<a@example.org>")
            .await
            .starts_with("250"));
        assert!(command(&mut s, "RCPT TO:<b@example.org>")
            .await
            .starts_with("250"));
        assert!(command(&mut s, "DATA").await.starts_with("354"));
        assert!(command(&mut s, "Subject: x\r\n\r\n..dot\r\n.")
            .await
            .starts_with("250"));
        let mail = smtp.wait_for(1, Duration::from_secs(2)).await.remove(0);
        assert_eq!(mail.rcpt_to, ["b@example.org"]);
        assert_eq!(mail.data, b"Subject: x\r\n\r\n.dot\r\n");
    }

    #[tokio::test]
    async fn smtp_server_rejects_a_recipient_by_rule_and_can_be_stopped_and_restarted() {
        let smtp = TestSmtp::start().await;
        smtp.set_faults(Faults {
            rcpt: vec![("bounce".into(), 550, "5.1.1 no such user".into())],
            ..Faults::default()
        });
        let mut s = connect(&smtp).await;
        command(&mut s, "HELO me").await;
        command(&mut s, "MAIL FROM:<a@example.org>").await;
        assert!(command(&mut s, "RCPT TO:<bounce@example.org>")
            .await
            .starts_with("550 5.1.1"));
        let port = smtp.port();
        smtp.stop().await;
        assert!(TcpStream::connect(("127.0.0.1", port)).await.is_err());
        let again = TestSmtp::start_on(port).await.unwrap();
        connect(&again).await;
    }

    #[tokio::test]
    async fn smtp_server_refuses_starttls_and_checks_auth_login_before_mail() {
        use base64::Engine;
        let b64 = |s: &str| base64::engine::general_purpose::STANDARD.encode(s);
        let smtp = TestSmtp::start().await;
        smtp.set_faults(Faults {
            refuse_starttls: true,
            require_auth: Some(("user".into(), "secret".into())),
            refuse_auth_times: 1,
            ..Faults::default()
        });
        let mut s = connect(&smtp).await;
        let ehlo = command(&mut s, "EHLO me").await;
        assert!(ehlo.contains("STARTTLS") && ehlo.contains("AUTH PLAIN LOGIN"));
        assert!(command(&mut s, "STARTTLS").await.starts_with("454 4.7.0"));
        assert!(command(&mut s, "MAIL FROM:<a@example.org>")
            .await
            .starts_with("530"));
        let plain = b64("\0user\0secret");
        assert!(command(&mut s, &format!("AUTH PLAIN {plain}"))
            .await
            .starts_with("535"));
        assert!(command(&mut s, "AUTH LOGIN").await.starts_with("334"));
        assert!(command(&mut s, &b64("user")).await.starts_with("334"));
        assert!(command(&mut s, &b64("wrong")).await.starts_with("535"));
        command(&mut s, "AUTH LOGIN").await;
        command(&mut s, &b64("user")).await;
        assert!(command(&mut s, &b64("secret")).await.starts_with("235"));
        command(&mut s, "MAIL FROM:<a@example.org>").await;
        command(&mut s, "RCPT TO:<b@example.org>").await;
        command(&mut s, "DATA").await;
        command(&mut s, "Subject: x\r\n\r\nhi\r\n.").await;
        let mail = smtp.wait_for(1, Duration::from_secs(2)).await.remove(0);
        assert_eq!(mail.authenticated_as.as_deref(), Some("user"));
    }
}
