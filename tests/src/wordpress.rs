//! The lab's real app: WordPress 6.1 from Debian 12's archive (the image's `wordpress`
//! package), code and uploads on the volume, its database through the node's endpoint (the
//! `[app]` database, account and password file that Triad made), and a real client for it
//! (curl with a cookie jar) that logs in, uploads and posts as a user would.
//!
//! Where each piece lives: the code is copied from `/usr/share/wordpress` (symlinks into
//! Debian's shared libraries resolved) onto the volume once, so every node, an autoscaled web
//! node too, serves the same files without the package; `wp-config.php` (ours, not Debian's
//! per-host lookup) reads the password from [`APP_PASSWORD_FILE`] at every request, so it
//! is on no volume and in no file the app writes; logins are WordPress's own cookies, checked
//! against session tokens in the database and keys in `wp-config.php`, so any node accepts
//! them; uploads land in `wp-content/uploads` on the volume.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use crate::error::{IoContext, LabError, Result};
use crate::haproxy::LISTEN;
use crate::node::Node;
use crate::triad::{APP_DATABASE, APP_PASSWORD_FILE, DOCROOT};
use crate::Testbed;

/// The site's title (in every page's `<title>`).
pub const SITE_TITLE: &str = "Triad lab";
/// The WordPress administrator the lab creates.
pub const ADMIN_USER: &str = "admin";
/// The app's database endpoint on every node (the agent's local router).
pub const DB_ENDPOINT: &str = "127.0.0.1:3307";
/// Where the lab keeps the administrator's password on the host (0600).
pub const ADMIN_PASSWORD_FILE: &str = "wordpress-admin.password";
/// The one-line page naming the serving node, beside the app (`triad::publish_app`).
pub const NODE_PAGE: &str = "/node.php";

/// WordPress's scheduled work as a cluster job (issue 18): page-load cron is off
/// (`DISABLE_WP_CRON`), so `wp-cron.php` runs once a minute on exactly one ready node, as
/// WordPress's handbook says to run it from a system scheduler.
pub const CRON_JOB: &str = "\n[[app.jobs]]\nname = \"wp-cron\"\n\
argv = [\"/usr/bin/php\", \"/var/www/triad/wp-cron.php\"]\nuser = \"www-data\"\n\
schedule = \"1m\"\ntimeout = \"2m\"\n";

/// The installed site.
#[derive(Debug, Clone)]
pub struct Site {
    /// The balancer's URL, WordPress's home.
    pub url: String,
    pub user: String,
    pub password: String,
    /// The host file holding the password.
    pub password_file: PathBuf,
}

fn random_hex(bytes: usize) -> Result<String> {
    use std::io::Read;
    let mut buf = vec![0u8; bytes];
    std::fs::File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(&mut buf))
        .io("read", Path::new("/dev/urandom"))?;
    Ok(buf.iter().map(|b| format!("{b:02x}")).collect())
}

