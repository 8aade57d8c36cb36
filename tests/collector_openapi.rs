//! `docs/openapi.json` is exactly as strict as the server, for the ingest endpoints: requests
//! generated from the document's own schemas (every field drawn from its declared type, range,
//! enum and format; optional fields present or absent; nullable ones sometimes null) are
//! accepted when the station signs them, refused with 403 (never 400 or 500) when it does not;
//! a value just outside a declared range is refused with 400 naming the field; and every answer
//! has a documented status and a body valid against the schema documented for it.
//!
//! The document lists exactly the collector's routes: every row of `authz::ROUTES` is an
//! operation of the same method and path, every operation is a row, and each `{parameter}` of
//! a path is declared.
//!
//! The semantic rules no JSON Schema can state are applied to the generated values and
//! documented in the document's descriptions: a record is signed by the station's key and names
//! the station of the path; seq 1 carries the genesis `prev_hash`; a seq is not reused with other
//! bytes (409); a heartbeat's `sent_at` is fresh and newer than the last one (409).

mod collector_common;

use base64::Engine as _;
use collector_common::*;
use ed25519_dalek::Signer;
use loa::clock::ManualClock;
use loa::collector::http::HttpConfig;
use serde_json::{Map, Value, json};
use std::collections::HashSet;
use std::sync::Arc;

/// A small deterministic generator (xorshift), so a failure names its case and repeats.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }
    fn chance(&mut self, n: u64) -> bool {
        self.below(n) == 0
    }
}

struct Doc(Value);

impl Doc {
    fn load() -> Doc {
        let text =
            std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/docs/openapi.json"))
                .unwrap();
        Doc(serde_json::from_str(&text).unwrap())
    }

    fn resolve<'a>(&'a self, schema: &'a Value) -> &'a Value {
        match schema.get("$ref").and_then(Value::as_str) {
            Some(r) => {
                let name = r.trim_start_matches("#/components/schemas/");
                self.resolve(&self.0["components"]["schemas"][name])
            }
            None => schema,
        }
    }

    fn schema(&self, name: &str) -> &Value {
        &self.0["components"]["schemas"][name]
    }

    /// A value valid against `schema`.
    fn generate(&self, schema: &Value, rng: &mut Rng) -> Value {
        let s = self.resolve(schema);
        if s.get("nullable") == Some(&Value::Bool(true)) && rng.chance(4) {
            return Value::Null;
        }
        if let Some(all) = s.get("allOf").and_then(Value::as_array) {
            let mut out = Map::new();
            for part in all {
                if let Value::Object(m) = self.generate(part, rng) {
                    out.extend(m);
                }
            }
            return Value::Object(out);
        }
        if let Some(e) = s.get("enum").and_then(Value::as_array) {
            return e[rng.below(e.len() as u64) as usize].clone();
        }
        match s.get("type").and_then(Value::as_str) {
            Some("object") => {
                let required: HashSet<&str> = s
                    .get("required")
                    .and_then(Value::as_array)
                    .map(|r| r.iter().filter_map(Value::as_str).collect())
                    .unwrap_or_default();
                let mut out = Map::new();
                if let Some(props) = s.get("properties").and_then(Value::as_object) {
                    for (k, v) in props {
                        if required.contains(k.as_str()) || rng.chance(2) {
                            out.insert(k.clone(), self.generate(v, rng));
                        }
                    }
                }
                Value::Object(out)
            }
            Some("array") => {
                let lo = s.get("minItems").and_then(Value::as_u64).unwrap_or(0);
                let hi = s
                    .get("maxItems")
                    .and_then(Value::as_u64)
                    .unwrap_or(3)
                    .min(3);
                let n = lo + rng.below(hi.saturating_sub(lo) + 1);
                Value::Array((0..n).map(|_| self.generate(&s["items"], rng)).collect())
            }
            Some("integer") => {
                let lo = s.get("minimum").and_then(Value::as_i64).unwrap_or(i64::MIN);
                let hi = s.get("maximum").and_then(Value::as_i64).unwrap_or(i64::MAX);
                // The bounds themselves, their neighbours, and anything between.
                let pick = match rng.below(5) {
                    0 => lo,
                    1 => hi,
                    2 => lo.saturating_add(1).min(hi),
                    _ => {
                        let span = (hi as i128 - lo as i128 + 1) as u128;
                        (lo as i128 + (u128::from(rng.next()) % span) as i128) as i64
                    }
                };
                json!(pick)
            }
            Some("number") => {
                let x = match rng.below(4) {
                    0 => 0.0,
                    1 => -(rng.below(1_000_000) as f64) / 7.0,
                    2 => 1.0e300,
                    _ => rng.below(1_000_000) as f64 / 3.0,
                };
                json!(x)
            }
            Some("boolean") => json!(rng.chance(2)),
            Some("string") => match s.get("format").and_then(Value::as_str) {
                Some("date-time") => {
                    let secs = 1_500_000_000 + rng.below(400_000_000) as i64;
                    let off = ["Z", "+07:00", "-03:30", "+00:00"][rng.below(4) as usize];
                    let t = chrono::DateTime::from_timestamp(secs, 0).unwrap();
                    json!(format!("{}{off}", t.format("%Y-%m-%dT%H:%M:%S")))
                }
                _ => {
                    let choices = ["", "a", "Phường Lê Hồng Phong", "x\"y\\z", "\u{1F4FB}"];
                    json!(choices[rng.below(choices.len() as u64) as usize])
                }
            },
            _ => json!({}),
        }
    }

