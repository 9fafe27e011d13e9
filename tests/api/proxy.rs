//! The service behind nginx (Debian's package, installed by `scripts/test`) with a self-signed
//! certificate on loopback, proxying as `deploy/nginx-newsletter.conf`'s `location /` block
//! says: sign-up and confirmation over https, RFC 8058 one-click unsubscribe (offered because
//! the service is on https), the staff sign-in's `__Host-` cookies with `Secure`, and per-IP
//! limits keyed on the address nginx saw, not on nginx's own.

use std::net::{IpAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use newsletter::domain::StaffRole;
use reqwest::header::{ORIGIN, SET_COOKIE};

use crate::admin::{add_staff, csrf_in, free_port, PASSWORD};
use crate::helpers::{confirmation_link, spawn_app_with, TestApp};

const WAIT: Duration = Duration::from_secs(30);

/// nginx in front of the app, on 127.0.0.1:`port`, for the life of the value.
struct Nginx {
    child: Child,
    port: u16,
    dir: PathBuf,
}

impl Drop for Nginx {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// The shipped configuration's https `server { ... }` block, whole (TLS, HTTP/2, headers, the
/// proxy settings), listening on 127.0.0.1:`port` with the test's certificate in `dir` and
/// sending to `upstream`: what an operator installs, with only the addresses changed.
fn shipped_server(upstream: u16, port: u16, dir: &Path) -> String {
    let conf = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("deploy/nginx-newsletter.conf"),
    )
    .unwrap();
    let start = conf.find("listen 443").expect("an https server block");
    let start = conf[..start].rfind("server {").expect("its start");
    let end = start + conf[start..].find("\n}").expect("its end") + 2;
    let d = dir.display();
    conf[start..end]
        .lines()
        .filter(|l| !l.contains("listen [::]"))
        .map(|l| {
            l.replace("listen 443", &format!("listen 127.0.0.1:{port}"))
                .replace("127.0.0.1:8080", &format!("127.0.0.1:{upstream}"))
                .replace(
                    "/etc/letsencrypt/live/news.example.org/fullchain.pem",
                    &format!("{d}/cert.pem"),
                )
                .replace(
                    "/etc/letsencrypt/live/news.example.org/privkey.pem",
                    &format!("{d}/key.pem"),
                )
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// A new temporary directory holding `key.pem` and `cert.pem`, a self-signed certificate for
/// `name` good for a day (made by openssl).
pub fn self_signed(prefix: &str, name: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("{prefix}-{}", uuid::Uuid::new_v4().simple()));
    std::fs::create_dir_all(&dir).unwrap();
    let made = Command::new("openssl")
        .args([
            "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
        ])
        .arg("-subj")
        .arg(format!("/CN={name}"))
        .arg("-keyout")
        .arg(dir.join("key.pem"))
        .arg("-out")
        .arg(dir.join("cert.pem"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .expect("openssl (scripts/test installs it)");
    assert!(made.success(), "a self-signed certificate");
    dir
}

impl Nginx {
    fn start(upstream: u16, port: u16) -> Self {
        let dir = self_signed("nginx", "127.0.0.1");
        let d = dir.display();
        // As root, nginx's workers would switch to a user that cannot read the temporary
        // directory; they stay root here (a test on loopback, nothing else).
        let user = if unsafe { libc::geteuid() } == 0 {
            "user root;"
        } else {
            ""
        };
        let conf = format!(
            "{user}
# One process, no master: killing the child stops all of nginx (a master killed with
# SIGKILL would leave its workers behind).
master_process off;
daemon off;
pid {d}/nginx.pid;
error_log {d}/error.log;
events {{ worker_connections 64; }}
http {{
    access_log off;
    client_body_temp_path {d}/body;
    proxy_temp_path {d}/proxy;
    fastcgi_temp_path {d}/fastcgi;
    uwsgi_temp_path {d}/uwsgi;
    scgi_temp_path {d}/scgi;
    {server}
}}
",
            server = shipped_server(upstream, port, &dir)
        );
        std::fs::write(dir.join("nginx.conf"), conf).unwrap();
        let child = Command::new("nginx")
            .arg("-p")
            .arg(&dir)
            .arg("-c")
            .arg(dir.join("nginx.conf"))
            .arg("-e")
            .arg(dir.join("error.log"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("nginx (scripts/test installs Debian's package)");
        let deadline = Instant::now() + Duration::from_secs(10);
        while TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(
                Instant::now() < deadline,
                "nginx did not start: {}",
                std::fs::read_to_string(dir.join("error.log")).unwrap_or_default()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        Self { child, port, dir }
    }

    fn url(&self, path: &str) -> String {
        format!("https://127.0.0.1:{}{path}", self.port)
    }
}

/// A client that trusts the test's certificate and connects from `from` (any 127.0.0.0/8
/// address is this machine).
fn client_from(from: &str) -> reqwest::Client {
    reqwest::Client::builder()
        .danger_accept_invalid_certs(true)
        .redirect(reqwest::redirect::Policy::none())
        .local_address(from.parse::<IpAddr>().unwrap())
        .build()
        .unwrap()
}

async fn sign_up(client: &reqwest::Client, nginx: &Nginx, email: &str) -> u16 {
    client
        .post(nginx.url("/subscriptions"))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(format!("email={}", crate::helpers::urlencode(email)))
        .send()
        .await
        .unwrap()
        .status()
        .as_u16()
}

/// The app with `server.base_url` at nginx's https address; nginx started in front of it.
async fn behind_nginx(trust_forwarded_for: bool) -> (TestApp, Nginx) {
    // nginx's port is chosen first, so the app knows its public address.
    let public_port = free_port();
    let base = format!("https://127.0.0.1:{public_port}");
    let app = spawn_app_with(&[
        ("server.base_url", base.as_str().into()),
        ("server.trust_forwarded_for", trust_forwarded_for.into()),
        ("signup.per_ip_per_minute", 2.into()),
        ("admin.require_second_factor", "none".into()),
    ])
    .await;
    let upstream: u16 = app.address.rsplit(':').next().unwrap().parse().unwrap();
    let nginx = Nginx::start(upstream, public_port);
    (app, nginx)
}

#[tokio::test]
async fn behind_nginx_with_tls_sign_up_one_click_staff_cookies_and_limits_work() {
    let (app, nginx) = behind_nginx(true).await;
    let ann = client_from("127.0.0.2");

    // Sign-up and confirmation through the proxy.
    assert_eq!(sign_up(&ann, &nginx, "ann@example.org").await, 303);
    let mail = app.smtp.wait_for(1, WAIT).await.remove(0);
    let link = confirmation_link(&mail.data);
    assert!(link.starts_with(&nginx.url("/")), "{link}");
    let page = ann.get(&link).send().await.unwrap();
    assert_eq!(page.status(), 200, "the page with the Confirm button");
    assert_eq!(
        page.headers()["strict-transport-security"],
        "max-age=31536000",
        "the shipped configuration keeps browsers on https"
    );
    let token = link.split("token=").nth(1).unwrap().to_owned();
    let confirmed = ann
        .post(nginx.url("/subscriptions/confirm"))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(format!("token={token}"))
        .send()
        .await
        .unwrap();
    assert_eq!(confirmed.status(), 200);
    assert_eq!(
        app.subscriber_status("ann@example.org").await.as_deref(),
        Some("confirmed")
    );

    // Per-IP limits count the address nginx saw: Ann's third sign-up in the minute is refused,
    // even claiming another address; Bo, from another address, is not.
    assert_eq!(sign_up(&ann, &nginx, "ann2@example.org").await, 303);
    let spoofed = ann
        .post(nginx.url("/subscriptions"))
        .header("content-type", "application/x-www-form-urlencoded")
        .header("x-forwarded-for", "203.0.113.9")
        .body("email=ann3%40example.org")
        .send()
        .await
        .unwrap();
    assert_eq!(
        spoofed.status(),
        429,
        "a forged X-Forwarded-For does not help"
    );
    let bo = client_from("127.0.0.3");
    assert_eq!(sign_up(&bo, &nginx, "bo@example.org").await, 303);

    // One-click unsubscribe: offered (the service is on https) and done through the proxy.
    let token = app.api_token().await;
    app.create_and_send(&token, "Over https").await;
    // (The three confirmation mails came first: Ann's update is the one with the header.)
    let deadline = Instant::now() + WAIT;
    let update = loop {
        let found = app.smtp.messages().into_iter().find(|m| {
            m.rcpt_to[0] == "ann@example.org"
                && String::from_utf8_lossy(&m.data).contains("List-Unsubscribe:")
        });
        if let Some(mail) = found {
            break mail;
        }
        assert!(Instant::now() < deadline, "Ann's update never came");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let parsed = mail_parser::MessageParser::default()
        .parse(&update.data)
        .unwrap();
    assert_eq!(
        parsed.header_raw("List-Unsubscribe-Post").map(str::trim),
        Some("List-Unsubscribe=One-Click")
    );
    let unsubscribe = parsed
        .header_raw("List-Unsubscribe")
        .unwrap()
        .split(',')
        .map(|u| u.trim().trim_matches(['<', '>']))
        .find(|u| u.starts_with("https://"))
        .unwrap()
        .to_owned();
    let one_click = ann
        .post(&unsubscribe)
        .header("content-type", "application/x-www-form-urlencoded")
        .body("List-Unsubscribe=One-Click")
        .send()
        .await
        .unwrap();
    assert_eq!(one_click.status(), 200);
    assert_eq!(
        app.subscriber_status("ann@example.org").await.as_deref(),
        Some("unsubscribed")
    );

    // The staff sign-in: cookies with the __Host- prefix, Secure.
    add_staff(&app, "ana@example.org", StaffRole::Admin).await;
    let staff = client_from("127.0.0.4");
    let login = staff.get(nginx.url("/admin/login")).send().await.unwrap();
    let login_cookie = login
        .headers()
        .get_all(SET_COOKIE)
        .iter()
        .map(|v| v.to_str().unwrap().to_owned())
        .find(|c| c.starts_with("__Host-newsletter_login="))
        .expect("the login cookie, with the __Host- prefix");
    assert!(login_cookie.contains("; Secure"), "{login_cookie}");
    let csrf = csrf_in(&login.text().await.unwrap());
    let pair = login_cookie.split(';').next().unwrap().to_owned();
    let signed = staff
        .post(nginx.url("/admin/login"))
        .header("cookie", pair)
        .header(ORIGIN, nginx.url(""))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(
            serde_urlencoded::to_string([
                ("csrf_token", csrf.as_str()),
                ("email", "ana@example.org"),
                ("password", PASSWORD),
            ])
            .unwrap(),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(signed.status(), 303);
    let session = signed
        .headers()
        .get_all(SET_COOKIE)
        .iter()
        .map(|v| v.to_str().unwrap().to_owned())
        .find(|c| c.starts_with("__Host-newsletter_staff="))
        .expect("the session cookie, with the __Host- prefix");
    assert!(
        session.contains("; Secure") && session.contains("HttpOnly"),
        "{session}"
    );
    // The sign-in was recorded from the address nginx saw.
    let ip: serde_json::Value = sqlx::query_scalar(
        "SELECT detail->'ip' FROM audit_log WHERE action = 'sign-in' ORDER BY id DESC LIMIT 1",
    )
    .fetch_one(&app.pool)
    .await
    .unwrap();
    assert_eq!(ip, "127.0.0.4");
}
