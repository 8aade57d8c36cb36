//! The office web app: server-rendered pages for the city culture office and the ward operators
//! (overview, station month, reports; the account pages render through the same environment).
//!
//! Pages are [minijinja] templates embedded in the binary (`templates/`, `include_str!`), with HTML
//! autoescaping on for every `.html` template: a page never builds HTML with `format!`, and every
//! text that came from a station, a schedule or a user (station names, titles, reasons) is escaped
//! by the engine. The stylesheet (`static/loa.css`, with a print stylesheet) is served from the
//! binary too, like the few small scripts of our own (no CDN, no framework); the app works on an
//! intranet with no internet.
//!
//! Vietnamese formatting lives in the filters registered here ([`fmt`]): `pct` (`97,5 %`),
//! `num` (`10.000`), `date` (`04/12/2026`), `time` (`05:30`), `datetime` (`05:30 04/12/2026`),
//! `secs` (`12,3`).
//!
//! Who is looking is a [`Viewer`] (`None` when nobody is signed in), handed to every render; the
//! accounts layer puts it in the request's extensions (`axum::Extension<Viewer>`), and the base
//! layout shows the navigation and the sign-out form (with its CSRF token) from it.
//!
//! The handlers live in the collector (`collector::office` for the overview, station month and
//! reports, `collector::pages` for the account pages): they read its caches and store and hand
//! this module plain data, so the imports run one way, collector → web.
//!
//! **Invariant:** rendering is pure and imports nothing of the collector: a page shows what its
//! handler computed, escaped by the engine, and every string a page shows is Vietnamese (codes
//! are turned into text at this edge).

pub mod fmt;
pub mod month;

use minijinja::Environment;
use serde::Serialize;
use std::sync::LazyLock;

/// Who is signed in, as every page shows it.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct Viewer {
    /// The user's login name.
    pub name: String,
    /// The role's code (`admin`, `operator`, `auditor`).
    pub role: String,
    /// The role in Vietnamese, as pages show it.
    pub role_label_vi: String,
    /// The session's CSRF token, put in every form.
    pub csrf: String,
}

/// Every template, by name (`base.html` is the layout the others extend).
const TEMPLATES: &[(&str, &str)] = &[
    ("base.html", include_str!("templates/base.html")),
    ("error.html", include_str!("templates/error.html")),
    ("overview.html", include_str!("templates/overview.html")),
    (
        "station_month.html",
        include_str!("templates/station_month.html"),
    ),
    ("reports.html", include_str!("templates/reports.html")),
    // The account pages (rendered by `collector::pages`).
    ("login.html", include_str!("templates/login.html")),
    ("account.html", include_str!("templates/account.html")),
    ("users.html", include_str!("templates/users.html")),
    ("audit.html", include_str!("templates/audit.html")),
    // Schedules held by the centre (rendered by `collector::versions::routes`).
    ("schedule.html", include_str!("templates/schedule.html")),
    (
        "schedule_version.html",
        include_str!("templates/schedule_version.html"),
    ),
    ("programs.html", include_str!("templates/programs.html")),
    // The content library (rendered by `collector::library::web`).
    ("library.html", include_str!("templates/library.html")),
    // Bulletins (rendered by `collector::bulletin_pages`).
    ("bulletins.html", include_str!("templates/bulletins.html")),
    ("bulletin.html", include_str!("templates/bulletin.html")),
    (
        "bulletin_new.html",
        include_str!("templates/bulletin_new.html"),
    ),
    // Centre-managed stations and enrolment codes (rendered by `collector::enrolment`).
    (
        "admin_stations.html",
        include_str!("templates/admin_stations.html"),
    ),
];

/// The stylesheet, served at [`CSS_PATH`].
pub const CSS: &str = include_str!("static/loa.css");
/// Where pages link the stylesheet (its version in the name: a changed file is a new URL, so a
/// browser that cached the old one for a day loads the new one at once).
pub const CSS_PATH: &str = "/static/loa-2.css";
/// The SHA-256 of the stylesheet [`CSS_PATH`]'s version names: a test fails when the file
/// changes and the version does not.
#[cfg(test)]
const CSS_SHA256: &str = "4e015675466d57d75201fa008cdf8520a96221ba985a038d2e580df4257d2c8d";

