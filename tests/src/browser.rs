//! A real browser for the operator workspace's tests: Debian's headless Chromium driven over WebDriver by
//! chromedriver, which `infra/web/with-chromedriver.sh` starts on 127.0.0.1 and names in `CHROMEDRIVER_URL`.
//! Without it the tests fail (they never pass silently without a browser).
//!
//! Elements are found the way a person (or a screen reader) finds them: by role and accessible name
//! (`aria-labelledby`, `aria-label`, `<label>`, a button's text), never by class or id. Waits are bounded
//! (`WAIT`, polling every 100 ms) and say what they waited for, with the page's text, when they give up.
//! `axe_check` runs axe-core (pinned in `infra/web/package.json`, path in `AXE_JS`) and fails on any serious
//! or critical violation. `screenshot` writes `docs/screenshots/<name>.png` only when
//! `OMNICHAT_SCREENSHOTS=1`, so a test run never rewrites the committed pictures by accident.
//!
//! The session (and its Chromium) is closed by [`Browser::close`], or, when a test panics before that, by
//! `Drop`, which deletes the session with a plain blocking request to chromedriver.

use std::future::Future;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use fantoccini::elements::{Element, ElementRef};
use fantoccini::key::Key;
use fantoccini::{Client, ClientBuilder, Locator};
use serde_json::{Map, Value, json};

/// How long a wait polls before it fails.
pub const WAIT: Duration = Duration::from_secs(5);
const POLL: Duration = Duration::from_millis(100);
/// WebDriver's key for an element reference in JSON.
const ELEMENT_KEY: &str = "element-6066-11e4-a52e-4f735466cecf";

/// Chromium's flags: headless, no sandbox (root in a container), and nothing that reaches the internet on
/// its own (component updates, sync, safe browsing lists, ...). Belt and braces: every host but 127.0.0.1
/// (where the tests serve the app) resolves to nothing, so neither a page nor Chromium itself reaches
/// another host by name.
const CHROMIUM_ARGS: &[&str] = &[
    "--headless=new",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-default-apps",
    "--no-default-browser-check",
    "--disable-domain-reliability",
    "--disable-client-side-phishing-detection",
    "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1",
    "--window-size=1280,900",
];