/// `wp-config.php`: the endpoint, the `[app]` account, the password read from the file Triad
/// delivers, fixed keys shared by every node (a login made on one node is valid on all), the
/// balancer's URL as home, no outbound HTTP, no updates from the web (Debian's package is the
/// update path), and no page-load cron (WordPress would call itself through the node's
/// loopback, where nothing listens; scheduled work is the jobs issue's).
pub fn wp_config(salts: &[String; 8]) -> String {
    const KEYS: [&str; 8] = [
        "AUTH_KEY",
        "SECURE_AUTH_KEY",
        "LOGGED_IN_KEY",
        "NONCE_KEY",
        "AUTH_SALT",
        "SECURE_AUTH_SALT",
        "LOGGED_IN_SALT",
        "NONCE_SALT",
    ];
    let keys: String = KEYS
        .iter()
        .zip(salts)
        .map(|(k, v)| format!("define('{k}', '{v}');\n"))
        .collect();
    format!(
        "<?php\n\
// Written by triad-lab: WordPress on Triad (tests/src/wordpress.rs).\n\
define('DB_NAME', '{APP_DATABASE}');\n\
define('DB_USER', '{APP_DATABASE}');\n\
// the password Triad generated, delivered to every node (0640 root:www-data)\n\
define('DB_PASSWORD', rtrim((string) @file_get_contents('{APP_PASSWORD_FILE}')));\n\
// this node's database endpoint: the writer the coordinator names\n\
define('DB_HOST', '{DB_ENDPOINT}');\n\
define('DB_CHARSET', 'utf8mb4');\n\
define('DB_COLLATE', '');\n\
{keys}\
define('WP_HOME', 'http://{LISTEN}');\n\
define('WP_SITEURL', 'http://{LISTEN}');\n\
define('WP_HTTP_BLOCK_EXTERNAL', true);\n\
define('AUTOMATIC_UPDATER_DISABLED', true);\n\
define('WP_AUTO_UPDATE_CORE', false);\n\
define('DISABLE_WP_CRON', true);\n\
define('FS_METHOD', 'direct');\n\
$table_prefix = 'wp_';\n\
if (!defined('ABSPATH')) {{ define('ABSPATH', __DIR__ . '/'); }}\n\
require_once ABSPATH . 'wp-settings.php';\n"
    )
}

/// Installs WordPress on the volume through `node` (idempotent: the code is copied once, the
/// site installed once) and returns how to log in. The node must be ready (mount, endpoint,
/// password file).
pub fn install(tb: &Testbed, node: &Node) -> Result<Site> {
    let password_file = tb.state.join(ADMIN_PASSWORD_FILE);
    let password = match std::fs::read_to_string(&password_file) {
        Ok(p) if !p.trim().is_empty() => p.trim().to_string(),
        _ => {
            let p = random_hex(12)?;
            triad_daemon::fs::durable_write_private(&password_file, &format!("{p}\n"), 0o600)
                .map_err(|e| LabError::Other(format!("{}: {e}", password_file.display())))?;
            p
        }
    };
    // the code: once, from the package, links into Debian's shared libraries resolved
    node.exec_limit(
        &[
            "sh",
            "-c",
            &format!(
                "set -e; test -f {DOCROOT}/wp-includes/version.php || cp -rL /usr/share/wordpress/. {DOCROOT}/; \
                 rm -f {DOCROOT}/readme.html {DOCROOT}/wp-config-sample.php; \
                 mkdir -p {DOCROOT}/wp-content/uploads && chown www-data:www-data {DOCROOT}/wp-content/uploads"
            ),
        ],
        Duration::from_secs(300),
    )?;
    let has_config = node
        .sh(&format!(
            "grep -q 'Written by triad-lab' {DOCROOT}/wp-config.php && echo yes || echo no"
        ))?
        .trim()
        == "yes";
    if !has_config {
        let mut salts: [String; 8] = Default::default();
        for s in &mut salts {
            *s = random_hex(32)?;
        }
        node.sh(&format!(
            "cat > {DOCROOT}/wp-config.php.tmp <<'EOF'\n{}EOF\n\
             chown root:www-data {DOCROOT}/wp-config.php.tmp && chmod 0640 {DOCROOT}/wp-config.php.tmp && \
             mv {DOCROOT}/wp-config.php.tmp {DOCROOT}/wp-config.php",
            wp_config(&salts)
        ))?;
    }
    // the site: WordPress's own installer (what wp-cli's `core install` calls), run once;
    // the password reaches PHP through a root-only file, not a command line
    let secret = "/root/.triad-wp-admin";
    node.write_file(secret, &password)?;
    let php = format!(
        "define('WP_INSTALLING', true); $_SERVER['HTTP_HOST'] = '{LISTEN}'; \
         require '{DOCROOT}/wp-load.php'; \
         if (is_blog_installed()) {{ echo \"already installed\\n\"; exit(0); }} \
         require_once ABSPATH . 'wp-admin/includes/upgrade.php'; \
         $r = wp_install('{SITE_TITLE}', '{ADMIN_USER}', '{ADMIN_USER}@example.invalid', false, '', \
             trim(file_get_contents('{secret}'))); \
         echo 'installed, user id ', $r['user_id'], \"\\n\";"
    );
    let out = node.exec_limit(
        &[
            "sh",
            "-c",
            &format!("chmod 0600 {secret}; php -d display_errors=stderr -r \"$0\"; rc=$?; rm -f {secret}; exit $rc"),
            &php,
        ],
        Duration::from_secs(120),
    );
    let _ = node.sh(&format!("rm -f {secret}"));
    let out = out?;
    eprintln!("[wordpress] {}", out.trim());
    Ok(Site {
        url: format!("http://{LISTEN}"),
        user: ADMIN_USER.into(),
        password,
        password_file,
    })
}