    /// Errors of `v` against `schema` (the subset of JSON Schema the document uses).
    fn validate(&self, schema: &Value, v: &Value, at: &str, errs: &mut Vec<String>) {
        let s = self.resolve(schema);
        if v.is_null() && s.get("nullable") == Some(&Value::Bool(true)) {
            return;
        }
        if let Some(all) = s.get("allOf").and_then(Value::as_array) {
            for part in all {
                self.validate(part, v, at, errs);
            }
        }
        if let Some(e) = s.get("enum").and_then(Value::as_array)
            && !e.contains(v)
        {
            errs.push(format!("{at}: {v} not in {e:?}"));
        }
        let ok = match s.get("type").and_then(Value::as_str) {
            Some("object") => v.is_object(),
            Some("array") => v.is_array(),
            Some("integer") => v.is_i64() || v.is_u64(),
            Some("number") => v.is_number(),
            Some("string") => v.is_string(),
            Some("boolean") => v.is_boolean(),
            _ => true,
        };
        if !ok {
            errs.push(format!("{at}: {v} is not {}", s["type"]));
            return;
        }
        if let Some(n) = v.as_f64() {
            if let Some(lo) = s.get("minimum").and_then(Value::as_f64)
                && n < lo
            {
                errs.push(format!("{at}: {n} < {lo}"));
            }
            if let Some(hi) = s.get("maximum").and_then(Value::as_f64)
                && n > hi
            {
                errs.push(format!("{at}: {n} > {hi}"));
            }
        }
        if let Some(o) = v.as_object() {
            for r in s
                .get("required")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
            {
                if let Some(r) = r.as_str()
                    && !o.contains_key(r)
                {
                    errs.push(format!("{at}: missing `{r}`"));
                }
            }
            if let Some(props) = s.get("properties").and_then(Value::as_object) {
                for (k, sub) in props {
                    if let Some(x) = o.get(k) {
                        self.validate(sub, x, &format!("{at}.{k}"), errs);
                    }
                }
            }
        }
        if let (Some(a), Some(items)) = (v.as_array(), s.get("items")) {
            for (i, x) in a.iter().enumerate() {
                self.validate(items, x, &format!("{at}[{i}]"), errs);
            }
        }
    }

    /// The answer's status is documented for `path` and its JSON body matches that schema.
    fn check_answer(&self, path: &str, status: u16, body: &Value) {
        let responses = &self.0["paths"][path]["post"]["responses"];
        let doc = responses
            .get(status.to_string())
            .unwrap_or_else(|| panic!("{path}: status {status} is not documented ({body})"));
        let schema = &doc["content"]["application/json"]["schema"];
        let mut errs = Vec::new();
        self.validate(schema, body, "body", &mut errs);
        assert!(errs.is_empty(), "{path} {status}: {errs:?} in {body}");
    }
}

/// A batch of one record carrying exactly `bytes` (a `Value` would re-serialise them).
fn batch_body(bytes: &str, signature: &str) -> String {
    format!(
        r#"{{"records":[{{"record":{bytes},"hash":"{}","signature":"{signature}"}}]}}"#,
        loa::wire::sha256_hex(bytes.as_bytes())
    )
}

