//! Named destinations (`/api/v1/destinations`) against moto and Azurite: create, list, get,
//! patch, Test, browse and delete; bad requests; jobs naming a stored destination; and a
//! canary secret that must appear nowhere but where it was sent.

mod requests;

use std::process::{Command, Stdio};

use base64::prelude::*;
use serde_json::{json, Value};

use crate::objects::{tools, Azurite, Moto};
use crate::support::{Bifrost, TestCa};

fn random_hex() -> String {
    let mut b = [0u8; 8];
    getrandom::fill(&mut b).unwrap();
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// Remembers every API answer so the canary check can search them.
struct Client<'a> {
    bifrost: &'a Bifrost,
    answers: Vec<String>,
}

impl<'a> Client<'a> {
    fn new(bifrost: &'a Bifrost) -> Self {
        Self {
            bifrost,
            answers: Vec::new(),
        }
    }

    fn call(&mut self, method: &str, path: &str, body: Option<Value>) -> (u16, Value) {
        let (status, answer) = self.bifrost.api(method, path, body);
        self.answers.push(answer.to_string());
        (status, answer)
    }

    fn ok(&mut self, method: &str, path: &str, body: Option<Value>, want: u16) -> Value {
        let (status, answer) = self.call(method, path, body);
        assert_eq!(status, want, "{method} {path}: {answer}");
        answer
    }

    fn test(&mut self, id: &str) -> Value {
        self.ok(
            "POST",
            &format!("/api/v1/destinations/{id}/test"),
            None,
            200,
        )
    }

    fn browse(&mut self, id: &str, prefix: &str) -> Value {
        let path = format!("/api/v1/destinations/{id}/browse?prefix={prefix}");
        self.ok("GET", &path, None, 200)
    }
}

/// `secret` is in no API answer, nothing Bifrost printed, no file of its data folder (the
/// database holds it sealed) and no process's command line; the key file is 0600.
fn assert_nowhere(secret: &str, client: &Client) {
    for a in &client.answers {
        assert!(!a.contains(secret), "an API answer holds the secret: {a}");
    }
    let b = client.bifrost;
    for line in b.stdout.all().iter().chain(b.stderr.all().iter()) {
        assert!(!line.contains(secret), "Bifrost printed the secret: {line}");
    }
    let mut files = 0;
    let mut stack = vec![b.data.clone()];
    while let Some(dir) = stack.pop() {
        for e in std::fs::read_dir(&dir).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                stack.push(p);
            } else if let Ok(bytes) = std::fs::read(&p) {
                files += 1;
                assert!(
                    !bytes.windows(secret.len()).any(|w| w == secret.as_bytes()),
                    "{} holds the secret in plain text",
                    p.display()
                );
            }
        }
    }
    assert!(files >= 3, "the data folder was searched");
    for e in std::fs::read_dir("/proc").unwrap().flatten() {
        if let Ok(cmdline) = std::fs::read(e.path().join("cmdline")) {
            assert!(
                !cmdline
                    .windows(secret.len())
                    .any(|w| w == secret.as_bytes()),
                "the command line of process {:?} holds the secret",
                e.file_name()
            );
        }
    }
    use std::os::unix::fs::PermissionsExt;
    let key = b.data.join("destinations.key");
    let mode = std::fs::metadata(&key).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o600, "{}", key.display());
}

/// An IAM user with an S3 policy in `moto` (boto3, while moto checks nothing yet); its key
/// pair. The secret travels on a pipe, never a command line.
fn iam_user(moto: &Moto) -> (String, String) {
    let script = r#"
import boto3, json, sys
iam = boto3.client("iam", endpoint_url=sys.argv[1], region_name="us-east-1",
                   aws_access_key_id="testing", aws_secret_access_key="testing")
iam.create_user(UserName="mover")
iam.put_user_policy(UserName="mover", PolicyName="s3", PolicyDocument=json.dumps(
    {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "s3:*", "Resource": "*"}]}))
k = iam.create_access_key(UserName="mover")["AccessKey"]
print(json.dumps({"id": k["AccessKeyId"], "secret": k["SecretAccessKey"]}))
"#;
    let out = Command::new(tools().join("venv/bin/python"))
        .args(["-c", script, &moto.endpoint])
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    (
        v["id"].as_str().unwrap().to_owned(),
        v["secret"].as_str().unwrap().to_owned(),
    )
}