/// Finds the first visible element of a role whose accessible name is `name` (whitespace collapsed, case
/// ignored), under `root` (or the document). Answers `{"found": element | null, "names": [the visible
/// names of that role, for the failure message]}`.
const FIND_BY_NAME: &str = r#"
const [role, wanted, root] = arguments;
const norm = (s) => (s || '').replace(/\s+/g, ' ').trim();
const selectors = {
  button: 'button, input[type=button], input[type=submit], input[type=reset], [role=button]',
  link: 'a[href], [role=link]',
  textbox: 'input:not([type]), input[type=text], input[type=password], input[type=search], input[type=email], input[type=url], input[type=tel], input[type=number], textarea, [role=textbox], [contenteditable=""], [contenteditable=true]',
  combobox: 'select, [role=combobox], [role=listbox]',
  checkbox: 'input[type=checkbox], [role=checkbox], [role=switch]',
  radio: 'input[type=radio], [role=radio]',
  option: 'option, [role=option], [role=menuitemradio]',
  list: 'ul, ol, [role=list], [role=listbox], [role=feed], [role=grid], [role=table], table',
  dialog: 'dialog, [role=dialog], [role=alertdialog]',
  heading: 'h1, h2, h3, h4, h5, h6, [role=heading]',
  group: 'fieldset, [role=group], [role=radiogroup], [role=toolbar], section, [role=region], form, nav, [role=navigation]',
  any: '*',
};
const fromContent = new Set(['BUTTON', 'A', 'H1', 'H2', 'H3', 'H4', 'H5', 'H6', 'OPTION', 'SUMMARY', 'LEGEND']);
const contentRoles = new Set(['button', 'link', 'heading', 'tab', 'option', 'menuitem', 'menuitemradio', 'radio', 'checkbox', 'switch']);
const visible = (el) => el.getClientRects().length > 0 && getComputedStyle(el).visibility !== 'hidden';
// A label's own text, without the text of the controls inside it (a <select>'s options).
const labelText = (label) => {
  const copy = label.cloneNode(true);
  copy.querySelectorAll('select, input, textarea').forEach((c) => c.remove());
  return norm(copy.textContent);
};
const name = (el) => {
  const by = el.getAttribute('aria-labelledby');
  if (by) {
    const text = norm(by.split(/\s+/).map((id) => document.getElementById(id)).filter(Boolean)
      .map((e) => e.textContent).join(' '));
    if (text) return text;
  }
  const aria = norm(el.getAttribute('aria-label'));
  if (aria) return aria;
  if (el.labels && el.labels.length) return norm([...el.labels].map(labelText).join(' '));
  if (el.tagName === 'INPUT' && ['button', 'submit', 'reset'].includes(el.type)) return norm(el.value);
  if (el.tagName === 'FIELDSET') {
    const legend = el.querySelector(':scope > legend');
    if (legend) return norm(legend.textContent);
  }
  if (el.tagName === 'TABLE' && el.caption) return norm(el.caption.textContent);
  if (fromContent.has(el.tagName) || contentRoles.has(el.getAttribute('role'))) return norm(el.textContent);
  return norm(el.getAttribute('title'));
};
const scope = root || document;
const candidates = [...scope.querySelectorAll(selectors[role] || role)].filter(visible);
const target = norm(wanted).toLowerCase();
const found = candidates.find((el) => name(el).toLowerCase() === target) || null;
const names = found ? [] : [...new Set(candidates.map(name).filter(Boolean))].slice(0, 40);
return { found, names };
"#;

/// Runs axe-core on the document and answers its violations, trimmed to what a failure message needs.
const AXE_RUN: &str = r#"
const done = arguments[arguments.length - 1];
axe.run(document, { resultTypes: ['violations'] })
  .then((results) => done({ passes: results.passes.length, violations: results.violations.map((v) => ({
    id: v.id, impact: v.impact, help: v.help,
    nodes: v.nodes.slice(0, 5).map((n) => ({ target: n.target.join(' '), summary: n.failureSummary })),
  })) }))
  .catch((e) => done({ error: String(e && e.stack || e) }));
"#;

/// One Chromium session.
pub struct Browser {
    client: Client,
    driver: String,
    session: Option<String>,
    _profile: tempfile::TempDir,
}

impl Browser {
    /// Opens a session on the chromedriver named by `CHROMEDRIVER_URL`, with a fresh profile directory.
    pub async fn open() -> Self {
        let driver = std::env::var("CHROMEDRIVER_URL").unwrap_or_else(|_| {
            panic!(
                "CHROMEDRIVER_URL is not set: run the browser tests through infra/web/with-chromedriver.sh, e.g. \
                 `infra/web/with-chromedriver.sh cargo test -p omnichat-tests --test integration e2e_workspace:: \
                 -- --test-threads=1`"
            )
        });
        let profile = tempfile::tempdir().expect("a profile directory");
        let mut args: Vec<String> = CHROMIUM_ARGS.iter().map(|arg| (*arg).to_owned()).collect();
        args.push(format!("--user-data-dir={}", profile.path().display()));
        let mut capabilities = Map::new();
        capabilities
            .insert("goog:chromeOptions".into(), json!({"binary": "/usr/bin/chromium", "args": args}));
        let connector = hyper_util::client::legacy::connect::HttpConnector::new();
        let client = ClientBuilder::new(connector)
            .capabilities(capabilities)
            .connect(&driver)
            .await
            .unwrap_or_else(|e| panic!("no browser session from chromedriver at {driver}: {e}"));
        let session = client.session_id().await.ok().flatten();
        Self { client, driver, session, _profile: profile }
    }