/// A signed heartbeat carrying exactly `bytes`.
fn heartbeat_body(bytes: &str, signature: &str) -> String {
    format!(r#"{{"heartbeat":{bytes},"signature":"{signature}"}}"#)
}

fn sign(st: &TestStation, bytes: &str) -> String {
    base64::engine::general_purpose::STANDARD.encode(st.key.sign(bytes.as_bytes()).to_bytes())
}

/// The rule of `reason_code` no schema here states (it is in the document's description): a
/// version 1 record carries none, a version 2 record carries one when it did not air in full.
/// The `reason_code` cases below then set it to a version 2 record's code.
fn reason_code_rule(rec: &mut Value) {
    let aired = rec["outcome"] == json!("aired");
    match rec["v"].as_u64() {
        Some(1) => {
            rec.as_object_mut().unwrap().remove("reason_code");
        }
        _ if !aired && rec.get("reason_code").is_none_or(Value::is_null) => {
            rec["reason_code"] = json!("missed.unspecified");
        }
        _ => {}
    }
}

/// Every route of the collector (`authz::ROUTES`, the one table every request passes) is in the
/// document with its method, and the document has no operation the collector does not serve.
#[test]
fn the_document_lists_exactly_the_routes_of_the_route_table() {
    let doc = Doc::load();
    let methods = ["get", "put", "post", "delete", "patch", "head", "options"];
    let mut documented = HashSet::new();
    for (path, item) in doc.0["paths"].as_object().unwrap() {
        for (m, op) in item.as_object().unwrap() {
            if !methods.contains(&m.as_str()) {
                continue;
            }
            documented.insert((m.to_uppercase(), path.clone()));
            // Each `{name}` of the path is declared as a path parameter.
            let declared: HashSet<&str> = op["parameters"]
                .as_array()
                .into_iter()
                .flatten()
                .filter(|p| p["in"] == "path")
                .filter_map(|p| p["name"].as_str())
                .collect();
            for name in path.split('{').skip(1).filter_map(|s| s.split_once('}')) {
                assert!(
                    declared.contains(name.0),
                    "{m} {path}: path parameter `{}` is not declared",
                    name.0
                );
            }
            assert!(
                op["summary"].as_str().is_some_and(|s| !s.is_empty()),
                "{m} {path} has no summary"
            );
        }
    }
    let table: HashSet<(String, String)> = loa::collector::authz::ROUTES
        .iter()
        .map(|r| (r.method.to_string(), r.path.to_string()))
        .collect();
    let mut missing: Vec<_> = table.difference(&documented).collect();
    missing.sort();
    assert!(
        missing.is_empty(),
        "routes of authz::ROUTES missing from docs/openapi.json: {missing:?}"
    );
    let mut extra: Vec<_> = documented.difference(&table).collect();
    extra.sort();
    assert!(
        extra.is_empty(),
        "operations of docs/openapi.json the collector does not serve (no row in authz::ROUTES): {extra:?}"
    );
}

/// The codes the document lists for `reason_code` are exactly those a station may state.
#[test]
fn the_documented_reason_codes_are_the_station_codes_of_the_table() {
    let doc = Doc::load();
    let listed: Vec<&str> = doc.schema("AiringRecord")["properties"]["reason_code"]["enum"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect();
    let table: Vec<&str> = loa::reason::ReasonCode::ALL
        .iter()
        .filter(|c| c.is_station_code())
        .map(|c| c.as_str())
        .collect();
    assert_eq!(listed, table);
    // And those of a refusal (`rejected[].code`) are the table's `refused.*` codes.
    let listed: Vec<&str> = doc.schema("Rejection")["properties"]["code"]["enum"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect();
    let table: Vec<&str> = loa::reason::ReasonCode::ALL
        .iter()
        .map(|c| c.as_str())
        .filter(|c| c.starts_with("refused."))
        .collect();
    assert_eq!(listed, table);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn schema_valid_requests_are_accepted_and_every_answer_is_documented() {
    let doc = Doc::load();
    let dir = tempfile::tempdir().unwrap();
    let a = TestStation::new("phuong-a", 1);
    let reg = write_registry(dir.path(), &[&a]);
    let db = loa::collector::db::testing::test_db(dir.path(), "collector.db");
    let clock = Arc::new(ManualClock::new(test_now()));
    let srv = start(
        &reg,
        &db,
        FixedPlans::default(),
        HttpConfig::default(),
        clock.clone(),
    )
    .await;
    let c = client();
    let records = "/api/v1/stations/{id}/records";
    let heartbeat = "/api/v1/stations/{id}/heartbeat";
    let rec_url = format!("{}/api/v1/stations/phuong-a/records", srv.base);
    let hb_url = format!("{}/api/v1/stations/phuong-a/heartbeat", srv.base);
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    let mut used = HashSet::new();
    let mut hb_at = test_now();
    for case in 0..300 {
        // A record from the schema, with the rules no schema states applied.
        let mut rec = doc.generate(doc.schema("AiringRecord"), &mut rng);
        rec["station"] = json!("phuong-a");
        reason_code_rule(&mut rec);
        let seq = rec["seq"].as_u64().unwrap();
        if seq == 1 {
            rec["prev_hash"] = json!(loa::wire::GENESIS_HASH);
        }
        let bytes = rec.to_string();
        let signed = batch_body(&bytes, &sign(&a, &bytes));
        let mut errs = Vec::new();
        doc.validate(
            doc.schema("RecordBatch"),
            &serde_json::from_str(&signed).unwrap(),
            "request",
            &mut errs,
        );
        assert!(errs.is_empty(), "generator: {errs:?}");
        let (st, v) = post(&c, &rec_url, signed.clone().into_bytes()).await;
        doc.check_answer(records, st, &v);
        // 409 when the seq is stored, or a stored neighbour (seq ± 1) does not link to it.
        let linked = [seq.wrapping_sub(1), seq, seq + 1]
            .iter()
            .any(|s| used.contains(s));
        let expected = if linked { 409 } else { 200 };
        assert_eq!(st, expected, "case {case}: {bytes} → {v}");
        if st == 200 {
            used.insert(seq);
        }

        // The same record not signed by the station: 403, never 400 or 500.
        let unsigned = batch_body(&bytes, &sign(&TestStation::new("x", 9), &bytes));
        let (st, v) = post(&c, &rec_url, unsigned.into_bytes()).await;
        doc.check_answer(records, st, &v);
        assert_eq!(st, 403, "case {case}: {v}");

        // A heartbeat from the schema, fresh and newer than the last.
        let mut hb = doc.generate(doc.schema("Heartbeat"), &mut rng);
        hb_at += chrono::Duration::milliseconds(1 + rng.below(1000) as i64);
        hb["station"] = json!("phuong-a");
        hb["sent_at"] = json!(hb_at);
        let bytes = hb.to_string();
        let signed = heartbeat_body(&bytes, &sign(&a, &bytes));
        let mut errs = Vec::new();
        doc.validate(
            doc.schema("SignedHeartbeat"),
            &serde_json::from_str(&signed).unwrap(),
            "request",
            &mut errs,
        );
        assert!(errs.is_empty(), "generator: {errs:?}");
        let (st, v) = post(&c, &hb_url, signed.clone().into_bytes()).await;
        doc.check_answer(heartbeat, st, &v);
        assert_eq!(st, 200, "case {case}: {bytes} → {v}");
        // Replayed: 409, documented.
        let (st, v) = post(&c, &hb_url, signed.clone().into_bytes()).await;
        doc.check_answer(heartbeat, st, &v);
        assert_eq!(st, 409, "case {case}: {v}");
    }

    // Just outside each declared integer range: 400 naming the field, documented.
    for (field, value) in [
        ("seq", json!(0)),
        ("seq", json!(9007199254740992u64)),
        ("seq", json!(9223372036854775808u64)),
        ("start_offset_ms", json!(-9007199254740992i64)),
        ("start_offset_ms", json!(9007199254740992i64)),
        // Not a code of the table, and a collector-side code a station may not state.
        ("reason_code", json!("missed.solar_flare")),
        ("reason_code", json!("no_record")),
    ] {
        let mut rec = doc.generate(doc.schema("AiringRecord"), &mut rng);
        rec["station"] = json!("phuong-a");
        reason_code_rule(&mut rec);
        rec[field] = value;
        let bytes = rec.to_string();
        let signed = batch_body(&bytes, &sign(&a, &bytes));
        let mut errs = Vec::new();
        doc.validate(
            doc.schema("RecordBatch"),
            &serde_json::from_str(&signed).unwrap(),
            "request",
            &mut errs,
        );
        assert!(
            !errs.is_empty(),
            "{field}: the document allows what the server refuses"
        );
        let (st, v) = post(&c, &rec_url, signed.clone().into_bytes()).await;
        doc.check_answer(records, st, &v);
        assert_eq!(st, 400, "{field}: {v}");
        assert!(v.to_string().contains(&format!("`{field}`")), "{v}");
    }
    // Not declared JSON, and an empty batch: documented refusals.
    let r = c.post(&rec_url).body("{}").send().await.unwrap();
    let st = r.status().as_u16();
    doc.check_answer(records, st, &r.json().await.unwrap());
    assert_eq!(st, 415);
    let (st, v) = post(&c, &rec_url, br#"{"records":[]}"#.to_vec()).await;
    doc.check_answer(records, st, &v);
    assert_eq!(st, 400);
    srv.stop().await;
}