/// From now on moto checks every request's signature against its IAM users.
fn enable_auth(moto: &Moto) {
    let mut res = ureq::post(&format!("{}/moto-api/reset-auth", moto.endpoint))
        .send("0")
        .unwrap();
    assert_eq!(res.status(), 200, "{:?}", res.body_mut().read_to_string());
}

fn metric(bifrost: &Bifrost, line_start: &str) -> f64 {
    let (status, text) = bifrost.api("GET", "/metrics", None);
    assert_eq!(status, 200);
    let text = text.as_str().unwrap().to_owned();
    text.lines()
        .find_map(|l| l.strip_prefix(line_start))
        .map_or(0.0, |v| v.trim().parse().unwrap())
}

#[test]
fn s3_destination_is_created_tested_browsed_and_deleted_without_showing_its_secret() {
    let dir = tempfile::tempdir().unwrap();
    let ca = TestCa::new(dir.path());
    let bifrost = Bifrost::start(dir.path(), &ca);
    let moto = Moto::start();
    moto.create_bucket("archive-bkt");
    for (key, body) in [
        ("mover/top.txt", &b"top"[..]),
        ("mover/dept/a.txt", b"aaaa"),
        ("mover/dept/sub/b.txt", b"b"),
        ("elsewhere/x.txt", b"x"),
    ] {
        moto.put_object("archive-bkt", key, body, &[]);
    }
    let (access_key, real_secret) = iam_user(&moto);
    enable_auth(&moto);
    let canary = format!("CANARY-{}", random_hex());
    let mut c = Client::new(&bifrost);

    // The issue's exact body: its bucket "b" is one character, and S3 wants 3 to 63.
    let issue = json!({"name":"Archive","kind":"s3","bucket":"b","prefix":"","endpoint":"http://127.0.0.1:9000","region":"us-east-1","path_style":true,"access_key_id":"AKIAEXAMPLE","secret_access_key":canary});
    let e = c.ok("POST", "/api/v1/destinations", Some(issue), 400);
    assert!(
        e["error"]
            .as_str()
            .unwrap()
            .contains("not an S3 bucket name"),
        "{e}"
    );

    let body = json!({"name":"Archive","kind":"s3","bucket":"archive-bkt","prefix":"/mover/","endpoint":moto.endpoint,"region":"us-east-1","path_style":true,"access_key_id":access_key,"secret_access_key":real_secret});
    let d = c.ok("POST", "/api/v1/destinations", Some(body), 201);
    let id = d["id"].as_str().unwrap().to_owned();
    let mut keys: Vec<&str> = d.as_object().unwrap().keys().map(String::as_str).collect();
    keys.sort();
    assert_eq!(
        keys,
        [
            "bucket",
            "created",
            "endpoint",
            "id",
            "kind",
            "name",
            "path_style",
            "prefix",
            "region",
            "updated"
        ],
        "{d}"
    );
    assert_eq!(
        (&d["kind"], &d["bucket"], &d["prefix"], &d["path_style"]),
        (
            &json!("s3"),
            &json!("archive-bkt"),
            &json!("mover"),
            &json!(true)
        )
    );
    let all = c.ok("GET", "/api/v1/destinations", None, 200);
    assert_eq!(all.as_array().unwrap().len(), 1);
    assert_eq!(all[0], d);
    assert_eq!(
        c.ok("GET", &format!("/api/v1/destinations/{id}"), None, 200),
        d
    );
    let renamed = c.ok(
        "PATCH",
        &format!("/api/v1/destinations/{id}"),
        Some(json!({"name": "Archive 2"})),
        200,
    );
    assert_eq!(renamed["name"], "Archive 2");

    assert_eq!(c.test(&id), json!({"ok": true}));

    let top = c.browse(&id, "");
    assert_eq!(top["prefix"], "");
    assert_eq!(top["folders"], json!(["dept/"]), "{top}");
    let objects = top["objects"].as_array().unwrap();
    assert_eq!(objects.len(), 1, "the Test object is gone: {top}");
    assert_eq!(
        (&objects[0]["key"], &objects[0]["size"]),
        (&json!("top.txt"), &json!(3))
    );
    assert!(
        objects[0]["modified"].as_str().unwrap().ends_with('Z'),
        "{top}"
    );
    assert_eq!(top["truncated"], false);
    let dept = c.browse(&id, "dept/");
    assert_eq!(dept["folders"], json!(["dept/sub/"]), "{dept}");
    assert_eq!(dept["objects"][0]["key"], "dept/a.txt");
    assert_eq!(dept["objects"][0]["size"], 4);
    let e = c.ok(
        "GET",
        &format!("/api/v1/destinations/{id}/browse?prefix=../x"),
        None,
        400,
    );
    assert!(e["error"].as_str().unwrap().contains(".."), "{e}");

    // A wrong secret: the list step fails with the service's own answer.
    c.ok(
        "PATCH",
        &format!("/api/v1/destinations/{id}"),
        Some(json!({"secret_access_key": canary})),
        200,
    );
    let t = c.test(&id);
    assert_eq!(t["ok"], false, "{t}");
    let error = t["error"].as_str().unwrap();
    assert!(error.starts_with("list failed: 403 "), "{error}");
    eprintln!("s3, wrong secret: {error}");
    assert!(
        metric(
            &bifrost,
            "bifrost_destination_requests_total{kind=\"s3\",status=\"403\"}"
        ) >= 1.0
    );
    assert!(
        metric(
            &bifrost,
            "bifrost_destination_requests_total{kind=\"s3\",status=\"200\"}"
        ) >= 3.0
    );

    // A missing bucket, with the right secret again.
    c.ok(
        "PATCH",
        &format!("/api/v1/destinations/{id}"),
        Some(json!({"bucket": "no-such-bucket", "secret_access_key": real_secret})),
        200,
    );
    let t = c.test(&id);
    let error = t["error"].as_str().unwrap();
    assert!(error.starts_with("list failed: 404 NoSuchBucket"), "{t}");
    eprintln!("s3, missing bucket: {error}");

    c.ok("DELETE", &format!("/api/v1/destinations/{id}"), None, 204);
    c.ok("GET", &format!("/api/v1/destinations/{id}"), None, 404);
    c.ok("DELETE", &format!("/api/v1/destinations/{id}"), None, 404);
    c.ok(
        "POST",
        &format!("/api/v1/destinations/{id}/test"),
        None,
        404,
    );
    assert_eq!(c.ok("GET", "/api/v1/destinations", None, 200), json!([]));

    assert_nowhere(&canary, &c);
    assert_nowhere(&real_secret, &c);
}