    pub fn client(&self) -> &Client {
        &self.client
    }

    /// Closes the session and its Chromium.
    pub async fn close(mut self) {
        if self.session.take().is_some() {
            let _ = self.client.clone().close().await;
        }
    }

    pub async fn goto(&self, url: &str) {
        self.client.goto(url).await.unwrap_or_else(|e| panic!("navigating to {url}: {e}"));
    }

    /// Runs `script` in the page (its arguments in `arguments`) and answers what it returns.
    pub async fn js(&self, script: &str, args: Vec<Value>) -> Value {
        self.client.execute(script, args).await.unwrap_or_else(|e| panic!("script failed: {e}\n{script}"))
    }

    /// The page's visible text (for failure messages and assertions on what a person reads).
    pub async fn text(&self) -> String {
        self.js("return document.body ? document.body.innerText : '';", vec![])
            .await
            .as_str()
            .unwrap_or_default()
            .to_owned()
    }

    /// The visible element of `role` named `name` (under `within`), if there is one now; otherwise the visible
    /// names of that role.
    pub async fn try_find(
        &self,
        role: &str,
        name: &str,
        within: Option<&Element>,
    ) -> Result<Element, Vec<String>> {
        let root =
            within.map(|el| serde_json::to_value(el).expect("an element reference")).unwrap_or(Value::Null);
        let answer = self.js(FIND_BY_NAME, vec![json!(role), json!(name), root]).await;
        match self.element(&answer["found"]) {
            Some(element) => Ok(element),
            None => Err(answer["names"]
                .as_array()
                .map(|names| names.iter().filter_map(|n| n.as_str().map(str::to_owned)).collect())
                .unwrap_or_default()),
        }
    }

    /// Waits (at most [`WAIT`]) for the visible element of `role` named `name`.
    pub async fn find(&self, role: &str, name: &str) -> Element {
        self.find_within(role, name, None).await
    }

    /// Waits (at most [`WAIT`]) for the visible element of `role` named `name` under `within`.
    pub async fn find_within(&self, role: &str, name: &str, within: Option<&Element>) -> Element {
        let started = Instant::now();
        loop {
            match self.try_find(role, name, within).await {
                Ok(element) => return element,
                Err(names) if started.elapsed() >= WAIT => {
                    let page = self.text().await;
                    panic!(
                        "no visible {role} named {name:?} after {WAIT:?}; the visible {role}s are named {names:?}.\n\
                         The page reads:\n{page}"
                    );
                }
                Err(_) => tokio::time::sleep(POLL).await,
            }
        }
    }

    /// Finds the first visible element matching a CSS selector now.
    pub async fn try_css(&self, selector: &str) -> Option<Element> {
        let found = self.client.find_all(Locator::Css(selector)).await.unwrap_or_default();
        for element in found {
            if element.is_displayed().await.unwrap_or(false) {
                return Some(element);
            }
        }
        None
    }

    /// Waits (at most [`WAIT`]) for a visible element matching a CSS selector.
    pub async fn css(&self, selector: &str) -> Element {
        let mut checks = 0;
        loop {
            if let Some(element) = self.try_css(selector).await {
                return element;
            }
            checks += 1;
            if checks * POLL >= WAIT {
                let page = self.text().await;
                panic!("no visible element matches {selector:?} after {WAIT:?}. The page reads:\n{page}");
            }
            tokio::time::sleep(POLL).await;
        }
    }

    /// Polls `check` (every 100 ms, at most `limit`) until it answers `Some`; otherwise fails saying `what`
    /// was awaited, with the page's text.
    pub async fn wait_until<T, F, Fut>(&self, what: &str, limit: Duration, mut check: F) -> T
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Option<T>>,
    {
        let started = Instant::now();
        loop {
            if let Some(value) = check().await {
                return value;
            }
            if started.elapsed() >= limit {
                let page = self.text().await;
                panic!("waited {limit:?} for {what}, in vain. The page reads:\n{page}");
            }
            tokio::time::sleep(POLL).await;
        }
    }

