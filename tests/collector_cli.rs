//! The real `loa` binary end to end: `loa register`, `loa collector --listen 127.0.0.1:0` as a
//! child process, a station posting, `loa status`, then `loa export` (csv/xlsx/json, month and
//! year) from the database and `loa verify`.

mod collector_common;

use collector_common::*;
use loa::wire::Outcome;
use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};

const BIN: &str = env!("CARGO_BIN_EXE_loa");

struct Killed(Child);
impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn loa(args: &[&str]) -> (i32, String, String) {
    let out = Command::new(BIN).args(args).output().unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn register_serve_status_export_verify_with_the_binary() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("collector.toml");
    let db = loa::collector::db::testing::test_db(&dir.path().join("var"), "collector.db");
    let (cfg_s, db_s) = (cfg.to_str().unwrap(), db.to_str().unwrap());
    let mut st = TestStation::new("phuong-le-hong-phong", 5);
    let pk = st.public_key();
    let (code, out, err) = loa(&[
        "register",
        "--config",
        cfg_s,
        "--station",
        "phuong-le-hong-phong",
        "--public-key",
        &pk,
        "--name",
        "Phường Lê Hồng Phong",
        "--area-code",
        "21205",
        "--db",
        db_s,
    ]);
    assert_eq!(code, 0, "{out}{err}");
    // An auditor and its personal token, as a script would get one: the status and exports
    // below read the API with it.
    let (code, out, err) = loa(&["user", "add", "kiem-tra", "--role", "auditor", "--db", db_s]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("mật khẩu (chỉ hiện một lần): "), "{out}");
    let (code, token, err) = loa(&["user", "token", "kiem-tra", "--db", db_s]);
    assert_eq!(code, 0, "{err}");
    let token = token.trim().to_string();
    assert!(token.starts_with("loa_"), "{token}");
    let (code, out, _) = loa(&["user", "list", "--db", db_s]);
    assert_eq!(code, 0);
    assert!(
        out.contains("kiem-tra") && out.contains("Kiểm tra"),
        "{out}"
    );
    let (code, _, err) = loa(&[
        "register",
        "--config",
        cfg_s,
        "--station",
        "x",
        "--public-key",
        "nope",
    ]);
    assert_eq!(code, 2);
    assert!(err.contains("public_key"), "{err}");

    let mut child = Command::new(BIN)
        .args([
            "collector",
            "--listen",
            "127.0.0.1:0",
            "--db",
            db_s,
            "--config",
            cfg_s,
        ])
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stderr = child.stderr.take().unwrap();
    let child = Killed(child);
    let mut lines = BufReader::new(stderr).lines();
    let base = loop {
        let line = lines
            .next()
            .expect("collector exited before listening")
            .unwrap();
        if let Some(rest) = line.split("listening on ").nth(1) {
            break rest.trim().to_string();
        }
    };
    // Keep draining the log so the child never blocks on a full pipe.
    std::thread::spawn(move || for _ in lines {});

    let c = client();
    // The station's records are from "now" so this month's figures are not empty.
    // Anchored at the start of the current local month so the month's export holds them all.
    let now = chrono::Utc::now().with_timezone(&tz());
    let month_start = {
        use chrono::{Datelike, TimeZone};
        tz().with_ymd_and_hms(now.year(), now.month(), 1, 0, 40, 0)
            .unwrap()
    };
    let recs: Vec<_> = (0..3)
        .map(|i| {
            let when = month_start + chrono::Duration::minutes(i);
            let p = st.planned("morning", when);
            // The first as a station of wire version 1 wrote it, the others after its upgrade:
            // `loa verify` below proves the export holding both.
            if i == 0 {
                st.record_v1(Some(&p), when, Outcome::Aired, 600.0, 0)
            } else {
                st.record(Some(&p), when, Outcome::Aired, 600.0, 0)
            }
        })
        .collect();
    let (code, v) = post(
        &c,
        &format!("{base}/api/v1/stations/phuong-le-hong-phong/records"),
        serde_json::to_vec(&batch(&recs)).unwrap(),
    )
    .await;
    assert_eq!(code, 200, "{v}");
    let (code, _) = post(
        &c,
        &format!("{base}/api/v1/stations/phuong-le-hong-phong/heartbeat"),
        serde_json::to_vec(&st.heartbeat(chrono::Utc::now(), 0)).unwrap(),
    )
    .await;
    assert_eq!(code, 200);

    // A station registered while the collector runs is picked up without a restart.
    let mut late = TestStation::new("xa-nghia-dung", 6);
    let (code, out, err) = loa(&[
        "register",
        "--config",
        cfg_s,
        "--station",
        "xa-nghia-dung",
        "--public-key",
        &late.public_key(),
    ]);
    assert_eq!(code, 0, "{out}{err}");
    let when = month_start + chrono::Duration::minutes(10);
    let p = late.planned("morning", when);
    let r = late.record(Some(&p), when, Outcome::Missed, 0.0, 0);
    let (code, v) = post(
        &c,
        &format!("{base}/api/v1/stations/xa-nghia-dung/records"),
        serde_json::to_vec(&batch(&[r])).unwrap(),
    )
    .await;
    assert_eq!(code, 200, "{v}");

    // Without a token the collector answers 401, and `loa status` says what to do.
    let (code, _, err) = tokio::task::spawn_blocking({
        let base = base.clone();
        move || loa(&["status", "--collector", &base])
    })
    .await
    .unwrap();
    assert_eq!(code, 1, "{err}");
    assert!(
        err.contains("HTTP 401") && err.contains("loa user token"),
        "{err}"
    );
    let token_file = dir.path().join("token");
    std::fs::write(&token_file, format!("{token}\n")).unwrap();
    let (code, out, err) = tokio::task::spawn_blocking({
        let base = base.clone();
        let tf = token_file.to_str().unwrap().to_string();
        move || loa(&["status", "--collector", &base, "--token-file", &tf])
    })
    .await
    .unwrap();
    assert_eq!(code, 0, "{err}");
    // The registration by `loa register` is in the audit log, with who and what.
    let csv = c
        .get(format!("{base}/audit.csv"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        csv.contains("\"Đăng ký trạm\",\"station_register\",\"phuong-le-hong-phong\""),
        "{csv}"
    );
    assert!(csv.contains("loa register (người dùng hệ thống:"), "{csv}");
    assert!(
        csv.contains("\"Thêm người dùng\",\"user_add\",\"kiem-tra\""),
        "{csv}"
    );
    let line = out
        .lines()
        .find(|l| l.starts_with("phuong-le-hong-phong"))
        .unwrap_or_else(|| panic!("{out}"));
    assert!(
        line.contains("trực tuyến") && line.contains("100,0 %"),
        "{out}"
    );
    let line = out
        .lines()
        .find(|l| l.starts_with("xa-nghia-dung"))
        .unwrap_or_else(|| panic!("{out}"));
    assert!(
        line.contains("MẤT KẾT NỐI") && line.contains("bỏ lỡ") && line.contains("0,0 %"),
        "{out}"
    );
    drop(child);

    let month = now.format("%Y-%m").to_string();
    let year = now.format("%Y").to_string();
    for (period, fmt) in [
        (&month, "csv"),
        (&month, "xlsx"),
        (&month, "json"),
        (&year, "json"),
    ] {
        let flag = if period.len() == 7 {
            "--month"
        } else {
            "--year"
        };
        let out_file = dir.path().join(format!("export-{period}.{fmt}"));
        let (code, out, err) = loa(&[
            "export",
            flag,
            period,
            "--format",
            fmt,
            "--out",
            out_file.to_str().unwrap(),
            "--db",
            db_s,
            "--config",
            cfg_s,
        ]);
        assert_eq!(code, 0, "{out}{err}");
        // No schedule registered: said so, and the records count on the station's word.
        assert!(err.contains("plan unknown"), "{err}");
        // The current month and year are not over: said so.
        let open = if period.len() == 7 { "Tháng" } else { "Năm" };
        assert!(
            err.contains(&format!("{open} chưa kết thúc — số liệu tính đến")),
            "{err}"
        );
        assert!(std::fs::metadata(&out_file).unwrap().len() > 100);
        if fmt == "json" {
            let (code, out, _) = loa(&["verify", out_file.to_str().unwrap(), "--config", cfg_s]);
            assert_eq!(code, 0, "{out}");
            assert!(
                out.contains("ok   phuong-le-hong-phong: 3 records, seq 1..3"),
                "{out}"
            );
        }
    }
    let (code, _, err) = loa(&[
        "export",
        "--month",
        "2019-3",
        "--format",
        "csv",
        "--out",
        "/dev/null",
        "--db",
        db_s,
        "--config",
        cfg_s,
    ]);
    assert_eq!(code, 2, "{err}");

    // The year-to-date DOCX (January to this month), opened by python-docx; its bad inputs exit
    // 2 with the Vietnamese reason.
    let docx_file = dir.path().join("bao-cao.docx");
    let docx_args = |month: &str, extra: &[&str]| -> (i32, String, String) {
        let mut args = vec![
            "export",
            "--month",
            month,
            "--format",
            "docx",
            "--out",
            docx_file.to_str().unwrap(),
            "--db",
            db_s,
            "--config",
            cfg_s,
        ];
        args.extend_from_slice(extra);
        loa(&args)
    };
    let (code, out, err) = docx_args(&month, &["--set", "signer_name=Nguyễn Văn A"]);
    assert_eq!(code, 0, "{out}{err}");
    tools::require_python_module("/usr/bin/python3", "docx", "python3-docx");
    let read = std::process::Command::new("/usr/bin/python3")
        .args([
            "-c",
            "import sys, docx\nd = docx.Document(sys.argv[1])\nprint('\\n'.join(c.text for t in d.tables for r in t.rows for c in r.cells))",
        ])
        .arg(&docx_file)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&read.stdout);
    assert!(
        read.status.success(),
        "{}",
        String::from_utf8_lossy(&read.stderr)
    );
    for t in [
        "CỘNG HÒA XÃ HỘI CHỦ NGHĨA VIỆT NAM",
        "Độc lập - Tự do - Hạnh phúc",
        "Nguyễn Văn A",
    ] {
        assert!(text.contains(t), "{t} missing: {text}");
    }
    for (m, extra, why) in [
        ("2019-13", &[][..], "Tháng `13` không hợp lệ"),
        (
            month.as_str(),
            &["--station", "phuong-khong-co"][..],
            "Không có trạm `phuong-khong-co`",
        ),
        (month.as_str(), &["--set", "chu_ky"][..], "KEY=VALUE"),
    ] {
        let (code, _, err) = docx_args(m, extra);
        assert_eq!(code, 2, "{m} {extra:?}: {err}");
        assert!(err.contains(why), "{err}");
    }
}