static ENV: LazyLock<Environment<'static>> = LazyLock::new(|| {
    let mut env = Environment::new();
    // `.html` templates autoescape (minijinja's default rule, stated here so it is not lost).
    env.set_auto_escape_callback(|name| {
        if name.ends_with(".html") {
            minijinja::AutoEscape::Html
        } else {
            minijinja::AutoEscape::None
        }
    });
    env.set_undefined_behavior(minijinja::UndefinedBehavior::Strict);
    for (name, source) in TEMPLATES {
        if let Err(e) = env.add_template(name, source) {
            // The templates are part of the binary: a syntax error is a build defect, caught
            // by this module's tests; a page then answers a plain error rather than panic.
            tracing::error!(template = name, error = %e, "template does not compile");
        }
    }
    fmt::register(&mut env);
    env.add_global("css_path", CSS_PATH);
    env
});

/// The template environment (for the account pages rendered outside this module).
pub fn env() -> &'static Environment<'static> {
    &ENV
}

/// Why a page could not be rendered.
#[derive(Debug, thiserror::Error)]
#[error("rendering `{template}`: {source:#}")]
pub struct RenderError {
    pub template: String,
    #[source]
    pub source: minijinja::Error,
}

/// Render template `name` with `ctx` (any serialisable map) for `viewer`. The context gets
/// `viewer` added (none when nobody is signed in).
pub fn render<S: Serialize>(
    name: &str,
    viewer: Option<&Viewer>,
    ctx: S,
) -> Result<String, RenderError> {
    let fail = |source| RenderError {
        template: name.to_string(),
        source,
    };
    let tmpl = ENV.get_template(name).map_err(fail)?;
    tmpl.render(minijinja::context! {
        viewer => viewer,
        ..minijinja::Value::from_serialize(&ctx)
    })
    .map_err(fail)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_changed_stylesheet_gets_a_new_url() {
        use sha2::{Digest, Sha256};
        let now = hex::encode(Sha256::digest(CSS.as_bytes()));
        assert_eq!(
            now, CSS_SHA256,
            "src/web/static/loa.css changed: browsers keep {CSS_PATH} for a day, so give it a \
             new number (CSS_PATH, collector::authz's route, docs/openapi.json) and set \
             CSS_SHA256 to {now}"
        );
    }

    #[test]
    fn every_template_compiles() {
        let mut env = Environment::new();
        fmt::register(&mut env);
        for (name, source) in TEMPLATES {
            env.add_template(name, source)
                .unwrap_or_else(|e| panic!("{name}: {e:#}"));
        }
    }

    #[test]
    fn text_is_escaped_and_the_viewer_gets_the_sign_out_form() {
        let v = Viewer {
            name: "<b>x</b>".into(),
            role: "admin".into(),
            role_label_vi: "Quản trị".into(),
            csrf: "tok\"en".into(),
        };
        let html = render(
            "error.html",
            Some(&v),
            minijinja::context! { title => "Lỗi", message => "<script>alert(1)</script>" },
        )
        .unwrap();
        assert!(html.contains("&lt;script&gt;"), "{html}");
        assert!(!html.contains("<script>"), "{html}");
        assert!(html.contains("&lt;b&gt;x&lt;&#x2f;b&gt;"), "{html}");
        assert!(html.contains("action=\"/logout\""), "{html}");
        assert!(html.contains("value=\"tok&quot;en\""), "{html}");
        let anon = render(
            "error.html",
            None,
            minijinja::context! { title => "Lỗi", message => "x" },
        )
        .unwrap();
        assert!(!anon.contains("/logout"), "{anon}");
        assert!(anon.contains("href=\"/login\""), "{anon}");
    }
}