    /// Types `text` into the text box named `name` (after clearing it).
    pub async fn fill(&self, name: &str, text: &str) {
        let field = self.find("textbox", name).await;
        field.clear().await.unwrap_or_else(|e| panic!("clearing {name:?}: {e}"));
        field.send_keys(text).await.unwrap_or_else(|e| panic!("typing into {name:?}: {e}"));
    }

    /// Presses Enter in the text box named `name`.
    pub async fn press_enter(&self, name: &str) {
        let field = self.find("textbox", name).await;
        field
            .send_keys(&char::from(Key::Enter).to_string())
            .await
            .unwrap_or_else(|e| panic!("Enter in {name:?}: {e}"));
    }

    /// Clicks the button named `name`.
    pub async fn click(&self, name: &str) {
        self.click_role("button", name).await;
    }

    /// Clicks the element of `role` named `name`.
    pub async fn click_role(&self, role: &str, name: &str) {
        let element = self.find(role, name).await;
        element.click().await.unwrap_or_else(|e| panic!("clicking the {role} {name:?}: {e}"));
    }

    /// Picks `option` in the control named `control`: a `<select>` (or combobox), or a group of radio
    /// buttons or toggle buttons.
    pub async fn choose(&self, control: &str, option: &str) {
        let started = Instant::now();
        loop {
            if let Ok(select) = self.try_find("combobox", control, None).await {
                if select.tag_name().await.unwrap_or_default().eq_ignore_ascii_case("select") {
                    // A click on the option, as a person picks it (chromedriver selects it and fires the
                    // select's input and change events).
                    let answer = self
                        .js(
                            "const [select, wanted] = arguments;\n\
                             const norm = (s) => (s || '').replace(/\\s+/g, ' ').trim().toLowerCase();\n\
                             const option = [...select.options].find((o) => norm(o.textContent) === norm(wanted));\n\
                             return { option: option || null, options: [...select.options].map((o) => o.textContent) };",
                            vec![serde_json::to_value(&select).expect("element"), json!(option)],
                        )
                        .await;
                    let Some(choice) = self.element(&answer["option"]) else {
                        panic!(
                            "the select {control:?} has no option {option:?}; it offers {}",
                            answer["options"]
                        );
                    };
                    choice
                        .click()
                        .await
                        .unwrap_or_else(|e| panic!("choosing {option:?} in {control:?}: {e}"));
                    return;
                }
                select.click().await.unwrap_or_else(|e| panic!("opening {control:?}: {e}"));
                self.click_role("option", option).await;
                return;
            }
            if let Ok(group) = self.try_find("group", control, None).await {
                for role in ["radio", "button"] {
                    if let Ok(choice) = self.try_find(role, option, Some(&group)).await {
                        choice.click().await.unwrap_or_else(|e| panic!("choosing {option:?}: {e}"));
                        return;
                    }
                }
            }
            if started.elapsed() >= WAIT {
                let page = self.text().await;
                panic!(
                    "no control named {control:?} offering {option:?} after {WAIT:?}. The page reads:\n{page}"
                );
            }
            tokio::time::sleep(POLL).await;
        }
    }

    /// The element a script answered, if it answered one.
    pub fn element(&self, value: &Value) -> Option<Element> {
        let id = value.get(ELEMENT_KEY)?.as_str()?;
        Some(Element::from_element_id(self.client.clone(), ElementRef::from(id.to_owned())))
    }