/// An HTTP answer: status and body.
#[derive(Debug, Clone)]
pub struct Answer {
    pub status: u16,
    pub body: Vec<u8>,
    /// The `Location` header, if any.
    pub location: Option<String>,
}

impl Answer {
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

/// A user's browser: curl with its own cookie jar (the balancer's TRIADSRV cookie keeps it on
/// one node, WordPress's cookies keep it logged in), against the balancer unless told
/// otherwise.
#[derive(Debug, Clone)]
pub struct Browser {
    jar: PathBuf,
    base: String,
    /// `--connect-to` target: send the balancer's URL to one node instead.
    connect_to: Option<String>,
    timeout: Duration,
}

/// A media upload the app accepted.
#[derive(Debug, Clone)]
pub struct Upload {
    pub id: u64,
    /// Path below the site's URL.
    pub path: String,
}

/// A published post.
#[derive(Debug, Clone)]
pub struct Post {
    pub id: u64,
    pub title: String,
}

impl Browser {
    /// A browser with an empty jar at `jar`.
    pub fn new(jar: PathBuf) -> Self {
        let _ = std::fs::remove_file(&jar);
        Self {
            jar,
            base: format!("http://{LISTEN}"),
            connect_to: None,
            timeout: Duration::from_secs(30),
        }
    }

    /// The same site's URLs, sent to `addr:80` (a node) instead of the balancer.
    pub fn via_node(mut self, addr: &str) -> Self {
        self.connect_to = Some(format!("::{addr}:80"));
        self
    }

    pub fn with_timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    fn curl(&self, path: &str, extra: &[&str], body_file: Option<&Path>) -> Result<Answer> {
        let out_file = self.jar.with_extension(format!(
            "body.{}",
            std::thread::current()
                .name()
                .unwrap_or("t")
                .replace(['/', ':'], "_")
        ));
        let mut cmd = Command::new("curl");
        cmd.args(["-sS", "--max-time"])
            .arg(self.timeout.as_secs().to_string())
            .arg("-b")
            .arg(&self.jar)
            .arg("-c")
            .arg(&self.jar)
            .arg("-o")
            .arg(&out_file)
            .args(["-w", "%{http_code} %{redirect_url}"]);
        if let Some(c) = &self.connect_to {
            cmd.args(["--connect-to", c]);
        }
        if let Some(f) = body_file {
            cmd.arg("--data-binary").arg(format!("@{}", f.display()));
        }
        cmd.args(extra).arg(format!("{}{path}", self.base));
        let out = cmd.output().io("run", Path::new("curl"))?;
        let body = std::fs::read(&out_file).unwrap_or_default();
        let _ = std::fs::remove_file(&out_file);
        if !out.status.success() {
            return Err(LabError::Other(format!(
                "curl {path}: {}",
                String::from_utf8_lossy(&out.stderr).trim()
            )));
        }
        let w = String::from_utf8_lossy(&out.stdout).to_string();
        let (code, location) = w.split_once(' ').unwrap_or((w.as_str(), ""));
        let status = code
            .trim()
            .parse()
            .map_err(|_| LabError::Other(format!("curl {path}: status {w:?}")))?;
        Ok(Answer {
            status,
            body,
            location: Some(location.trim().to_string()).filter(|l| !l.is_empty()),
        })
    }

