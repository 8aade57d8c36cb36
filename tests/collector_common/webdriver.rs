//! WebDriver for the browser tests (`web_browser`, `web_bulletins`): Debian's `chromedriver` on a
//! free loopback port and a headless Chromium session over it (`fantoccini`).

use super::tools;
use fantoccini::{Client, ClientBuilder};
use std::path::Path;
use std::time::Duration;

/// chromedriver on a free loopback port, killed on drop.
pub struct Driver {
    _child: tokio::process::Child,
    pub url: String,
}

pub async fn chromedriver() -> Driver {
    let exe = tools::require_tool("chromedriver", "chromium-driver");
    // chromedriver binds the port on IPv6 too and exits when that is taken ("IPv6 port not
    // available"), which a port free on 127.0.0.1 alone may be on a busy machine (seen with
    // 22,000 loopback connections of the fleet simulator): take a port free on the dual-stack
    // wildcard, and try another when the driver exits instead of listening.
    let mut tried = Vec::new();
    for _ in 0..5 {
        let port = std::net::TcpListener::bind("[::]:0")
            .or_else(|_| std::net::TcpListener::bind("127.0.0.1:0"))
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        tried.push(port);
        let mut child = tokio::process::Command::new(&exe)
            .arg(format!("--port={port}"))
            .arg("--allowed-ips=127.0.0.1")
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .expect("chromedriver starts");
        for _ in 0..200 {
            if tokio::net::TcpStream::connect(("127.0.0.1", port))
                .await
                .is_ok()
            {
                return Driver {
                    _child: child,
                    url: format!("http://127.0.0.1:{port}"),
                };
            }
            if let Ok(Some(_)) = child.try_wait() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
    panic!("chromedriver did not listen on 127.0.0.1 (ports tried: {tried:?}, 10 s each)");
}

/// A headless Chromium session downloading into `downloads`.
pub async fn browser(driver: &Driver, profile: &Path, downloads: &Path) -> Client {
    let chromium = tools::require_tool("chromium", "chromium");
    let mut caps = serde_json::Map::new();
    caps.insert(
        "goog:chromeOptions".into(),
        serde_json::json!({
            "binary": chromium,
            "args": [
                "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                "--no-first-run", "--disable-background-networking", "--disable-component-update",
                "--disable-sync", "--window-size=1280,1000",
                format!("--user-data-dir={}", profile.display()),
            ],
            "prefs": {
                "download.default_directory": downloads,
                "download.prompt_for_download": false,
                "download.directory_upgrade": true,
                "safebrowsing.enabled": false,
            },
        }),
    );
    let connector = hyper_util::client::legacy::connect::HttpConnector::new();
    ClientBuilder::new(connector)
        .capabilities(caps)
        .connect(&driver.url)
        .await
        .expect("a WebDriver session with headless Chromium")
}