    /// Runs axe-core on the page as it is now; fails on any violation of impact "serious" or "critical"
    /// (naming `page`, each rule, and the elements at fault).
    pub async fn axe_check(&self, page: &str) {
        let loaded = self.js("return typeof axe !== 'undefined';", vec![]).await;
        if loaded != json!(true) {
            let path = std::env::var("AXE_JS").unwrap_or_else(|_| {
                panic!("AXE_JS is not set: run the browser tests through infra/web/with-chromedriver.sh")
            });
            let source = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("axe-core at {path}: {e}"));
            self.js(&format!("{source}\n;return typeof axe !== 'undefined';"), vec![]).await;
        }
        let answer =
            self.client.execute_async(AXE_RUN, vec![]).await.unwrap_or_else(|e| panic!("axe on {page}: {e}"));
        if let Some(error) = answer.get("error") {
            panic!("axe failed on {page}: {error}");
        }
        let passes = answer["passes"].as_u64().unwrap_or(0);
        assert!(passes > 0, "axe checked nothing on {page} (no rule passed): {answer}");
        let violations = answer["violations"].as_array().cloned().unwrap_or_default();
        let (grave, minor): (Vec<Value>, Vec<Value>) = violations
            .into_iter()
            .partition(|v| matches!(v["impact"].as_str(), Some("serious" | "critical")));
        for v in &minor {
            eprintln!("axe on {page}: {} ({}): {}", v["id"], v["impact"], v["help"]);
        }
        assert!(
            grave.is_empty(),
            "axe found serious or critical accessibility violations on {page}:\n{}",
            serde_json::to_string_pretty(&grave).unwrap_or_default()
        );
    }

    /// Saves the viewport as `docs/screenshots/<name>.png`, only when `OMNICHAT_SCREENSHOTS=1`.
    pub async fn screenshot(&self, name: &str) {
        if std::env::var("OMNICHAT_SCREENSHOTS").as_deref() != Ok("1") {
            return;
        }
        let png = self.client.screenshot().await.unwrap_or_else(|e| panic!("screenshot {name}: {e}"));
        let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../docs/screenshots");
        std::fs::create_dir_all(&dir).expect("docs/screenshots");
        let path = dir.join(format!("{name}.png"));
        std::fs::write(&path, png).unwrap_or_else(|e| panic!("writing {}: {e}", path.display()));
    }

    /// Scrolls `element` to the middle of the viewport (before a screenshot of it).
    pub async fn scroll_to(&self, element: &Element) {
        self.js(
            "arguments[0].scrollIntoView({ block: 'center' }); return true;",
            vec![serde_json::to_value(element).expect("element")],
        )
        .await;
    }

    /// Sets the window's size (the viewport, in headless Chromium).
    pub async fn resize(&self, width: u32, height: u32) {
        self.client
            .set_window_size(width, height)
            .await
            .unwrap_or_else(|e| panic!("resizing to {width}x{height}: {e}"));
    }

    /// The page's width as laid out (`document.documentElement.scrollWidth`) and the viewport's.
    pub async fn widths(&self) -> (u64, u64) {
        let answer = self
            .js(
                "return [document.documentElement.scrollWidth, document.documentElement.clientWidth];",
                vec![],
            )
            .await;
        (answer[0].as_u64().unwrap_or(u64::MAX), answer[1].as_u64().unwrap_or(0))
    }
}

impl Drop for Browser {
    /// A test that failed before `close`: deletes the session (which quits Chromium) with a plain blocking
    /// request, as no runtime can be counted on here.
    fn drop(&mut self) {
        let Some(session) = self.session.take() else { return };
        let Some(address) = self.driver.strip_prefix("http://").map(|a| a.trim_end_matches('/').to_owned())
        else {
            return;
        };
        let Ok(mut stream) = TcpStream::connect(&address) else { return };
        let _ = stream.set_read_timeout(Some(Duration::from_secs(10)));
        let request = format!(
            "DELETE /session/{session} HTTP/1.1\r\nHost: {address}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
        );
        if stream.write_all(request.as_bytes()).is_ok() {
            let mut answer = Vec::new();
            let _ = stream.read_to_end(&mut answer);
        }
    }
}