    /// `GET path`.
    pub fn get(&self, path: &str) -> Result<Answer> {
        self.curl(path, &[], None)
    }

    /// Logs in through `wp-login.php` as a user would (the test cookie first).
    pub fn login(&self, user: &str, password: &str) -> Result<()> {
        let first = self.get("/wp-login.php")?;
        if first.status != 200 {
            return Err(LabError::Other(format!(
                "GET /wp-login.php answered {}",
                first.status
            )));
        }
        let a = self.curl(
            "/wp-login.php",
            &[
                "--data-urlencode",
                &format!("log={user}"),
                "--data-urlencode",
                &format!("pwd={password}"),
                "--data-urlencode",
                "wp-submit=Log In",
                "--data-urlencode",
                "testcookie=1",
            ],
            None,
        )?;
        let jar = std::fs::read_to_string(&self.jar).unwrap_or_default();
        if a.status != 302 || !jar.contains("wordpress_logged_in_") {
            return Err(LabError::Other(format!(
                "login as {user} failed: HTTP {}, redirect {:?}, {}",
                a.status,
                a.location,
                excerpt(&a.text())
            )));
        }
        Ok(())
    }

    /// Whether the dashboard opens (200) rather than sending the browser to the login page.
    pub fn logged_in(&self) -> Result<bool> {
        let a = self.get("/wp-admin/")?;
        match a.status {
            200 => Ok(true),
            302 if a.location.as_deref().unwrap_or("").contains("wp-login.php") => Ok(false),
            s => Err(LabError::Other(format!(
                "GET /wp-admin/ answered {s} ({:?}): {}",
                a.location,
                excerpt(&a.text())
            ))),
        }
    }

    /// The REST nonce of the logged-in user (what the editor sends with each call).
    fn rest_nonce(&self) -> Result<String> {
        let a = self.get("/wp-admin/admin-ajax.php?action=rest-nonce")?;
        let n = a.text().trim().to_string();
        if a.status != 200 || n.is_empty() || n == "0" || n.contains(' ') {
            return Err(LabError::Other(format!(
                "rest-nonce answered {}: {}",
                a.status,
                excerpt(&n)
            )));
        }
        Ok(n)
    }

    fn rest_json(&self, a: &Answer, what: &str) -> Result<serde_json::Value> {
        if a.status != 201 && a.status != 200 {
            return Err(LabError::Other(format!(
                "{what}: HTTP {}: {}",
                a.status,
                excerpt(&a.text())
            )));
        }
        serde_json::from_slice(&a.body)
            .map_err(|e| LabError::Other(format!("{what}: {e}: {}", excerpt(&a.text()))))
    }

    /// Uploads `file` as media named `name` (the REST API the media library uses).
    pub fn upload(&self, file: &Path, name: &str, mime: &str) -> Result<Upload> {
        let nonce = self.rest_nonce()?;
        let a = self.curl(
            "/?rest_route=/wp/v2/media",
            &[
                "-H",
                &format!("X-WP-Nonce: {nonce}"),
                "-H",
                &format!("Content-Disposition: attachment; filename={name}"),
                "-H",
                &format!("Content-Type: {mime}"),
            ],
            Some(file),
        )?;
        let v = self.rest_json(&a, &format!("upload of {name}"))?;
        let id = v["id"].as_u64().unwrap_or(0);
        let url = v["source_url"].as_str().unwrap_or("");
        let path = url
            .strip_prefix(&self.base)
            .ok_or_else(|| LabError::Other(format!("upload of {name}: source_url {url:?}")))?;
        Ok(Upload {
            id,
            path: path.to_string(),
        })
    }