#[test]
fn azure_destination_tests_and_browses_and_names_a_wrong_key() {
    let dir = tempfile::tempdir().unwrap();
    let ca = TestCa::new(dir.path());
    let bifrost = Bifrost::start(dir.path(), &ca);
    let azurite = Azurite::start();
    azurite.create_container("landing");
    azurite.put_blob("landing", "in/one.bin", b"12345", &[]);
    azurite.put_blob("landing", "in/deeper/two.bin", b"22", &[]);
    let mut c = Client::new(&bifrost);
    let body = json!({"name":"Blob","kind":"azure_blob","account":Azurite::ACCOUNT,"container":"landing","access_key":Azurite::KEY,"endpoint":azurite.account_url(),"prefix":"in"});
    let d = c.ok("POST", "/api/v1/destinations", Some(body), 201);
    assert!(d.get("access_key").is_none(), "{d}");
    assert_eq!(
        (&d["account"], &d["container"]),
        (&json!("devstoreaccount1"), &json!("landing"))
    );
    let id = d["id"].as_str().unwrap().to_owned();

    assert_eq!(c.test(&id), json!({"ok": true}));
    let top = c.browse(&id, "");
    assert_eq!(top["folders"], json!(["deeper/"]), "{top}");
    assert_eq!(top["objects"].as_array().unwrap().len(), 1, "{top}");
    assert_eq!(top["objects"][0]["key"], "one.bin");
    assert_eq!(top["objects"][0]["size"], 5);

    // A wrong key (base64, as Azure keys are): the service refuses the list.
    let canary = BASE64_STANDARD.encode(format!("CANARY-{}", random_hex()));
    c.ok(
        "PATCH",
        &format!("/api/v1/destinations/{id}"),
        Some(json!({"access_key": canary})),
        200,
    );
    let t = c.test(&id);
    let error = t["error"].as_str().unwrap();
    assert!(error.starts_with("list failed: 403 "), "{t}");
    eprintln!("azure, wrong key: {error}");
    assert!(
        metric(
            &bifrost,
            "bifrost_destination_requests_total{kind=\"azure_blob\",status=\"403\"}"
        ) >= 1.0
    );
    assert_nowhere(&canary, &c);
}
