//! A console session against a real Bifrost: accounts made with `bifrost user`, signing in by
//! name and password (or the admin token), and API calls with the cookie and CSRF token.

use std::process::{Command, Output};

use serde_json::{json, Value};

use super::bifrost::answer;
use super::{bin, Bifrost};

/// A signed-in console session: its cookie and CSRF token.
pub struct Session {
    pub cookie: String,
    pub csrf: String,
    url: String,
    http: ureq::Agent,
}

impl Session {
    /// Sends an API request with the cookie (and the CSRF token); returns status and JSON body.
    pub fn call(&self, method: &str, path: &str, body: Option<Value>) -> (u16, Value) {
        let url = format!("{}{}", self.url, path);
        let with = |r: ureq::RequestBuilder<ureq::typestate::WithBody>| {
            r.header("Cookie", &self.cookie)
                .header("X-CSRF-Token", &self.csrf)
        };
        let result = match (method, body) {
            ("GET", _) => self.http.get(&url).header("Cookie", &self.cookie).call(),
            ("DELETE", _) => self
                .http
                .delete(&url)
                .header("Cookie", &self.cookie)
                .header("X-CSRF-Token", &self.csrf)
                .call(),
            ("POST", Some(b)) => with(self.http.post(&url)).send_json(b),
            ("POST", None) => with(self.http.post(&url)).send_empty(),
            ("PATCH", Some(b)) => with(self.http.patch(&url)).send_json(b),
            ("PUT", Some(b)) => with(self.http.put(&url)).send_json(b),
            other => panic!("unsupported request {other:?}"),
        };
        let mut res = result.unwrap_or_else(|e| panic!("{method} {path}: {e}"));
        answer(&mut res)
    }

    /// Chooses a new password; returns status and body.
    pub fn change_password(&self, current: &str, new: &str) -> (u16, Value) {
        self.call(
            "POST",
            "/api/v1/session/password",
            Some(json!({"current": current, "new": new})),
        )
    }
}

impl Bifrost {
    /// Runs `bifrost user ARGS --data DATA` and returns its output.
    pub fn user(&self, args: &[&str]) -> Output {
        Command::new(bin("bifrost"))
            .arg("user")
            .args(args)
            .arg("--data")
            .arg(&self.data)
            .output()
            .unwrap()
    }

    /// Adds an account with `bifrost user add`; returns its one-time password.
    pub fn user_add(&self, name: &str, role: &str) -> String {
        let out = self.user(&["add", name, "--role", role]);
        one_time_password(&out)
    }

    /// Signs in with `body` (`{"name","password"}` or `{"token"}`): status, body, and the
    /// session when it worked.
    pub fn sign_in_with(&self, body: Value) -> (u16, Value, Option<Session>) {
        let mut res = self
            .client()
            .post(&format!("{}/api/v1/session", self.url))
            .send_json(body)
            .unwrap();
        let status = res.status().as_u16();
        let cookie = res
            .headers()
            .get("set-cookie")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.split(';').next())
            .map(str::to_owned);
        let text = res.body_mut().read_to_string().unwrap_or_default();
        let body: Value = serde_json::from_str(&text).unwrap_or(Value::String(text));
        let session = match (status, cookie) {
            (200, Some(cookie)) => Some(Session {
                cookie,
                csrf: body["csrf"].as_str().unwrap().to_owned(),
                url: self.url.clone(),
                http: self.client(),
            }),
            _ => None,
        };
        (status, body, session)
    }

    /// Signs in by name and password, which must work.
    pub fn sign_in(&self, name: &str, password: &str) -> Session {
        let (status, body, session) =
            self.sign_in_with(json!({"name": name, "password": password}));
        assert_eq!(status, 200, "{body}");
        session.unwrap()
    }
}

/// The one-time password `bifrost user add` or `reset` printed (it must have succeeded).
pub fn one_time_password(out: &Output) -> String {
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "bifrost user failed: {stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
        .lines()
        .find_map(|l| l.strip_prefix("One-time password: "))
        .unwrap_or_else(|| panic!("no one-time password in {stdout}"))
        .to_owned()
}