    /// Publishes a post with `title` and `content` (HTML).
    pub fn publish(&self, title: &str, content: &str) -> Result<Post> {
        let nonce = self.rest_nonce()?;
        let body = serde_json::json!({"title": title, "content": content, "status": "publish"});
        let file = self.jar.with_extension("post.json");
        std::fs::write(&file, body.to_string()).io("write", &file)?;
        let a = self.curl(
            "/?rest_route=/wp/v2/posts",
            &[
                "-H",
                &format!("X-WP-Nonce: {nonce}"),
                "-H",
                "Content-Type: application/json",
            ],
            Some(&file),
        );
        let _ = std::fs::remove_file(&file);
        let v = self.rest_json(&a?, &format!("post {title:?}"))?;
        Ok(Post {
            id: v["id"].as_u64().unwrap_or(0),
            title: title.to_string(),
        })
    }

    /// The node that serves this browser (the one-line page through the same jar).
    pub fn serving_node(&self) -> Result<String> {
        let a = self.get(NODE_PAGE)?;
        if a.status != 200 {
            return Err(LabError::Other(format!("{NODE_PAGE}: HTTP {}", a.status)));
        }
        Ok(a.text().trim().to_string())
    }
}

/// The start of a page, for error messages.
pub fn excerpt(text: &str) -> String {
    let t: String = text.chars().take(300).collect();
    t.replace('\n', " ")
}

/// Whether `post` is served with its title, and `upload` with exactly `bytes`, through
/// `browser`; the reason when not.
pub fn content_served(
    browser: &Browser,
    post: &Post,
    upload: &Upload,
    bytes: &[u8],
) -> Result<Option<String>> {
    let page = browser.get(&format!("/?p={}", post.id))?;
    if page.status != 200 || !page.text().contains(&post.title) {
        return Ok(Some(format!(
            "post {} answered {} without its title: {}",
            post.id,
            page.status,
            excerpt(&page.text())
        )));
    }
    let file = browser.get(&upload.path)?;
    if file.status != 200 || file.body != bytes {
        return Ok(Some(format!(
            "{} answered {} with {} bytes (uploaded {})",
            upload.path,
            file.status,
            file.body.len(),
            bytes.len()
        )));
    }
    Ok(None)
}

/// A Triad lab serving WordPress on `tb`'s nodes: the agents, the coordinator, the volume
/// and HAProxy, every node ready, WordPress installed through the first node.
pub fn lab(tb: &mut Testbed) -> Result<Site> {
    let config = crate::triad::coordinator_config(tb);
    lab_with(tb, &config)
}

/// The lab as [`lab`] makes it but empty, for a restore: Triad on every node, the volume
/// mounted, Galera formed (from nothing), HAProxy in front; no app content.
pub fn empty_lab(tb: &mut Testbed) -> Result<()> {
    let config = crate::triad::coordinator_config(tb);
    start_triad(tb, &config)?;
    for n in &tb.nodes {
        crate::formation::wait_galera(n, tb.nodes.len(), Duration::from_secs(240))?;
    }
    tb.start_haproxy()?;
    Ok(())
}

/// The agent on every node and the coordinator with `coordinator_config`, until the volume
/// is mounted on the first node.
fn start_triad(tb: &mut Testbed, coordinator_config: &str) -> Result<()> {
    for n in &tb.nodes {
        crate::triad::install_agent(tb, n)?;
    }
    crate::triad::start_coordinator_config(tb, coordinator_config)?;
    crate::triad::wait_docroot_mounted(&tb.nodes[0], Duration::from_secs(240))?;
    Ok(())
}

/// [`lab`] with the coordinator's config given (e.g. with `[[app.jobs]]` appended).
pub fn lab_with(tb: &mut Testbed, coordinator_config: &str) -> Result<Site> {
    crate::triad::cargo_build()?;
    start_triad(tb, coordinator_config)?;
    crate::triad::publish_app(&tb.nodes[0])?;
    crate::triad::wait_all_ready(tb, tb.nodes.len(), Duration::from_secs(240))?;
    let t = std::time::Instant::now();
    let site = install(tb, &tb.nodes[0])?;
    eprintln!("[wordpress] on the volume in {:.1?}", t.elapsed());
    tb.start_haproxy()?;
    tb.haproxy()?.wait_all_up(Duration::from_secs(30))?;
    crate::triad::wait_balancer_members(Duration::from_secs(60))?;
    Ok(site)
}
